/**
 * Block codecs against reference compressors. Vectors are made at test time
 * by the real tools when they are installed (zstd, xz, lz4, lzop, python3-lz4,
 * python3-lzo; a missing tool skips only its vectors, with a warning), and
 * test/fixtures/codecs/ holds a few made by the same tools (see make.sh
 * there) so that every codec is tested everywhere. A fast-check property
 * corrupts valid blocks: the result must be the expected length or a
 * CODEC_ERROR, quickly.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { codecById, codecByName, defaultCodecs, type Codec } from '../src/codecs/index.js';
import { SquashfsError } from '../src/errors.js';
import { nodeCodecs } from '../src/node/codecs.js';

const codecs = defaultCodecs();
const codec = (name: string): Codec => codecByName(codecs, name);
/** zstd decoded by the reference library in WASM (Node's registry), beside fzstd above. */
const wasmZstd = codecByName(nodeCodecs(), 'zstd');
const FIXTURES = path.join(import.meta.dirname, 'fixtures', 'codecs');

// ---------------------------------------------------------------- tools

function hasCommand(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;
}

function pythonWith(module: string): string | undefined {
  for (const python of ['/usr/bin/python3', 'python3']) {
    if (spawnSync(python, ['-c', `import ${module}`]).status === 0) return python;
  }
  return undefined;
}

const warned = new Set<string>();
/** True when the tool is there; otherwise warns once, naming the Debian package. */
function available(tool: string, debianPackage: string, ok: boolean): boolean {
  if (!ok && !warned.has(tool)) {
    warned.add(tool);
    console.warn(`codecs.test: ${tool} not found (Debian package ${debianPackage}); skipping the vectors made with it`);
  }
  return ok;
}

const python = { lz4: pythonWith('lz4.block'), lzo: pythonWith('lzo') };
const tools = {
  zstd: available('zstd', 'zstd', hasCommand('zstd')),
  xz: available('xz', 'xz-utils', hasCommand('xz')),
  lz4: available('lz4', 'lz4', hasCommand('lz4')),
  lzop: available('lzop', 'lzop', hasCommand('lzop')),
  pyLz4: available('python3 lz4 module', 'python3-lz4', python.lz4 !== undefined),
  pyLzo: available('python3 lzo module', 'python3-lzo', python.lzo !== undefined),
  mksquashfs: available('mksquashfs', 'squashfs-tools', hasCommand('mksquashfs')),
};
const xzHasArm64 = tools.xz && spawnSync('xz', ['--arm64', '--lzma2', '-c'], { input: '' }).status === 0;

function run(command: string, args: string[], input?: Uint8Array): Uint8Array {
  const result = spawnSync(command, args, { input, maxBuffer: 64 << 20 });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${result.stderr}`);
  return new Uint8Array(result.stdout);
}

// ---------------------------------------------------------------- inputs

function xorshift(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

function randomBytes(size: number, seed: number): Uint8Array {
  const next = xorshift(seed);
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = next() & 0xff;
  return out;
}

/** Pseudo-text: words from a small vocabulary, so matches of every length and distance. */
function text(size: number, seed: number): Uint8Array {
  const next = xorshift(seed);
  const words = Array.from({ length: 500 }, () =>
    Array.from({ length: 1 + (next() % 9) }, () => 'etaoinshrdlucmfwypvbgkjqxz'[next() % 26]).join(''),
  );
  const parts: string[] = [];
  let length = 0;
  while (length < size) {
    const word = words[next() % words.length] + (next() % 12 === 0 ? '.\n' : ' ');
    parts.push(word);
    length += word.length;
  }
  return new TextEncoder().encode(parts.join('')).subarray(0, size);
}

/** x86-like bytes: CALL/JMP opcodes with small displacements, for the branch filters. */
function x86Like(size: number, seed: number): Uint8Array {
  const next = xorshift(seed);
  const out = new Uint8Array(size);
  let i = 0;
  while (i < size) {
    const run = next() % 10;
    for (let j = 0; j < run && i < size; j++) out[i++] = next() % 3 === 0 ? 0x48 : next() & 0xff;
    const call = [0xe8 | (next() & 1), next() & 0xff, next() & 0x0f, 0, 0];
    for (const b of call) if (i < size) out[i++] = b;
  }
  return out;
}

const KiB = 1024;
const inputs: Record<string, Uint8Array> = {
  empty: new Uint8Array(0),
  'one-byte': Uint8Array.of(0x41),
  'text-4k': text(4 * KiB, 1),
  'random-4k': randomBytes(4 * KiB, 2),
  'text-128k': text(128 * KiB, 3),
  'zeros-128k': new Uint8Array(128 * KiB),
  'random-128k': randomBytes(128 * KiB, 4),
  'text-1m': text(1024 * KiB, 5),
  'random-1m': randomBytes(1024 * KiB, 6),
  'x86-128k': x86Like(128 * KiB, 7),
};
const STANDARD = Object.keys(inputs).filter((name) => name !== 'x86-128k');

const workDir = mkdtempSync(path.join(os.tmpdir(), 'codecs-test-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));
const inputFiles = new Map<string, string>();
for (const [name, bytes] of Object.entries(inputs)) {
  const file = path.join(workDir, `${name}.bin`);
  writeFileSync(file, bytes);
  inputFiles.set(name, file);
}

// ---------------------------------------------------------------- framings

/** One compressed block and the slice of the input it decodes to. */
interface Block {
  data: Uint8Array;
  offset: number;
  length: number;
}

const whole = (data: Uint8Array, input: Uint8Array): Block[] => [{ data, offset: 0, length: input.length }];

/** The raw LZ4 blocks of an LZ4 frame (blocks stored uncompressed are left out). */
function lz4FrameBlocks(frame: Uint8Array): Block[] {
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  if (view.getUint32(0, true) !== 0x184d2204) throw new Error('not an LZ4 frame');
  const flags = frame[4];
  if (!(flags & 0x20)) throw new Error('LZ4 frame with linked blocks');
  let pos = 6 + (flags & 0x08 ? 8 : 0) + (flags & 0x01 ? 4 : 0) + 1;
  const blocks: Block[] = [];
  let offset = 0;
  const blockMax = 1 << (8 + 2 * ((frame[5] >> 4) & 7));
  for (;;) {
    const word = view.getUint32(pos, true);
    pos += 4;
    if (word === 0) break;
    const size = word & 0x7fffffff;
    const data = frame.subarray(pos, pos + size);
    pos += size + (flags & 0x10 ? 4 : 0);
    if (word & 0x80000000) {
      offset += size;
      continue;
    }
    // Only the last block may be shorter than the maximum; it is whatever is left.
    blocks.push({ data, offset, length: -1 });
    offset += blockMax;
  }
  return blocks;
}

/** The raw LZO1X blocks of an lzop file (blocks stored uncompressed are left out). */
function lzopBlocks(file: Uint8Array): Block[] {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const magic = [0x89, 0x4c, 0x5a, 0x4f, 0x00, 0x0d, 0x0a, 0x1a, 0x0a];
  magic.forEach((b, i) => {
    if (file[i] !== b) throw new Error('not an lzop file');
  });
  let pos = 9;
  const version = view.getUint16(pos);
  pos += 4; // version, library version
  if (version >= 0x0940) pos += 2; // version needed to extract
  const method = file[pos++];
  if (method < 1 || method > 3) throw new Error(`lzop method ${method} is not LZO1X`);
  if (version >= 0x0940) pos++; // level
  const flags = view.getUint32(pos);
  pos += 4;
  if (flags & 0x800) pos += 4; // filter
  pos += 8; // mode, mtime low
  if (version >= 0x0940) pos += 4; // mtime high
  pos += 1 + file[pos]; // name
  pos += 4; // header checksum
  if (flags & 0x40) pos += 4 + view.getUint32(pos) + 4; // extra field
  const blocks: Block[] = [];
  let offset = 0;
  for (;;) {
    const dstLen = view.getUint32(pos);
    pos += 4;
    if (dstLen === 0) break;
    const srcLen = view.getUint32(pos);
    pos += 4;
    if (flags & 0x001) pos += 4; // adler32 of the uncompressed data
    if (flags & 0x100) pos += 4; // crc32 of the uncompressed data
    if (srcLen < dstLen) {
      if (flags & 0x002) pos += 4;
      if (flags & 0x200) pos += 4;
      blocks.push({ data: file.subarray(pos, pos + srcLen), offset, length: dstLen });
    }
    pos += srcLen;
    offset += dstLen;
  }
  return blocks;
}

// ---------------------------------------------------------------- makers

interface Maker {
  codec: string;
  label: string;
  ready: boolean;
  inputs: string[];
  make(file: string, input: Uint8Array): Block[];
}

/** The real compressed size in an LZMA-alone header, as squashfs-tools writes it. */
function withKnownSize(lzma: Uint8Array, size: number): Uint8Array {
  const copy = lzma.slice();
  const view = new DataView(copy.buffer);
  view.setUint32(5, size, true);
  view.setUint32(9, 0, true);
  return copy;
}

/** A block compressed by a python3 module (python3-lz4, python3-lzo): `d` is the input. */
const pyCompress = (pythonBinary: string | undefined, module: string, expression: string) => (file: string, input: Uint8Array): Block[] =>
  whole(run(pythonBinary!, ['-c', `import sys, ${module}\nd = open(sys.argv[1], 'rb').read()\nsys.stdout.buffer.write(${expression})`, file]), input);

const makers: Maker[] = [
  { codec: 'zstd', label: 'zstd -19', ready: tools.zstd, inputs: STANDARD, make: (f, i) => whole(run('zstd', ['-q', '-19', '-c', f]), i) },
  { codec: 'zstd', label: 'zstd -1 --no-check', ready: tools.zstd, inputs: STANDARD, make: (f, i) => whole(run('zstd', ['-q', '-1', '--no-check', '-c', f]), i) },
  { codec: 'zstd', label: 'zstd -3 from a pipe (no content size)', ready: tools.zstd, inputs: STANDARD, make: (_f, i) => whole(run('zstd', ['-q', '-3', '-c'], i), i) },
  { codec: 'xz', label: 'xz -6 --check=crc32', ready: tools.xz, inputs: STANDARD, make: (f, i) => whole(run('xz', ['-c', '--check=crc32', f]), i) },
  { codec: 'xz', label: 'xz as squashfs-tools (crc32, dict 128 KiB)', ready: tools.xz, inputs: STANDARD, make: (f, i) => whole(run('xz', ['-c', '--check=crc32', '--lzma2=preset=6,dict=128KiB', f]), i) },
  { codec: 'xz', label: 'xz -0 --check=crc64', ready: tools.xz, inputs: STANDARD, make: (f, i) => whole(run('xz', ['-c', '-0', '--check=crc64', f]), i) },
  { codec: 'xz', label: 'xz -9e --check=sha256', ready: tools.xz, inputs: ['text-128k', 'one-byte'], make: (f, i) => whole(run('xz', ['-c', '-9e', '--check=sha256', f]), i) },
  { codec: 'xz', label: 'xz --check=none', ready: tools.xz, inputs: ['text-4k', 'empty'], make: (f, i) => whole(run('xz', ['-c', '--check=none', f]), i) },
  ...['x86', 'arm', 'armthumb', 'powerpc', 'sparc', 'ia64', 'arm64'].map(
    (filter): Maker => ({
      codec: 'xz',
      label: `xz --${filter} --lzma2`,
      ready: tools.xz && (filter !== 'arm64' || available('xz --arm64', 'xz-utils >= 5.4', xzHasArm64)),
      inputs: ['x86-128k', 'text-128k', 'random-4k', 'one-byte'],
      make: (f, i) => whole(run('xz', ['-c', '--check=crc32', `--${filter}`, '--lzma2', f]), i),
    }),
  ),
  { codec: 'xz', label: 'xz --delta=dist=2 --lzma2', ready: tools.xz, inputs: ['x86-128k', 'text-4k'], make: (f, i) => whole(run('xz', ['-c', '--check=crc32', '--delta=dist=2', '--lzma2', f]), i) },
  { codec: 'lzma', label: 'xz --format=lzma (size unknown, end marker)', ready: tools.xz, inputs: STANDARD, make: (f, i) => whole(run('xz', ['--format=lzma', '-c', f]), i) },
  { codec: 'lzma', label: 'xz --format=lzma -0, size in the header', ready: tools.xz, inputs: STANDARD, make: (f, i) => whole(withKnownSize(run('xz', ['--format=lzma', '-0', '-c', f]), i.length), i) },
  { codec: 'lzma', label: 'xz --format=lzma -9e lc=4, size in the header', ready: tools.xz, inputs: ['text-128k', 'x86-128k'], make: (f, i) => whole(withKnownSize(run('xz', ['--format=lzma', '--lzma1=preset=9e,lc=4,pb=0', '-c', f]), i.length), i) },
  { codec: 'lz4', label: 'python3 lz4.block (LZ4_compress_default)', ready: tools.pyLz4, inputs: STANDARD, make: pyCompress(python.lz4, 'lz4.block', 'lz4.block.compress(d, store_size=False)') },
  { codec: 'lz4', label: 'python3 lz4.block HC 12', ready: tools.pyLz4, inputs: STANDARD, make: pyCompress(python.lz4, 'lz4.block', "lz4.block.compress(d, mode='high_compression', compression=12, store_size=False)") },
  ...['-1', '-9', '-12'].map(
    (level): Maker => ({
      codec: 'lz4',
      label: `lz4 ${level} frame, its raw blocks`,
      ready: tools.lz4,
      inputs: STANDARD,
      make: (f, input) => lz4FrameBlocks(run('lz4', ['-q', '-c', level, '-B7', '-BI', '--no-frame-crc', f])).map((b) => ({ ...b, length: input.length - b.offset })),
    }),
  ),
  { codec: 'lzo', label: 'python3 lzo level 1 (LZO1X-1)', ready: tools.pyLzo, inputs: STANDARD, make: pyCompress(python.lzo, 'lzo', 'lzo.compress(d, 1, False)') },
  { codec: 'lzo', label: 'python3 lzo level 9 (LZO1X-999)', ready: tools.pyLzo, inputs: STANDARD, make: pyCompress(python.lzo, 'lzo', 'lzo.compress(d, 9, False)') },
  { codec: 'lzo', label: 'lzop -1 (LZO1X-1), its raw blocks', ready: tools.lzop, inputs: STANDARD, make: (f) => lzopBlocks(run('lzop', ['-1', '-c', f])) },
  { codec: 'lzo', label: 'lzop -9 (LZO1X-999), its raw blocks', ready: tools.lzop, inputs: STANDARD, make: (f) => lzopBlocks(run('lzop', ['-9', '-c', f])) },
];

/**
 * The data blocks of the one file in a mksquashfs image made with -noI (so the
 * inode table is stored) and -no-fragments: just enough parsing to reach the
 * blocks, the reader proper lives elsewhere. Blocks stored uncompressed are
 * left out.
 */
function mksquashfsBlocks(image: Uint8Array, compressionId: number): Block[] {
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  if (view.getUint32(0, true) !== 0x73717368) throw new Error('not a squashfs image');
  if (view.getUint16(20, true) !== compressionId) throw new Error(`compressor id ${view.getUint16(20, true)}, wanted ${compressionId}`);
  const blockSize = view.getUint32(12, true);
  const inodeTable = Number(view.getBigUint64(64, true));
  const header = view.getUint16(inodeTable, true);
  if (!(header & 0x8000)) throw new Error('inode table is compressed: make the image with -noI');
  const inode = inodeTable + 2;
  if (view.getUint16(inode, true) !== 2) throw new Error('the first inode is not a basic file');
  let position = view.getUint32(inode + 16, true);
  const fileSize = view.getUint32(inode + 28, true);
  const count = Math.ceil(fileSize / blockSize);
  const blocks: Block[] = [];
  for (let i = 0; i < count; i++) {
    const word = view.getUint32(inode + 32 + 4 * i, true);
    const stored = word & 0xffffff;
    if (word !== 0 && !(word & 0x1000000)) {
      blocks.push({ data: image.subarray(position, position + stored), offset: i * blockSize, length: Math.min(blockSize, fileSize - i * blockSize) });
    }
    position += stored;
  }
  return blocks;
}

const IMAGE_FILE = (() => {
  const parts = [text(512 * KiB, 11), x86Like(256 * KiB, 12), new Uint8Array(128 * KiB), randomBytes(128 * KiB, 13), text(1000, 14)];
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.length;
  }
  return bytes;
})();

const IMAGE_VARIANTS: Array<[codec: string, id: number, options: string[]]> = [
  ['lzma', 2, []],
  ['lzo', 3, []],
  ['lzo', 3, ['-Xalgorithm', 'lzo1x_1']],
  ['lzo', 3, ['-Xalgorithm', 'lzo1x_999', '-Xcompression-level', '9']],
  ['xz', 4, []],
  ['xz', 4, ['-Xbcj', 'x86,arm,armthumb,powerpc,sparc,ia64', '-Xdict-size', '50%']],
  ['lz4', 5, []],
  ['lz4', 5, ['-Xhc']],
  ['zstd', 6, []],
  ['zstd', 6, ['-Xcompression-level', '19']],
];

// ---------------------------------------------------------------- tests

describe('codec registry', () => {
  it('has the six squashfs compressors under their ids and names', () => {
    const names = [1, 2, 3, 4, 5, 6].map((id) => codecById(codecs, id).name);
    expect(names).toEqual(['gzip', 'lzma', 'lzo', 'xz', 'lz4', 'zstd']);
  });

  it.each(['lzma', 'lzo', 'xz', 'zstd'])('%s: compress says UNSUPPORTED_COMPRESSOR; no options', (name) => {
    const c = codec(name);
    expect(() => c.compress(new Uint8Array(10), c.defaultLevel)).toThrow(expect.objectContaining({ code: 'UNSUPPORTED_COMPRESSOR', message: expect.stringMatching(new RegExp(`^${name} compression is not supported; `)) }));
    expect(c.encodeOptions(c.defaultLevel)).toBeUndefined();
  });
});

describe('reference vectors made at test time', () => {
  for (const maker of makers) {
    describe(`${maker.codec}: ${maker.label}`, () => {
      for (const name of maker.inputs) {
        it.skipIf(!maker.ready)(name, () => {
          const input = inputs[name];
          const blocks = maker.make(inputFiles.get(name)!, input);
          for (const block of blocks) {
            const expected = input.subarray(block.offset, block.offset + block.length);
            const out = codec(maker.codec).decompress(block.data, expected.length);
            expect(out.length).toBe(expected.length);
            expect(Buffer.compare(out, expected)).toBe(0);
          }
        });
      }
    });
  }
});

describe('data blocks of images made by mksquashfs', () => {
  for (const [name, id, options] of IMAGE_VARIANTS) {
    it.skipIf(!tools.mksquashfs)(`-comp ${name} ${options.join(' ')}`.trim(), () => {
      const dir = mkdtempSync(path.join(workDir, 'image-'));
      mkdirSync(path.join(dir, 'tree'));
      writeFileSync(path.join(dir, 'tree', 'file'), IMAGE_FILE);
      const imagePath = path.join(dir, 'image.sqfs');
      run('mksquashfs', [path.join(dir, 'tree'), imagePath, '-comp', name, ...options, '-noappend', '-quiet', '-no-progress', '-noI', '-no-fragments', '-no-xattrs', '-processors', '1']);
      const blocks = mksquashfsBlocks(new Uint8Array(readFileSync(imagePath)), id);
      expect(blocks.length).toBeGreaterThanOrEqual(7);
      if (options.includes('-Xbcj')) {
        // mksquashfs keeps the filter that compresses best: some blocks must have used one (2 filters in the block header).
        expect(blocks.filter((b) => (b.data[13] & 3) === 1).length).toBeGreaterThan(0);
      }
      for (const block of blocks) {
        const out = codec(name).decompress(block.data, block.length);
        expect(Buffer.compare(out, IMAGE_FILE.subarray(block.offset, block.offset + block.length))).toBe(0);
      }
    });
  }
});

// Fixtures: "<input>.bin.<variant>" decodes to "<input>.bin".
const FIXTURE_CODECS: Array<[suffix: RegExp, codec: string]> = [
  [/\.zst$/, 'zstd'],
  [/\.xz$/, 'xz'],
  [/\.lzma$/, 'lzma'],
  [/\.lz4$/, 'lz4'],
  [/\.lzo1x-(1|999)$/, 'lzo'],
];
interface Fixture {
  file: string;
  codec: string;
  data: Uint8Array;
  expected: Uint8Array;
}
const fixtures: Fixture[] = readdirSync(FIXTURES)
  .sort()
  .flatMap((file) => {
    const match = FIXTURE_CODECS.find(([suffix]) => suffix.test(file));
    if (!match) return [];
    const source = file.slice(0, file.indexOf('.bin') + 4);
    return [{ file, codec: match[1], data: new Uint8Array(readFileSync(path.join(FIXTURES, file))), expected: new Uint8Array(readFileSync(path.join(FIXTURES, source))) }];
  });

describe('committed fixtures', () => {
  it('cover every codec', () => {
    expect(new Set(fixtures.map((f) => f.codec))).toEqual(new Set(['zstd', 'xz', 'lzma', 'lz4', 'lzo']));
  });
  it.each(fixtures.map((f) => [f.file, f] as const))('%s', (_name, fixture) => {
    const out = codec(fixture.codec).decompress(fixture.data, fixture.expected.length);
    expect(Buffer.compare(out, fixture.expected)).toBe(0);
  });
});

function expectCodecError(fn: () => unknown, message?: RegExp): void {
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(SquashfsError);
  expect((error as SquashfsError).code).toBe('CODEC_ERROR');
  if (message) expect((error as SquashfsError).message).toMatch(message);
}

const fixture = (file: string): Fixture => fixtures.find((f) => f.file === file)!;

describe('sizes found in the data are never trusted', () => {
  for (const [label, zstd] of [['zstd', () => codec('zstd')], ['zstd (wasm)', () => wasmZstd]] as const) {
    it(`${label}: a frame declaring 2^40 bytes fails before allocating`, () => {
      const frame = Uint8Array.of(0x28, 0xb5, 0x2f, 0xfd, 0xe0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0);
      expectCodecError(() => zstd().decompress(frame, 4096), /^zstd block: frame declares 1099511627776 bytes, expected 4096/);
    });

    it(`${label}: a 2 TiB window (no content size) is clamped to the expected length`, () => {
      const f = fixture('text-4k.bin.stream.zst');
      const patched = f.data.slice();
      expect(patched[4] & 0x20).toBe(0); // not single-segment: it has a window descriptor
      patched[5] = 0xf8; // 2^41 bytes
      expect(Buffer.compare(zstd().decompress(patched, 4096), f.expected)).toBe(0);
    });

    it(`${label}: data after the frame is refused`, () => {
      const f = fixture('text-4k.bin.zst');
      expectCodecError(() => zstd().decompress(Uint8Array.from([...f.data, 0, 0, 0, 0]), 4096), /zstd/);
    });

    it(`${label}: reads every zstd reference frame`, () => {
      const frames = fixtures.filter((f) => f.codec === 'zstd');
      expect(frames.length).toBeGreaterThan(0);
      for (const f of frames) expect(Buffer.compare(zstd().decompress(f.data, f.expected.length), f.expected), f.file).toBe(0);
    });
  }

  it('lzma: a header size other than the expected length is refused', () => {
    const f = fixture('text-4k.bin.lzma');
    expectCodecError(() => codec('lzma').decompress(withKnownSize(f.data, 2 ** 31), 4096), /^lzma block: header declares 2147483648 bytes, expected 4096/);
  });

  it('lzma: a 4 GiB dictionary in the header allocates nothing', () => {
    const f = fixture('text-32k.bin.lzma');
    const patched = f.data.slice();
    new DataView(patched.buffer).setUint32(1, 0xffffffff, true);
    expect(Buffer.compare(codec('lzma').decompress(patched, f.expected.length), f.expected)).toBe(0);
  });

  it('lz4: offset 0 and offsets before the start are refused', () => {
    expectCodecError(() => codec('lz4').decompress(Uint8Array.of(0x10, 0x41, 0x00, 0x00, 0x00), 10), /lz4 block: match offset 0/);
    expectCodecError(() => codec('lz4').decompress(Uint8Array.of(0x10, 0x41, 0x02, 0x00, 0x00), 10), /lz4 block: match offset 2 at output offset 1/);
  });

  it('lzo: the empty stream is 11 00 00; anything after the end marker is refused', () => {
    expect(codec('lzo').decompress(Uint8Array.of(0x11, 0, 0), 0).length).toBe(0);
    expectCodecError(() => codec('lzo').decompress(Uint8Array.of(0x11, 0, 0, 0), 0), /lzo block: 1 bytes follow the end-of-stream marker/);
  });
});

// ---------------------------------------------------------------- corruption

type Mutation =
  | { kind: 'flip'; at: number[]; bits: number[] }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'truncate'; keep: number }
  | { kind: 'append'; bytes: number[] }
  | { kind: 'length'; delta: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.array(fc.nat(), { minLength: 1, maxLength: 4 }), bits: fc.array(fc.integer({ min: 0, max: 7 }), { minLength: 4, maxLength: 4 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), keep: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }) }),
  fc.record({ kind: fc.constant('append' as const), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant('length' as const), delta: fc.integer({ min: -64, max: 64 }).filter((d) => d !== 0) }),
);

function mutate(data: Uint8Array, expected: number, m: Mutation): [Uint8Array, number] {
  switch (m.kind) {
    case 'flip': {
      const copy = data.slice();
      if (copy.length) m.at.forEach((at, i) => (copy[at % copy.length] ^= 1 << m.bits[i]));
      return [copy, expected];
    }
    case 'set': {
      const copy = data.slice();
      if (copy.length) copy[m.at % copy.length] = m.value;
      return [copy, expected];
    }
    case 'truncate':
      return [data.slice(0, Math.floor(m.keep * data.length)), expected];
    case 'append':
      return [Uint8Array.from([...data, ...m.bytes]), expected];
    case 'length':
      return [data, Math.max(0, expected + m.delta)];
  }
}

const HAND_WRITTEN = new Set(['lzma', 'xz', 'lz4', 'lzo']);
const CASE_TIME_LIMIT_MS = 1000;
/** More runs: CODEC_FUZZ_RUNS=20000 npx vitest run test/codecs.test.ts -t corrupt */
const FUZZ_RUNS = Number(process.env.CODEC_FUZZ_RUNS ?? 300);

describe('corrupt blocks give the right length or CODEC_ERROR, quickly', () => {
  // zstd twice: the pure-JS decoder (defaultCodecs) and the reference library in WASM (nodeCodecs).
  const decoders: [label: string, name: string, decoder: Codec][] = [
    ...['zstd', 'xz', 'lzma', 'lz4', 'lzo'].map((name): [string, string, Codec] => [name, name, codec(name)]),
    ['zstd (wasm)', 'zstd', wasmZstd],
  ];
  for (const [label, name, decoder] of decoders) {
    it(label, () => {
      const valid = fixtures.filter((f) => f.codec === name);
      expect(valid.length).toBeGreaterThan(0);
      let errors = 0;
      fc.assert(
        fc.property(fc.constantFrom(...valid), mutation, (f, m) => {
          const [data, expectedLength] = mutate(f.data, f.expected.length, m);
          const start = performance.now();
          try {
            const out = decoder.decompress(data, expectedLength);
            expect(out.length).toBe(expectedLength);
            // An unchanged block asked for another length must fail.
            expect(m.kind).not.toBe('length');
          } catch (error) {
            errors++;
            expect(error).toBeInstanceOf(SquashfsError);
            expect((error as SquashfsError).code).toBe('CODEC_ERROR');
            expect((error as SquashfsError).message).toMatch(new RegExp(`^${name} block`));
            // The hand-written decoders check everything themselves: no stray TypeError/RangeError inside.
            if (HAND_WRITTEN.has(name)) expect((error as SquashfsError).cause).toBeUndefined();
          }
          expect(performance.now() - start).toBeLessThan(CASE_TIME_LIMIT_MS);
        }),
        { numRuns: FUZZ_RUNS },
      );
      expect(errors).toBeGreaterThan(0);
    });

    it(`${label}: random bytes`, () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 0, max: 65536 }), (data, expectedLength) => {
          const start = performance.now();
          try {
            expect(decoder.decompress(data, expectedLength).length).toBe(expectedLength);
          } catch (error) {
            expect(error).toBeInstanceOf(SquashfsError);
            expect((error as SquashfsError).code).toBe('CODEC_ERROR');
          }
          expect(performance.now() - start).toBeLessThan(CASE_TIME_LIMIT_MS);
        }),
        { numRuns: FUZZ_RUNS },
      );
    });
  }
});
