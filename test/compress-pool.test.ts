/**
 * Compression on worker threads: the image is byte-identical whatever the
 * number of threads, and a failing worker fails the pack loudly.
 */
import { promises as fsp } from 'node:fs';
import { inflateSync } from 'node:zlib';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CompressPool } from '../src/node/compress-pool.js';
import { OrderedOutput, type StoredBlock } from '../src/squashfs/writer/output.js';
import { writeImage } from '../src/squashfs/writer/writer.js';
import { nodeSource } from '../src/node/source.js';
import { syncOf } from '../src/source/source.js';
import { FileSink } from '../src/node/file-sink.js';
import { openSync, closeSync, readdirSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { packDirectory } from '../src/node/index.js';
import { expectExtractMatches } from './helpers/oracles.js';
import { makeTrickyTree } from './helpers/tree.js';

let work: string;
let src: string;
beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'sqfs-pool-'));
  src = path.join(work, 'src');
  await makeTrickyTree(src, { blockSize: 4096, big: true });
});
afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

describe('parallel compression', () => {
  it('gives the same bytes on 0, 1, 2 and 3 threads', async () => {
    const images: Buffer[] = [];
    for (const processors of [0, 1, 2, 3]) {
      const image = path.join(work, `p${processors}.sqfs`);
      await packDirectory(src, image, { blockSize: 4096, mtime: 7, processors });
      images.push(await fsp.readFile(image));
    }
    for (const image of images.slice(1)) expect(Buffer.compare(image, images[0]!)).toBe(0);
    await expectExtractMatches(path.join(work, 'p2.sqfs'), src);
  });

  it('gives the same bytes with zstd on 0 and 2 threads (the workers share one compiled module)', async () => {
    const images: Buffer[] = [];
    for (const processors of [0, 2]) {
      const image = path.join(work, `zstd-p${processors}.sqfs`);
      await packDirectory(src, image, { blockSize: 4096, mtime: 7, processors, compression: 'zstd', level: 3 });
      images.push(await fsp.readFile(image));
    }
    expect(Buffer.compare(images[1]!, images[0]!)).toBe(0);
  });

  it('reuses the block buffers the workers hand back, and stores only the bytes a view shows', async () => {
    const pool = new CompressPool('gzip', { threads: 1, blockSize: 4096 });
    try {
      const first = pool.buffer(4096);
      first.fill(0x61);
      await pool.store(first, 9);
      const again = pool.buffer(1000);
      expect(again.buffer.byteLength).toBe(4096);
      expect(again[0]).toBe(0x61); // the same memory come back, not a fresh zeroed buffer
      again.fill(0x62);
      const stored = await pool.store(again, 9);
      expect(inflateSync(stored.bytes)).toEqual(Buffer.alloc(1000, 0x62));
      expect(pool.buffer(5000).length).toBe(5000); // beyond a block: a buffer of its own
    } finally {
      await pool.close();
    }
  });

  it('reads blocks from a file descriptor itself: compressed, raw, holes, a short file, a bad descriptor', async () => {
    const file = path.join(work, 'direct.bin');
    let x = 88172645;
    const random = new Uint8Array(4096).map(() => ((x ^= x << 13), (x ^= x >>> 17), (x ^= x << 5), x >>> 24));
    const text = new TextEncoder().encode('squashfs '.repeat(456)).subarray(0, 4096);
    await fsp.writeFile(file, Buffer.concat([text, random, new Uint8Array(4096)]));
    const pool = new CompressPool('gzip', { threads: 2, blockSize: 4096 });
    const fd = openSync(file, 'r');
    try {
      const [packed, raw, hole] = await Promise.all([0, 4096, 8192].map((p) => pool.storeFile(fd, p, 4096, 9)));
      expect(inflateSync(packed!.bytes)).toEqual(Buffer.from(text));
      expect(packed!.word).toBe(packed!.bytes.length);
      expect(raw!.word).toBe(4096 | (1 << 24));
      expect(Buffer.from(raw!.bytes)).toEqual(Buffer.from(random));
      expect(hole).toEqual({ bytes: new Uint8Array(0), word: 0 });
      await expect(pool.storeFile(fd, 10000, 4096, 9)).rejects.toMatchObject({ code: 'SOURCE_CHANGED', message: 'it ended at 12288 bytes' });
    } finally {
      closeSync(fd);
    }
    try {
      await expect(pool.storeFile(fd, 0, 4096, 9)).rejects.toMatchObject({ code: 'EBADF' });
    } finally {
      await pool.close();
    }
  });

  it('a file that ends early fails the pack with SOURCE_CHANGED naming it, and every descriptor is closed', async () => {
    const dir = path.join(work, 'shrunk');
    await fsp.mkdir(dir, { recursive: true });
    await fsp.writeFile(path.join(dir, 'big'), new Uint8Array(5 * 4096).fill(7));
    await fsp.writeFile(path.join(dir, 'small'), 'x');
    const real = nodeSource();
    // The walk sees 3 blocks more than the file has: the workers reading it come up short.
    const lying = { ...real, lstat: async (p: Parameters<typeof real.lstat>[0]) => {
      const st = await real.lstat(p);
      return String(p).endsWith('/big') ? { ...st, size: st.size + 3 * 4096 } : st;
    } };
    // Spread from the real source, it is not the real one: its own lstat is called, not the real one's synchronous calls.
    expect(syncOf(real)).toBe(real.sync);
    expect(syncOf(lying)).toBeUndefined();
    const fds = () => readdirSync('/proc/self/fd').length;
    const before = fds();
    const pool = new CompressPool('gzip', { threads: 2, blockSize: 4096 });
    let after = 0;
    try {
      const sink = { write: () => undefined, finish: () => undefined };
      const error = await writeImage(lying, dir, sink, {
        blockSize: 4096,
        storeBlock: (data, level) => pool.store(data, level),
        storeFileBlock: (fd, position, length, level) => pool.storeFile(fd, position, length, level),
      }).catch((e) => e);
      expect(error).toMatchObject({ code: 'SOURCE_CHANGED', message: expect.stringMatching(/big changed while it was packed: it ended at 20480 bytes, 32768 were expected/) });
    } finally {
      await pool.close();
      await new Promise((resolve) => setTimeout(resolve, 100)); // the deferred close runs once the workers are done
      after = fds();
    }
    expect(after).toBe(before); // the image's file, held open for the workers, was closed
  });

  it('hashes blocks it reads: alone, or beside the stored block (holes too)', async () => {
    const file = path.join(work, 'hashed.bin');
    const text = new TextEncoder().encode('squashfs '.repeat(456)).subarray(0, 4096);
    await fsp.writeFile(file, Buffer.concat([text, new Uint8Array(4096)]));
    const sha256 = (bytes: Uint8Array) => new Uint8Array(createHash('sha256').update(bytes).digest());
    const pool = new CompressPool('gzip', { threads: 2, blockSize: 4096 });
    const fd = openSync(file, 'r');
    try {
      expect(await pool.hashFile(fd, 0, 4096)).toEqual(sha256(text));
      expect(await pool.hashFile(fd, 4096, 4096)).toEqual(sha256(new Uint8Array(4096)));
      const packed = await pool.storeFile(fd, 0, 4096, 9, true);
      expect(packed.digest).toEqual(sha256(text));
      expect(inflateSync(packed.bytes)).toEqual(Buffer.from(text));
      expect(await pool.storeFile(fd, 4096, 4096, 9, true)).toEqual({ bytes: new Uint8Array(0), word: 0, digest: sha256(new Uint8Array(4096)) });
      expect((await pool.storeFile(fd, 0, 4096, 9)).digest).toBeUndefined();
      await expect(pool.hashFile(fd, 4096, 8192)).rejects.toMatchObject({ code: 'SOURCE_CHANGED', message: 'it ended at 8192 bytes' });
    } finally {
      closeSync(fd);
      await pool.close();
    }
  });

  it('finds large duplicates by hashing on the workers, as the main thread would', async () => {
    const dir = path.join(work, 'large-dups');
    await fsp.mkdir(dir, { recursive: true });
    let x = 1234567;
    const random = (n: number) => new Uint8Array(n).map(() => ((x ^= x << 13), (x ^= x >>> 17), (x ^= x << 5), x >>> 24));
    const a = random(5 * 4096 + 100);
    await fsp.writeFile(path.join(dir, 'a'), a);
    await fsp.writeFile(path.join(dir, 'b-same'), a);
    await fsp.writeFile(path.join(dir, 'c-same-size'), random(a.length)); // a candidate, not a duplicate
    await fsp.writeFile(path.join(dir, 'd-holes'), new Uint8Array(3 * 4096));
    await fsp.writeFile(path.join(dir, 'e-holes'), new Uint8Array(3 * 4096));
    const images: Buffer[] = [];
    for (const processors of [0, 2]) {
      const image = path.join(work, `large-dups-${processors}.sqfs`);
      await packDirectory(dir, image, { blockSize: 4096, mtime: 7, processors });
      images.push(await fsp.readFile(image));
    }
    expect(Buffer.compare(images[1]!, images[0]!)).toBe(0);
    // a and b-same are stored once: the image holds a's random bytes once and c's once, little more.
    expect(images[1]!.length).toBeLessThan(3 * a.length);
    await expectExtractMatches(path.join(work, 'large-dups-2.sqfs'), dir);
  });

  it('a large possible duplicate that changes between its two reads fails the pack with SOURCE_CHANGED', async () => {
    const dir = path.join(work, 'changing');
    await fsp.mkdir(dir, { recursive: true });
    await fsp.writeFile(path.join(dir, 'a'), new Uint8Array(3 * 4096).fill(1));
    await fsp.writeFile(path.join(dir, 'b'), new Uint8Array(3 * 4096).fill(2)); // the same size: both are hashed first
    const pool = new CompressPool('gzip', { threads: 2, blockSize: 4096 });
    let hashed = 0;
    try {
      const sink = { write: () => undefined, finish: () => undefined };
      const error = await writeImage(nodeSource(), dir, sink, {
        blockSize: 4096,
        storeBlock: (data, level) => pool.store(data, level),
        storeFileBlock: (fd, position, length, level, digest) => pool.storeFile(fd, position, length, level, digest),
        hashFileBlock: async (fd, position, length) => {
          const digest = await pool.hashFile(fd, position, length);
          // Once all of b is hashed, b changes (same size) before it is stored.
          if (++hashed === 6) writeFileSync(path.join(dir, 'b'), new Uint8Array(3 * 4096).fill(3));
          return digest;
        },
      }).catch((e) => e);
      expect(hashed).toBe(6);
      expect(error).toMatchObject({ code: 'SOURCE_CHANGED', message: expect.stringMatching(/b changed while it was packed: its contents changed between two reads/) });
    } finally {
      await pool.close();
    }
  });

  it('stores incompressible blocks raw and compressible ones compressed', async () => {
    const pool = new CompressPool('gzip', { threads: 2 });
    try {
      let x = 2463534242;
      const random = new Uint8Array(4096).map(() => ((x ^= x << 13), (x ^= x >>> 17), (x ^= x << 5), x >>> 24));
      const text = new TextEncoder().encode('squashfs '.repeat(500));
      const [a, b] = await Promise.all([pool.store(random.slice(), 9), pool.store(text.slice(), 9)]);
      expect(a.word & (1 << 24)).toBe(1 << 24);
      expect(a.bytes.length).toBe(4096);
      expect(b.word & (1 << 24)).toBe(0);
      expect(b.bytes.length).toBeLessThan(text.length / 10);
    } finally {
      await pool.close();
    }
  });

  it('fails loudly when a worker cannot compress', async () => {
    const pool = new CompressPool('gzip', { threads: 1 });
    try {
      const error = await pool.store(new Uint8Array(100), 42).catch((e) => e);
      expect(error.code).toBe('CODEC_ERROR');
      expect(error.message).toMatch(/gzip compression failed on a worker/);
    } finally {
      await pool.close();
    }
  });

  it('refuses a bad processors count', async () => {
    const error = await packDirectory(src, path.join(work, 'bad.sqfs'), { processors: -1 }).catch((e) => e);
    expect(error.code).toBe('INVALID_OPTION');
  });
});

describe('ordered output', () => {
  it('does not count file marks against the blocks in flight', async () => {
    const written: number[] = [];
    const out = new OrderedOutput({ write: (chunk) => void written.push(chunk.length), finish: () => undefined }, 2);
    let release!: (block: StoredBlock) => void;
    await out.push(new Promise<StoredBlock>((resolve) => (release = resolve)));
    const offsets: number[] = [];
    // A run of small files: a mark each. None of them may wait for the block above.
    for (let i = 0; i < 10; i++) await out.mark((offset) => offsets.push(offset));
    await out.push(Promise.resolve({ bytes: new Uint8Array(3), word: 3 }));
    expect(written).toEqual([]);
    release({ bytes: new Uint8Array(5), word: 5 });
    await out.flush();
    expect(written).toEqual([5, 3]);
    expect(offsets).toEqual(Array(10).fill(5));
  });
});

describe('file sink', () => {
  it('writes gathered chunks in order, the superblock last, and finishes a short writev', async () => {
    const target = path.join(work, 'sink.img');
    const sink = new FileSink(target);
    await sink.open();
    // A handle whose writev writes only the first chunk: the sink must write the rest itself.
    const handle = (sink as unknown as { handle: import('node:fs/promises').FileHandle }).handle;
    const writev = handle.writev.bind(handle);
    let short = 0;
    handle.writev = (async (buffers: Uint8Array[]) => (short++, writev(buffers.slice(0, 1)))) as typeof handle.writev;
    const chunks = Array.from({ length: 40 }, (_, i) => new Uint8Array(64 * 1024 + i).fill(i + 1));
    await sink.write(new Uint8Array(96));
    for (const chunk of chunks) await sink.write(chunk);
    sink.finish(new Uint8Array(96).fill(0xee));
    await sink.commit();
    expect(short).toBeGreaterThan(1);
    const expected = Buffer.concat([Buffer.alloc(96, 0xee), ...chunks]);
    expect(Buffer.compare(await fsp.readFile(target), expected)).toBe(0);
  });
});

