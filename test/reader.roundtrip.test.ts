/**
 * Our reader reads our writer's images back exactly (the tricky tree, and
 * fast-check random trees), and over HTTP Range it reads only what a lookup
 * or a file needs.
 */
import { promises as fsp } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytesSource, httpSource, SquashfsImage } from '../src/index.js';
import { nodeCodecs, openImage, packDirectory, unpackImage } from '../src/node/index.js';
import { compareTrees } from './helpers/oracles.js';
import { compressibleBytes, makeTrickyTree, pseudoRandomBytes, randomTreeArb, writeTree } from './helpers/tree.js';

let work: string;
beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'sqfs-roundtrip-'));
});
afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

describe('round trip through our writer and reader', () => {
  for (const [label, options] of [
    ['4K blocks', { blockSize: 4096 }],
    ['1M blocks, no fragments', { blockSize: 1 << 20, noFragments: true }],
    ['always fragments, level 1', { alwaysUseFragments: true, level: 1 }],
  ] as const) {
    it(`unpacks the tricky tree exactly (${label})`, async () => {
      const src = path.join(work, `tricky-${label.replace(/\W+/g, '-')}`);
      await makeTrickyTree(src, { blockSize: 4096 });
      const image = path.join(work, `${label.replace(/\W+/g, '-')}.sqfs`);
      await packDirectory(src, image, { ...options, mtime: 1 });
      const out = path.join(work, `out-${label.replace(/\W+/g, '-')}`);
      const opened = await openImage(image);
      await unpackImage(opened, out);
      await opened.close();
      expect(await compareTrees(src, out)).toEqual([]);
    });
  }

  it('unpacks random trees exactly (fast-check)', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(randomTreeArb({ blockSize: 4096 }), async (tree) => {
        const dir = path.join(work, `random-${run++}`);
        await writeTree(path.join(dir, 'src'), tree);
        await packDirectory(path.join(dir, 'src'), path.join(dir, 'image.sqfs'), { blockSize: 4096, mtime: 0 });
        const opened = await openImage(path.join(dir, 'image.sqfs'));
        await unpackImage(opened, path.join(dir, 'out'));
        await opened.close();
        expect(await compareTrees(path.join(dir, 'src'), path.join(dir, 'out'))).toEqual([]);
        await fsp.rm(dir, { recursive: true, force: true });
      }),
      { numRuns: 12, interruptAfterTimeLimit: 60_000 },
    );
  });

  // Unpack leaves out the chown and chmod calls that creating a file already did the work of: a parent that passes on its group, and a umask, must not fool it.
  it.runIf(process.getuid?.() === 0)('gives the image\'s owners and modes under a setgid parent of another group and a umask of 077', async () => {
    const src = path.join(work, 'owned-src');
    await fsp.mkdir(path.join(src, 'sub'), { recursive: true });
    for (const [name, mode, gid] of [['a644', 0o644, 0], ['b755', 0o755, 0], ['c600', 0o600, 0], ['d640-g5', 0o640, 5], ['sub/e644', 0o644, 0]] as const) {
      await fsp.writeFile(path.join(src, name), `${name}\n`);
      await fsp.chown(path.join(src, name), 0, gid);
      await fsp.chmod(path.join(src, name), mode);
    }
    await fsp.chown(path.join(src, 'sub'), 0, 0);
    const image = path.join(work, 'owned.sqfs');
    await packDirectory(src, image, { mtime: 3 });
    const parent = path.join(work, 'setgid-parent');
    await fsp.mkdir(parent);
    await fsp.chown(parent, 0, 4242);
    await fsp.chmod(parent, 0o2777);
    const out = path.join(parent, 'out');
    const opened = await openImage(image);
    const umask = process.umask(0o077);
    try {
      await unpackImage(opened, out, { threads: 0 });
    } finally {
      process.umask(umask);
      await opened.close();
    }
    expect((await fsp.stat(path.join(out, 'a644'))).gid).toBe(0); // created with the parent's group 4242, then given the image's
    expect((await fsp.stat(path.join(out, 'b755'))).mode & 0o7777).toBe(0o755); // created under the umask, then given its mode
    expect(await compareTrees(src, out)).toEqual([]);
  });

  it('refuses to unpack over a non-empty directory unless forced, and then replaces it', async () => {
    const src = path.join(work, 'small');
    await fsp.mkdir(path.join(src, 'd'), { recursive: true });
    await fsp.writeFile(path.join(src, 'd/new.txt'), 'new\n');
    const image = path.join(work, 'small.sqfs');
    await packDirectory(src, image, { mtime: 0 });
    const target = path.join(work, 'occupied');
    await fsp.mkdir(target);
    await fsp.writeFile(path.join(target, 'old.txt'), 'old\n');
    const opened = await openImage(image);
    const refused = await unpackImage(opened, target).catch((e) => e);
    expect(refused.code).toBe('WRITE_FAILED');
    expect(await fsp.readdir(target)).toEqual(['old.txt']);
    await unpackImage(opened, target, { force: true });
    expect(await fsp.readdir(target)).toEqual(['d']);
    expect(await fsp.readFile(path.join(target, 'd/new.txt'), 'utf8')).toBe('new\n');
    expect((await fsp.readdir(work)).filter((n) => n.includes('.unpack-'))).toEqual([]);
    await opened.close();
  });
});

describe('unpack: worker threads, this thread alone, and a non-file source write the same tree', () => {
  // A tree whose big files are cut into pieces (4 MiB) written on several threads: holes inside and at the end, a fragment tail.
  let src: string;
  let image: string;
  beforeAll(async () => {
    src = path.join(work, 'paths-src');
    await makeTrickyTree(src, { blockSize: 131072 });
    const big = Buffer.concat([pseudoRandomBytes(3 << 20, 1), Buffer.alloc(2 << 20), pseudoRandomBytes((5 << 20) + 777, 2)]);
    await fsp.writeFile(path.join(src, 'big-with-hole-and-tail.bin'), big);
    await fsp.writeFile(path.join(src, 'big-ending-in-hole.bin'), Buffer.concat([pseudoRandomBytes(6 << 20, 3), Buffer.alloc(4 << 20)]));
    await fsp.writeFile(path.join(src, 'big-compressible.txt'), compressibleBytes(9 << 20, 4));
    image = path.join(work, 'paths.sqfs');
    await packDirectory(src, image, { mtime: 7 });
  });

  for (const [label, threads] of [['two workers and this thread', 2], ['this thread alone', 0]] as const) {
    it(`image file, ${label}`, async () => {
      const out = path.join(work, `paths-out-${threads}`);
      const opened = await openImage(image);
      await unpackImage(opened, out, { threads });
      await opened.close();
      expect(await compareTrees(src, out)).toEqual([]);
      const sparse = await fsp.stat(path.join(out, 'big-ending-in-hole.bin'));
      expect(sparse.size).toBe(10 << 20);
      expect(sparse.blocks * 512).toBeLessThan(7 << 20); // the holes stayed holes
    });
  }

  it('a non-file source (bytes)', async () => {
    const out = path.join(work, 'paths-out-bytes');
    const opened = await SquashfsImage.open(bytesSource(await fsp.readFile(image)), { codecs: nodeCodecs() });
    await unpackImage(opened, out);
    expect(await compareTrees(src, out)).toEqual([]);
  });

  it('a damaged block met on a worker fails the unpack with a typed error and leaves nothing behind', async () => {
    const damaged = path.join(work, 'damaged.sqfs');
    const bytes = await fsp.readFile(image);
    const layout = await (await openImage(image)).fileLayout('/big-compressible.txt');
    expect(layout.blockSizes[1]! & 0x1000000).toBe(0); // stored compressed, so damage shows
    const block = layout.blocksStart + (layout.blockSizes[0]! & 0xffffff) + 100; // inside the second block
    bytes.fill(0x5a, block, block + 64);
    await fsp.writeFile(damaged, bytes);
    const target = path.join(work, 'damaged-out');
    const opened = await openImage(damaged);
    const error = await unpackImage(opened, target, { threads: 2 }).catch((e: unknown) => e);
    await opened.close();
    expect(error).toMatchObject({ name: 'SquashfsError' });
    expect(['CODEC_ERROR', 'CORRUPT_IMAGE']).toContain((error as { code: string }).code);
    expect((error as Error).message).toMatch(/big-compressible\.txt/);
    await expect(fsp.stat(target)).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await fsp.readdir(work)).filter((n) => n.includes('.unpack-'))).toEqual([]);
  });
});

describe('reading over HTTP Range', () => {
  let server: Server;
  let url: string;
  let bytes: Buffer;
  let imageSize: number;

  beforeAll(async () => {
    const src = path.join(work, 'http-src');
    // 300 directories of 20 files, and one 20 MB file: far larger than what one lookup needs.
    for (let d = 0; d < 300; d++) {
      await fsp.mkdir(path.join(src, `dir${d}`), { recursive: true });
      for (let f = 0; f < 20; f++) await fsp.writeFile(path.join(src, `dir${d}`, `file${f}.txt`), `dir ${d} file ${f}\n`.repeat(50 + f));
    }
    const big = Buffer.alloc(20 << 20);
    for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i);
    await fsp.writeFile(path.join(src, 'big.bin'), big);
    const image = path.join(work, 'http.sqfs');
    await packDirectory(src, image, { mtime: 0 });
    bytes = await fsp.readFile(image);
    imageSize = bytes.length;
    server = createServer((req, res) => {
      const match = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      if (!match) return void res.writeHead(416).end();
      const start = Number(match[1]);
      const end = Math.min(Number(match[2]), bytes.length - 1);
      res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${bytes.length}`, 'content-length': end - start + 1 });
      res.end(bytes.subarray(start, end + 1));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/image.sqfs`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('reads one small file with a handful of requests', async () => {
    const source = await httpSource(url);
    const image = await SquashfsImage.open(source);
    const text = new TextDecoder().decode(await image.readFile('/dir250/file7.txt'));
    expect(text).toBe('dir 250 file 7\n'.repeat(57));
    console.log(`one small file over HTTP: ${source.requests} requests, ${source.bytesRead} of ${imageSize} bytes`);
    expect(source.requests).toBeLessThanOrEqual(12);
    expect(source.bytesRead).toBeLessThan(imageSize / 50);
  });

  it('streams a large file reading little more than its blocks', async () => {
    const source = await httpSource(url);
    const image = await SquashfsImage.open(source);
    const chunks: Uint8Array[] = [];
    const reader = image.createReadStream('/big.bin').getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
    }
    const got = Buffer.concat(chunks);
    expect(got.length).toBe(20 << 20);
    expect(got.readUInt32LE(4 * 1000)).toBe((4000 * 2654435761) >>> 0);
    const stat = await image.stat('/big.bin');
    expect(stat.size).toBe(20 << 20);
    expect(source.requests).toBeLessThan(40);
  });
});
