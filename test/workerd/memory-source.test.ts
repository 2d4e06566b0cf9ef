/**
 * memorySource (the in-memory TreeSource for Workers) and the
 * CompressionStream gzip codec, in Node: shapes, errors, what the writer
 * makes of them. test/workerd.test.ts runs both in real workerd.
 */
import { inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { compressionStreamGzipCodec, deflateWithCompressionStream, hasCompressionStream } from '../../src/codecs/compression-stream.js';
import { gzipCodec } from '../../src/codecs/gzip.js';
import { bytesSource, createRegistry, SquashfsImage, writeImage } from '../../src/index.js';
import { memoryDir, memorySource } from '../../src/source/memory-source.js';
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, type SourcePath } from '../../src/source/source.js';
import { memorySink } from '../helpers/memory-sink.js';


const names = async (source: ReturnType<typeof memorySource>, path: SourcePath) =>
  (await source.readdir(path)).map((n) => new TextDecoder().decode(n));

describe('memorySource', () => {
  const source = memorySource(
    {
      'a.txt': 'text',
      'b.bin': new Uint8Array([1, 2, 3]),
      'run.sh': { data: '#!/bin/sh\n', mode: 0o100755, mtime: 5, uid: 7, gid: 8 },
      link: { symlink: 'a.txt' },
      dir: { sub: {}, inner: 'x' },
      tagged: memoryDir({ data: 'a file named data' }, { mode: 0o700, mtime: 9 }),
      plain: { data: 'x' }, // reads as a file: the documented ambiguity
    },
    { mtime: 100, uid: 1, gid: 2 },
  );

  it('describes files, links and directories with defaults and metadata', async () => {
    const a = await source.lstat('/a.txt');
    expect(a).toMatchObject({ mode: S_IFREG | 0o644, size: 4, mtime: 100, uid: 1, gid: 2, nlink: 1 });
    expect(await source.lstat('/run.sh')).toMatchObject({ mode: S_IFREG | 0o755, mtime: 5, uid: 7, gid: 8 });
    expect(await source.lstat('/link')).toMatchObject({ mode: S_IFLNK | 0o777, size: 5 });
    expect(new TextDecoder().decode(await source.readlink('/link'))).toBe('a.txt');
    const root = await source.lstat('/');
    expect(root.mode & S_IFMT).toBe(S_IFDIR);
    expect(root.nlink).toBe(4); // ".", "..", dir, tagged
    expect((await source.lstat('/dir')).nlink).toBe(3);
    expect(await source.lstat('/tagged')).toMatchObject({ mode: S_IFDIR | 0o700, mtime: 9 });
    expect(await names(source, '/tagged')).toEqual(['data']);
    expect((await source.lstat('/plain')).mode & S_IFMT).toBe(S_IFREG);
    // Paths: "", "/", "." and doubled slashes name the same entries; inode numbers are per path.
    expect((await source.lstat('')).ino).toBe(root.ino);
    expect((await source.lstat('//dir/./sub/')).ino).toBe((await source.lstat('/dir/sub')).ino);
    expect((await source.lstat('/dir/sub')).ino).not.toBe((await source.lstat('/dir')).ino);
    expect(await names(source, new TextEncoder().encode('/dir'))).toEqual(['sub', 'inner']);
  });

  it('reads files at positions', async () => {
    const file = await source.open('/b.bin');
    const buffer = new Uint8Array(2);
    expect(await file.read(buffer, 1)).toBe(2);
    expect([...buffer]).toEqual([2, 3]);
    expect(await file.read(buffer, 3)).toBe(0);
    await file.close();
  });

  it('gives typed errors that name the path', async () => {
    await expect(source.lstat('/nope')).rejects.toMatchObject({ code: 'SOURCE_NOT_FOUND', path: '/nope' });
    await expect(source.lstat('/dir/..')).rejects.toMatchObject({ code: 'SOURCE_NOT_FOUND' });
    await expect(source.lstat('/a.txt/x')).rejects.toMatchObject({ code: 'NOT_A_DIRECTORY', path: '/a.txt/x' });
    await expect(source.readdir('/a.txt')).rejects.toMatchObject({ code: 'NOT_A_DIRECTORY' });
    await expect(source.readlink('/a.txt')).rejects.toMatchObject({ code: 'SOURCE_UNREADABLE' });
    await expect(source.open('/dir')).rejects.toMatchObject({ code: 'SOURCE_UNREADABLE' });
    await expect(source.lstat(new Uint8Array([0x2f, 0xff]))).rejects.toMatchObject({ code: 'SOURCE_NOT_FOUND' });
    const bad = memorySource({ x: null as never });
    await expect(bad.lstat('/x')).rejects.toMatchObject({ code: 'INVALID_OPTION', path: '/x' });
    expect(() => memorySource('file' as never)).toThrow(/must be a directory/);
  });

  it('packs into an image the reader sees alike, below any root, and refuses bad names', async () => {
    const sink = memorySink();
    await writeImage(source, '/dir', sink, { mtime: 1 });
    const image = await SquashfsImage.open(bytesSource(sink.image()));
    expect(new TextDecoder().decode(await image.readFile('inner'))).toBe('x');
    expect((await image.stat('sub')).type).toBe('directory');

    const whole = memorySink();
    await writeImage(source, '/', whole, { mtime: 1 });
    const all = await SquashfsImage.open(bytesSource(whole.image()));
    expect(await all.stat('run.sh')).toMatchObject({ mode: S_IFREG | 0o755, uid: 7, gid: 8, mtime: 5 });
    expect(new TextDecoder().decode(await all.readlink('link'))).toBe('a.txt');
    expect(new TextDecoder().decode(await all.readFile('tagged/data'))).toBe('a file named data');

    const slash = await writeImage(memorySource({ 'a/b': 'x' }), '/', memorySink()).catch((e) => e);
    expect(slash.code).toBe('INVALID_NAME');
    const missing = await writeImage(source, '/nope', memorySink()).catch((e) => e);
    expect(missing.code).toBe('SOURCE_NOT_FOUND');
  });

  it('carries xattrs', async () => {
    const withXattrs = memorySource({ f: { data: 'x', xattrs: { 'user.a': 'b', 'user.c': new Uint8Array([0]) } } });
    expect(await withXattrs.xattrs!('/f')).toEqual([
      { name: 'user.a', value: new TextEncoder().encode('b') },
      { name: 'user.c', value: new Uint8Array([0]) },
    ]);
    expect(await withXattrs.xattrs!('/')).toBeUndefined();
    const sink = memorySink();
    await writeImage(withXattrs, '/', sink, { mtime: 1 });
    const image = await SquashfsImage.open(bytesSource(sink.image()));
    expect((await image.xattrs('f')).map((x) => x.name)).toEqual(['user.a', 'user.c']);
  });
});

describe('compressionStreamGzipCodec (in Node, which has CompressionStream too)', () => {
  const block = new TextEncoder().encode('some text that deflates well. '.repeat(4000));

  it('deflates data blocks natively into zlib streams and keeps fflate for the rest', async () => {
    expect(hasCompressionStream()).toBe(true);
    const codec = compressionStreamGzipCodec();
    expect(codec).toMatchObject({ id: 1, name: 'gzip', defaultLevel: 9, minLevel: 1, maxLevel: 9 });
    const packed = await codec.compressAsync!(block, 9);
    expect([packed[0], packed[1]]).toEqual([0x78, 0x9c]); // zlib, default level
    expect(Buffer.compare(inflateSync(packed), block)).toBe(0);
    expect(Buffer.compare(codec.decompress(packed, block.length), block)).toBe(0);
    const sync = codec.compress(block, 9);
    expect([sync[0], sync[1]]).toEqual([0x78, 0xda]); // fflate at level 9
    expect(codec.encodeOptions(1)).toEqual(gzipCodec().encodeOptions(1));
    expect(codec.decompressAsync).toBeUndefined();
    expect(() => codec.decompress(packed, block.length - 1)).toThrow(/expected/);
  });

  it('can be asked for fflate throughout', () => {
    expect(compressionStreamGzipCodec({ native: false }).compressAsync).toBeUndefined();
  });

  it('handles empty and multi-chunk input', async () => {
    expect(Buffer.compare(inflateSync(await deflateWithCompressionStream(new Uint8Array(0))), Buffer.alloc(0))).toBe(0);
    const big = new Uint8Array(1 << 20).map((_, i) => (i * 2654435761) >>> 24);
    expect(Buffer.compare(inflateSync(await deflateWithCompressionStream(big)), big)).toBe(0);
  });

  it('writes images the reader opens, with the level in the options', async () => {
    const sink = memorySink();
    const codecs = createRegistry([compressionStreamGzipCodec()]);
    await writeImage(memorySource({ big: block, small: 'x' }, { mtime: 1 }), '/', sink, { codecs, level: 3, mtime: 1 });
    const image = await SquashfsImage.open(bytesSource(sink.image()));
    expect(image.info().compressorOptions).toMatchObject({ level: 3 });
    expect(Buffer.compare(await image.readFile('big'), block)).toBe(0);
  });
});
