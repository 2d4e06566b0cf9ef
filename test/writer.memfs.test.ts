/**
 * The runtime-agnostic writer (fflate, @noble/hashes, no node: imports) over
 * a memfs source: unsquashfs must read what it makes, bad names are typed
 * errors, and the sink protocol holds.
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Volume } from 'memfs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { excludePatterns, fsSource, SquashfsError, writeImage, type WriterOptions } from '../src/index.js';
import { run } from './helpers/oracles.js';
import { memorySink } from './helpers/memory-sink.js';

let work: string;
beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'sqfs-memfs-'));
});
afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});


function sampleVolume() {
  const vol = Volume.fromJSON({
    '/root/readme.txt': 'hello from memfs\n',
    '/root/src/main.ts': 'export const x = 1;\n'.repeat(500),
    '/root/src/copy.ts': 'export const x = 1;\n'.repeat(500),
    '/root/empty': '',
    '/root/big.bin': Buffer.alloc(300_000, 7),
  });
  vol.mkdirSync('/root/emptydir');
  vol.symlinkSync('readme.txt', '/root/link');
  vol.utimesSync('/root/readme.txt', 1_600_000_000, 1_600_000_000);
  return vol;
}

async function pack(vol: InstanceType<typeof Volume>, options: WriterOptions = {}) {
  const sink = memorySink();
  const result = await writeImage(fsSource(vol.promises as never), '/root', sink, { mtime: 1_700_000_000, ...options });
  return { sink, result, image: sink.image() };
}

describe('writer over memfs (portable codecs)', () => {
  it('makes an image unsquashfs extracts exactly', async () => {
    const vol = sampleVolume();
    const { image, result } = await pack(vol, { xattrs: async (p) => (p === '/root/readme.txt' ? [{ name: 'user.note', value: new TextEncoder().encode('memo') }] : undefined) });
    expect(result.imageSize % 4096).toBe(0);
    expect(image.length).toBe(result.imageSize);
    const file = path.join(work, 'memfs.sqfs');
    await fsp.writeFile(file, image);
    const out = path.join(work, 'memfs-out');
    const r = await run('unsquashfs', ['-no-progress', '-d', out, file]);
    expect(r.stderr.toString()).toBe('');
    expect(r.code).toBe(0);
    for (const name of ['readme.txt', 'src/main.ts', 'src/copy.ts', 'empty', 'big.bin']) {
      expect(Buffer.compare(await fsp.readFile(path.join(out, name)), vol.readFileSync(`/root/${name}`) as Buffer)).toBe(0);
    }
    expect(await fsp.readlink(path.join(out, 'link'))).toBe('readme.txt');
    expect((await fsp.stat(path.join(out, 'emptydir'))).isDirectory()).toBe(true);
    expect(Math.floor((await fsp.stat(path.join(out, 'readme.txt'))).mtimeMs / 1000)).toBe(1_600_000_000);
    const xattr = await run('getfattr', ['-n', 'user.note', '--only-values', path.join(out, 'readme.txt')]);
    if (xattr.code === 0) expect(xattr.stdout.toString()).toBe('memo');
  });

  it('leaves out entries matching gitignore-style exclude patterns', async () => {
    const vol = sampleVolume();
    vol.mkdirSync('/root/build/cache', { recursive: true });
    vol.mkdirSync('/root/src/build', { recursive: true });
    vol.mkdirSync('/root/src/cache', { recursive: true });
    vol.writeFileSync('/root/build/out.js', 'x');
    vol.writeFileSync('/root/src/build/keep.js', 'x');
    vol.writeFileSync('/root/src/debug.log', 'x');
    vol.writeFileSync('/root/src/keep.log', 'x');
    const { image } = await pack(vol, { exclude: excludePatterns(['/build', '*.log', '!keep.log', 'cache/']) });
    const file = path.join(work, 'exclude.sqfs');
    await fsp.writeFile(file, image);
    const listing = (await run('unsquashfs', ['-l', '-d', '', file])).stdout.toString().split('\n').filter(Boolean).sort();
    expect(listing).toEqual(
      ['/big.bin', '/empty', '/emptydir', '/link', '/readme.txt', '/src', '/src/build', '/src/build/keep.js', '/src/copy.ts', '/src/keep.log', '/src/main.ts'].sort(),
    );
  });

  it('is deterministic: the same tree and options give the same bytes', async () => {
    // One tree packed twice (two volumes made a second apart would differ in their entries' times).
    const vol = sampleVolume();
    const a = (await pack(vol)).image;
    const b = (await pack(vol)).image;
    expect(Buffer.compare(a, b)).toBe(0);
  });

  it('writes a superblock placeholder first and the superblock last', async () => {
    const { sink, image } = await pack(sampleVolume());
    expect(sink.chunks[0]).toEqual(new Uint8Array(96));
    expect(new DataView(image.buffer).getUint32(0, true)).toBe(0x73717368);
  });

  it('refuses a name longer than 255 bytes, naming it', async () => {
    const vol = sampleVolume();
    vol.writeFileSync(`/root/src/${'n'.repeat(256)}`, 'x');
    const error = await pack(vol).catch((e) => e);
    expect(error).toBeInstanceOf(SquashfsError);
    expect(error.code).toBe('INVALID_NAME');
    expect(error.path).toContain(`/root/src/${'n'.repeat(256)}`);
    expect(error.message).toMatch(/256 bytes long/);
  });

  it('rejects bad options with INVALID_OPTION', async () => {
    for (const options of [{ blockSize: 3000 }, { blockSize: 2 << 20 }, { level: 10 }, { mtime: -1 }] as WriterOptions[]) {
      const error = await pack(sampleVolume(), options).catch((e) => e);
      expect(error.code).toBe('INVALID_OPTION');
    }
    expect((await pack(sampleVolume(), { compression: 'lzo' }).catch((e) => e)).code).toBe('UNSUPPORTED_COMPRESSOR');
  });

  it('reports a missing root and a root that is a file', async () => {
    const vol = sampleVolume();
    const missing = await writeImage(fsSource(vol.promises as never), '/nope', memorySink()).catch((e) => e);
    expect(missing.code).toBe('SOURCE_NOT_FOUND');
    expect(missing.path).toBe('/nope');
    const file = await writeImage(fsSource(vol.promises as never), '/root/readme.txt', memorySink()).catch((e) => e);
    expect(file.code).toBe('NOT_A_DIRECTORY');
  });

  // A small file is read with one read of size + 1 bytes; what lstat said is checked against what the reads give.
  describe('a small file whose reads disagree with its lstat size', () => {
    /** memfs, with readme.txt's lstat size changed by `delta` and every read cut to at most `most` bytes. */
    const skewed = (delta: number, most = Infinity, vol = sampleVolume()) => {
      const base = fsSource(vol.promises as never);
      return {
        ...base,
        lstat: async (p: string | Uint8Array) => {
          const st = await base.lstat(p);
          return p === '/root/readme.txt' ? { ...st, size: st.size + delta } : st;
        },
        open: async (p: string | Uint8Array) => {
          const file = await base.open(p);
          return { ...file, fd: undefined, read: (buffer: Uint8Array, position: number) => file.read(buffer.subarray(0, Math.min(most, buffer.length)), position) };
        },
      };
    };
    const packFrom = (source: ReturnType<typeof skewed>) => writeImage(source, '/root', memorySink(), { mtime: 1_700_000_000 });

    it('it grew: SOURCE_CHANGED naming it', async () => {
      const error = await packFrom(skewed(-3)).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'SOURCE_CHANGED', message: expect.stringMatching(/readme\.txt.*grew/) });
    });

    it('it shrank, even read a few bytes at a time: SOURCE_CHANGED naming it', async () => {
      const error = await packFrom(skewed(+3, 4)).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'SOURCE_CHANGED', message: expect.stringMatching(/readme\.txt.*ended at 17 bytes/) });
    });

    it('short reads that add up to the size give the same image', async () => {
      const vol = sampleVolume(); // one volume for both: its files' times are the time it was made
      const sink = memorySink();
      await writeImage(skewed(0, 5, vol), '/root', sink, { mtime: 1_700_000_000 });
      expect(Buffer.compare(sink.image(), (await pack(vol)).image)).toBe(0);
    });
  });

  it('stops with ABORTED when the signal fires', async () => {
    const controller = new AbortController();
    controller.abort();
    const error = await pack(sampleVolume(), { signal: controller.signal }).catch((e) => e);
    expect(error.code).toBe('ABORTED');
  });
});

describe('packDirectory output errors', () => {
  it('gives WRITE_FAILED when the image cannot be created', async () => {
    const { packDirectory } = await import('../src/node/index.js');
    const error = await packDirectory(work, path.join(work, 'no/such/dir/out.sqfs')).catch((e) => e);
    expect(error).toBeInstanceOf(SquashfsError);
    expect(error.code).toBe('WRITE_FAILED');
    expect(error.message).toContain('no/such/dir');
  });
});
