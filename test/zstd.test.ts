/**
 * zstd compression (the reference library in WASM, @foxglove/wasm-zstd's
 * wasm-zstd.wasm driven by src/codecs/zstd-wasm.ts):
 * - every block is one frame whose window is no larger than
 *   max(block size, 8 KiB) (what the Linux kernel's decoder allows),
 * - frames round-trip through our decoder and the zstd CLI,
 * - compressor options are squashfs-tools' (the level as a u32 unless 15),
 * - images written with it are read by unsquashfs, sqfs2tar, 7z and the
 *   kernel (loop mount, as root).
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createRegistry, createZstdCodec, instantiateZstdWasm, loadZstdWasmModule, writeImage, zstdCodec,
  type Codec,
} from '../src/index.js';
import { loadNodeCodecs } from '../src/node/codecs.js';
import { nodeCodecs, nodeSource, openImage, unpackImage } from '../src/node/index.js';
import { cannotMount, withMount } from './helpers/mount.js';
import { compareTrees, expect7zAccepts, expectExtractMatches, expectSqfs2tarAccepts, hasTool, run } from './helpers/oracles.js';
import { compressibleBytes, pseudoRandomBytes } from './helpers/tree.js';
import { memorySink } from './helpers/memory-sink.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Text-like bytes: words drawn from a small vocabulary by a fixed PRNG (about 3-4x compressible). */
function wordText(size: number, seed: number): Buffer {
  const vocabulary = (
    'the of and to in is that for it as with was on be by this are or from at which an have not but all can ' +
    'squashfs inode block fragment directory table metadata superblock compressor window frame kernel mount ' +
    'export lookup xattr symlink device fifo socket uid gid mtime size offset length index entry header data'
  ).split(' ');
  let x = seed * 2654435761 + 1;
  const next = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  const parts: string[] = [];
  let length = 0;
  while (length < size) {
    const word = vocabulary[next() % vocabulary.length];
    const sep = next() % 13 === 0 ? '.\n' : ' ';
    parts.push(word + sep);
    length += word.length + sep.length;
  }
  return Buffer.from(parts.join(''), 'latin1').subarray(0, size);
}

interface FrameHeader {
  singleSegment: boolean;
  windowSize: number;
  contentSize: number | undefined;
}

/** The frame header fields the kernel sizes its decoder by (RFC 8878 section 3.1.1.1). */
function parseFrameHeader(frame: Uint8Array): FrameHeader {
  expect(Buffer.from(frame.subarray(0, 4)).readUInt32LE(0)).toBe(0xfd2fb528);
  const fhd = frame[4];
  const singleSegment = (fhd & 0x20) !== 0;
  const fcsFlag = fhd >>> 6;
  let pos = 5;
  let windowSize = 0;
  if (!singleSegment) {
    const wd = frame[pos++];
    const base = 2 ** (10 + (wd >>> 3));
    windowSize = base + (base / 8) * (wd & 7);
  }
  pos += [0, 1, 2, 4][fhd & 3];
  const fcsSize = fcsFlag === 0 ? (singleSegment ? 1 : 0) : 1 << fcsFlag;
  let contentSize: number | undefined;
  if (fcsSize > 0) {
    contentSize = 0;
    for (let i = 0; i < fcsSize; i++) contentSize += frame[pos + i] * 2 ** (8 * i);
    if (fcsSize === 2) contentSize += 256;
  }
  // Single segment: the window is the content size (RFC 8878 3.1.1.1.2).
  if (singleSegment) windowSize = contentSize!;
  return { singleSegment, windowSize, contentSize };
}

let work: string;
let codec: Codec;
let zstdCli: boolean;

beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'sqfs-zstd-'));
  codec = await createZstdCodec();
  zstdCli = await hasTool('zstd', ['--version']);
  if (!zstdCli) console.warn('SKIPPED: zstd CLI checks: the zstd command is not installed');
});

afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

describe('zstd codec', () => {
  it('is id 6, "zstd", levels 1..22, default 15', () => {
    expect([codec.id, codec.name, codec.minLevel, codec.maxLevel, codec.defaultLevel]).toEqual([6, 'zstd', 1, 22, 15]);
  });

  it('writes compressor options as squashfs-tools does: the level as a u32, none for 15', () => {
    expect(codec.encodeOptions(15)).toBeUndefined();
    expect([...codec.encodeOptions(19)!]).toEqual([19, 0, 0, 0]);
    expect([...codec.encodeOptions(1)!]).toEqual([1, 0, 0, 0]);
    expect([...codec.encodeOptions(22)!]).toEqual([22, 0, 0, 0]);
  });

  it('refuses levels outside 1..22', () => {
    for (const level of [0, 23, 1.5, -1]) {
      expect(() => codec.compress(new Uint8Array(100), level)).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    }
  });

  it('compresses empty and one-byte blocks', () => {
    for (const data of [new Uint8Array(0), Uint8Array.of(42)]) {
      const frame = codec.compress(data, 15);
      expect(parseFrameHeader(frame).contentSize).toBe(data.length);
      expect([...codec.decompress(frame, data.length)]).toEqual([...data]);
    }
  });

  it('compresses a view into a larger buffer (only the view)', () => {
    const big = wordText(50_000, 9);
    const view = big.subarray(1234, 1234 + 20_000);
    expect(Buffer.compare(codec.decompress(codec.compress(view, 3), view.length), view)).toBe(0);
  });

  it('takes a precompiled WebAssembly.Module, and refuses anything else', async () => {
    const module = await loadZstdWasmModule();
    const fromModule = await createZstdCodec({ module });
    const data = wordText(10_000, 3);
    expect(Buffer.compare(fromModule.compress(data, 7), codec.compress(data, 7))).toBe(0);
    // A valid module that is not zstd.wasm.
    const empty = new WebAssembly.Module(Uint8Array.of(0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00));
    await expect(createZstdCodec({ module: empty })).rejects.toMatchObject({ code: 'CODEC_ERROR', message: expect.stringMatching(/not @foxglove\/wasm-zstd's wasm-zstd\.wasm/) });
    expect(() => instantiateZstdWasm(new Uint8Array(8) as never)).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
  });

  it('the sync registries read zstd only; loadNodeCodecs() also writes it', async () => {
    expect(() => zstdCodec().compress(new Uint8Array(10), 15)).toThrow(expect.objectContaining({ code: 'UNSUPPORTED_COMPRESSOR' }));
    expect(() => nodeCodecs().get(6)!.compress(new Uint8Array(10), 15)).toThrow(expect.objectContaining({ code: 'UNSUPPORTED_COMPRESSOR' }));
    const loaded = await loadNodeCodecs({ zstdModule: await loadZstdWasmModule() });
    expect([...loaded.values()].map((c) => c.name).sort()).toEqual(['gzip', 'lz4', 'lzma', 'lzo', 'xz', 'zstd']);
    const data = wordText(5000, 1);
    expect(Buffer.compare(loaded.get(6)!.decompress(loaded.get(6)!.compress(data, 15), data.length), data)).toBe(0);
    // gzip stays Node's native one.
    expect(loaded.get(1)!.compressAsync).toBeDefined();
  });
});

describe('one frame per block, window no larger than max(block size, 8 KiB)', () => {
  const sizes = [4 * KiB, 8 * KiB, 128 * KiB, MiB];
  const levels = [1, 3, 15, 19, 22];
  const frames: { label: string; input: Buffer; frame: Uint8Array }[] = [];

  beforeAll(() => {
    for (const size of sizes) {
      const inputs: [string, Buffer, number[]][] = [
        ['text', wordText(size, size), levels],
        ['random', pseudoRandomBytes(size, size), [1, 22]],
        ['repetitive', compressibleBytes(size, 5), [3, 19]],
      ];
      for (const [kind, input, kindLevels] of inputs) {
        for (const level of kindLevels) frames.push({ label: `${kind} ${size / KiB} KiB level ${level}`, input, frame: codec.compress(input, level) });
      }
    }
  });

  it('declares the content size and a window the kernel accepts, for every frame', () => {
    const bad: string[] = [];
    for (const { label, input, frame } of frames) {
      const header = parseFrameHeader(frame);
      const limit = Math.max(input.length, 8 * KiB);
      if (header.contentSize !== input.length) bad.push(`${label}: content size ${header.contentSize}`);
      if (header.windowSize > limit) bad.push(`${label}: window ${header.windowSize} > ${limit}`);
    }
    expect(bad).toEqual([]);
    expect(frames.length).toBe(sizes.length * 9);
  });

  it('decodes with our decoder, which also checks it is exactly one frame', () => {
    for (const { label, input, frame } of frames) {
      expect(Buffer.compare(codec.decompress(frame, input.length), input), label).toBe(0);
    }
  });

  it('decodes with the zstd CLI, frame by frame', async (ctx) => {
    if (!zstdCli) ctx.skip();
    // zstd -d reads concatenated frames; each frame must also stand alone, so
    // every frame goes in its own file and they are decoded in one run.
    const dir = path.join(work, 'frames');
    await fsp.mkdir(dir, { recursive: true });
    const names = await Promise.all(
      frames.map(async ({ frame }, i) => {
        const name = path.join(dir, `${String(i).padStart(3, '0')}.zst`);
        await fsp.writeFile(name, frame);
        return name;
      }),
    );
    const r = await run('zstd', ['-d', '-q', '-f', '--no-progress', ...names]);
    expect(r.stderr.toString()).toBe('');
    expect(r.code).toBe(0);
    for (const [i, { label, input }] of frames.entries()) {
      expect(Buffer.compare(await fsp.readFile(names[i].slice(0, -4)), input), label).toBe(0);
    }
  });

  it('compresses about as well as the zstd CLI at the same level', async (ctx) => {
    if (!zstdCli) ctx.skip();
    const input = wordText(128 * KiB, 77);
    const file = path.join(work, 'ratio.txt');
    await fsp.writeFile(file, input);
    for (const level of [3, 15, 19]) {
      const cli = await run('zstd', ['-q', '-c', '--no-check', `-${level}`, file]);
      expect(cli.code).toBe(0);
      const ours = codec.compress(input, level).length;
      expect(ours / cli.stdout.length, `level ${level}: ours ${ours}, CLI ${cli.stdout.length}`).toBeLessThan(1.02);
    }
  });
});


describe('images written with zstd', async () => {
  const levels = [1, 3, 15, 19];
  const blockSizes = [4 * KiB, 128 * KiB, MiB];
  const mountReason = await cannotMount('kernel');
  if (mountReason) console.warn(`SKIPPED: zstd kernel mount checks: ${mountReason}`);
  const tools = {
    unsquashfs: await hasTool('unsquashfs', ['-help']),
    sqfs2tar: await hasTool('sqfs2tar', ['--help']),
    '7z': await hasTool('7z', ['--help']),
  };
  for (const [tool, present] of Object.entries(tools)) if (!present) console.warn(`SKIPPED: zstd image checks with ${tool}: not installed`);

  let src: string;
  const images = new Map<string, string>();

  beforeAll(async () => {
    src = path.join(work, 'src');
    await fsp.mkdir(path.join(src, 'dir', 'deeper'), { recursive: true });
    // More than one 1 MiB block plus a tail, text-like; an incompressible
    // file (stored raw); a repetitive one; small files (fragments).
    await fsp.writeFile(path.join(src, 'big.txt'), wordText(MiB + 100 * KiB, 1));
    await fsp.writeFile(path.join(src, 'random.bin'), pseudoRandomBytes(150 * KiB, 2));
    await fsp.writeFile(path.join(src, 'dir', 'repetitive.txt'), compressibleBytes(300 * KiB, 3));
    for (let i = 0; i < 20; i++) await fsp.writeFile(path.join(src, 'dir', 'deeper', `small-${i}.txt`), wordText(100 + i * 300, 10 + i));
    await fsp.writeFile(path.join(src, 'empty'), '');
    await fsp.symlink('big.txt', path.join(src, 'link'));
    const codecs = createRegistry([codec]);
    for (const blockSize of blockSizes) {
      for (const level of levels) {
        const sink = memorySink();
        await writeImage(nodeSource(), src, sink, { codecs, compression: 'zstd', level, blockSize, mtime: 1_700_000_000 });
        const file = path.join(work, `zstd-${level}-${blockSize}.sqfs`);
        await fsp.writeFile(file, sink.image());
        images.set(`level ${level}, ${blockSize / KiB} KiB blocks`, file);
      }
    }
  });

  const cases = blockSizes.flatMap((b) => levels.map((l) => `level ${l}, ${b / KiB} KiB blocks`));

  it.each(cases)('carries the level in its compressor options (%s)', async (label) => {
    const image = await fsp.readFile(images.get(label)!);
    const level = Number(/level (\d+)/.exec(label)![1]);
    const flags = image.readUInt16LE(24);
    expect(image.readUInt16LE(20)).toBe(6);
    if (level === 15) {
      expect(flags & 0x400).toBe(0);
    } else {
      expect(flags & 0x400).toBe(0x400);
      // One uncompressed metadata block of 4 bytes right after the superblock.
      expect([...image.subarray(96, 102)]).toEqual([4, 0x80, level, 0, 0, 0]);
    }
    if (tools.unsquashfs) {
      const r = await run('unsquashfs', ['-s', images.get(label)!]);
      const text = r.stdout.toString();
      expect(text).toMatch(/^Compression zstd$/m);
      if (level !== 15) expect(text).toContain(`compression-level ${level}`);
    }
  });

  it.each(cases)('unsquashfs -d extracts exactly the source (%s)', async (label) => {
    if (!tools.unsquashfs) return;
    await expectExtractMatches(images.get(label)!, src);
  });

  it.each(cases)('our reader unpacks exactly the source (%s)', async (label) => {
    const out = path.join(work, `ours-${label.replace(/\W+/g, '-')}`);
    const image = await openImage(images.get(label)!);
    try {
      await unpackImage(image, out);
    } finally {
      await image.close();
    }
    expect(await compareTrees(src, out, { xattrs: false })).toEqual([]);
  });

  it.each(cases)('sqfs2tar and 7z accept it (%s)', async (label) => {
    if (tools.sqfs2tar) await expectSqfs2tarAccepts(images.get(label)!);
    if (tools['7z']) await expect7zAccepts(images.get(label)!);
  });

  it.skipIf(mountReason !== undefined).each(cases)('the kernel mounts it and shows exactly the source (%s)', async (label) => {
    // The images carry no xattrs, so the kernel answers listxattr with EOPNOTSUPP: not compared.
    const problems = await withMount('kernel', images.get(label)!, (dir) => compareTrees(src, dir, { xattrs: false }));
    expect(problems).toEqual([]);
  });

  it.skipIf(mountReason !== undefined)('the kernel check has teeth: a frame with an 8 MiB window and no content size is refused', async () => {
    // The same frames re-headed: no content size, window 8 MiB. Still valid
    // zstd (unsquashfs reads it), but more window than the kernel allots.
    const wide: Codec = {
      ...codec,
      compress: (data, level) => {
        const frame = codec.compress(data, level);
        const fhd = frame[4];
        const singleSegment = (fhd & 0x20) !== 0;
        const fcsFlag = fhd >>> 6;
        const headerSize = 5 + (singleSegment ? 0 : 1) + (fcsFlag === 0 ? (singleSegment ? 1 : 0) : 1 << fcsFlag);
        return Uint8Array.from([0x28, 0xb5, 0x2f, 0xfd, fhd & 0x04, (23 - 10) << 3, ...frame.subarray(headerSize)]);
      },
    };
    const sink = memorySink();
    await writeImage(nodeSource(), src, sink, { codecs: createRegistry([wide]), compression: 'zstd', level: 3, blockSize: 128 * KiB });
    const file = path.join(work, 'wide-window.sqfs');
    await fsp.writeFile(file, sink.image());
    if (tools.unsquashfs) await expectExtractMatches(file, src);
    await expect(withMount('kernel', file, (dir) => fsp.readFile(path.join(dir, 'big.txt')))).rejects.toThrow();
  });
});
