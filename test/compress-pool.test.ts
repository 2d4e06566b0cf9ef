/**
 * Compression on worker threads: the image is byte-identical whatever the
 * number of threads, and a failing worker fails the pack loudly.
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CompressPool } from '../src/node/compress-pool.js';
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

  it('stores incompressible blocks raw and compressible ones compressed', async () => {
    const pool = new CompressPool('gzip', 2);
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
    const pool = new CompressPool('gzip', 1);
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
