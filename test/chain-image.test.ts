/**
 * A chain of images read as one (ChainImage) against the kernel: the same
 * layers loop-mounted and stacked with `mount -t overlay -o lowerdir=...`
 * must show the same tree, contents, listings and xattrs. Without root or
 * overlayfs only the kernel comparison is skipped: the merged tree is
 * checked against the description in helpers/chain-image-trees.ts.
 */
import { createHash } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it, vi } from 'vitest';
import { ChainImage, type BackupImage } from '../src/backup/chain-image.js';
import { imageSource } from '../src/backup/image-source.js';
import { SquashfsError } from '../src/errors.js';
import { fileSource, nodeCodecs, openImage, readTreeXattrs } from '../src/node/index.js';
import { SquashfsImage } from '../src/squashfs/reader/image.js';
import type { EntryStat, WalkEntry } from '../src/squashfs/reader/types.js';
import { BASE, BIG, canMakeOnDisk, GONE, LAYER1, LAYER2, makeLayer, MERGED } from './helpers/chain-image-trees.js';
import { cannotMount } from './helpers/mount.js';
import { run } from './helpers/oracles.js';

expectTypeOf<SquashfsImage>().toExtend<BackupImage>();
expectTypeOf<ChainImage>().toExtend<BackupImage>();

/** What both sides must agree on for an entry. */
interface Shown {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  /** Files and symlinks. */
  size?: number;
  /** Not for directories: the kernel says 1 for a merged one, the chain its top layer's. */
  nlink?: number;
  target?: string;
  sha256?: string;
  rdev?: string;
  xattrs: string[];
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const latin1 = (bytes: Uint8Array) => Buffer.from(bytes).toString('latin1');
const showXattrs = (xattrs: readonly { name: string; value: Uint8Array }[] | undefined) =>
  (xattrs ?? []).map((x) => `${x.name}=${latin1(x.value)}`).sort();

let work: string;
let images: string[];
let layers: SquashfsImage[];
let chain: ChainImage;
/** The overlay mount point, when the kernel could mount the chain. */
let merged: string | undefined;
let noKernel: string | undefined;
const mounted: string[] = [];

async function mount(args: string[], at: string): Promise<string | undefined> {
  await fsp.mkdir(at);
  const result = await run('mount', [...args, at]);
  if (result.code !== 0) return result.stderr.toString().trim();
  mounted.unshift(at);
  return undefined;
}

beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'chain-image-'));
  const onDisk = await canMakeOnDisk();
  if (!onDisk) console.warn('chain-image: not root or no setfattr: layers are written from memory');
  images = [];
  for (const [name, spec] of [['base', BASE], ['layer1', LAYER1], ['layer2', LAYER2]] as const) images.push(await makeLayer(spec, work, name, onDisk));
  layers = await Promise.all(images.map((image) => openImage(image)));
  chain = new ChainImage(layers);

  noKernel = await cannotMount('kernel');
  const lowers: string[] = [];
  for (const [i, image] of images.entries()) {
    if (noKernel) break;
    const at = path.join(work, `mnt${i}`);
    noKernel = await mount(['-t', 'squashfs', '-o', 'loop,ro', image], at);
    lowers.unshift(at);
  }
  if (!noKernel) {
    const at = path.join(work, 'merged');
    noKernel = await mount(['-t', 'overlay', 'overlay', '-o', `lowerdir=${lowers.join(':')}`], at);
    if (!noKernel) merged = at;
  }
  if (noKernel) console.warn(`SKIPPED: the kernel overlay comparison: ${noKernel}`);
});

afterAll(async () => {
  await chain?.close();
  for (const at of mounted) await run('umount', [at]);
  if (work) await fsp.rm(work, { recursive: true, force: true });
});

/** The chain's walk as records by path, checking that parents come first. */
async function chainRecords(image: BackupImage): Promise<Map<string, Shown>> {
  const records = new Map<string, Shown>();
  for await (const entry of image.walk()) {
    if (entry.names.length > 0) expect(records.has(entry.names.slice(0, -1).map(latin1).join('/')), `parent of ${entry.path}`).toBe(true);
    const st = entry.stat;
    const record: Shown = { type: st.type, mode: st.mode, uid: st.uid, gid: st.gid, mtime: st.mtime, xattrs: showXattrs(await image.xattrs(entry)) };
    if (st.type !== 'directory') record.nlink = st.nlink;
    if (st.type === 'file') {
      record.size = st.size;
      record.sha256 = sha256(await image.readFile(entry));
    }
    if (st.type === 'symlink') {
      record.size = st.size;
      record.target = latin1(await image.readlink(entry));
    }
    if (st.rdev) record.rdev = `${st.rdev.major}:${st.rdev.minor}`;
    expect(st.hasXattrs, `hasXattrs of ${entry.path}`).toBe(record.xattrs.length > 0);
    records.set(entry.names.map(latin1).join('/'), record);
  }
  return records;
}

const TYPES: [number, string][] = [
  [0o040000, 'directory'], [0o100000, 'file'], [0o120000, 'symlink'], [0o020000, 'char-device'], [0o060000, 'block-device'], [0o010000, 'fifo'], [0o140000, 'socket'],
];

/** The overlay mount's tree as records by path, read with node:fs and getfattr. */
async function kernelRecords(root: string): Promise<Map<string, Shown>> {
  const xattrs = await readTreeXattrs(root);
  const records = new Map<string, Shown>();
  const visit = async (rel: string) => {
    const full = rel === '' ? root : path.join(root, rel);
    const st = await fsp.lstat(full);
    const type = TYPES.find(([bits]) => (st.mode & 0o170000) === bits)![1];
    const record: Shown = {
      type, mode: st.mode, uid: st.uid, gid: st.gid, mtime: Math.floor(st.mtimeMs / 1000), xattrs: showXattrs(xattrs?.get(Buffer.from(full).toString('latin1'))),
    };
    if (type !== 'directory') record.nlink = st.nlink;
    if (type === 'file') {
      record.size = st.size;
      record.sha256 = sha256(await fsp.readFile(full));
    }
    if (type === 'symlink') {
      record.size = st.size;
      record.target = latin1(await fsp.readlink(full, { encoding: 'buffer' }));
    }
    if (type === 'char-device' || type === 'block-device') record.rdev = `${Math.floor(st.rdev / 256) & 0xfff}:${st.rdev & 0xff}`;
    records.set(rel, record);
    if (type === 'directory') for (const name of await fsp.readdir(full)) await visit(rel === '' ? name : `${rel}/${name}`);
  };
  await visit('');
  return records;
}

/** Groups of paths that are one inode (hard links), by a key for the inode. */
function linkGroups(entries: [string, string][]): string[][] {
  const byInode = new Map<string, string[]>();
  for (const [p, inode] of entries) byInode.set(inode, [...(byInode.get(inode) ?? []), p]);
  return [...byInode.values()].filter((group) => group.length > 1).map((group) => group.sort()).sort();
}

const sorted = <T>(map: Map<string, T>) => [...map.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

describe('ChainImage', () => {
  it('shows the merged tree the layers make', async () => {
    const records = await chainRecords(chain);
    expect([...records.keys()].sort()).toEqual(Object.keys(MERGED).sort());
    for (const [p, expected] of Object.entries(MERGED)) {
      const record = records.get(p)!;
      expect(record.type, p).toBe(expected.type);
      if (expected.data !== undefined) expect(record.sha256, p).toBe(sha256(typeof expected.data === 'string' ? Buffer.from(expected.data) : expected.data));
      if (expected.target !== undefined) expect(record.target, p).toBe(expected.target);
      expect(record.xattrs, p).toEqual(showXattrs(Object.entries(expected.xattrs ?? {}).map(([name, value]) => ({ name, value: Buffer.from(value) }))));
      if (expected.mode !== undefined) expect(record.mode, p).toBe(expected.mode);
      if (expected.uid !== undefined) expect(record.uid, p).toBe(expected.uid);
    }
    expect(records.get('null')!.rdev).toBe('1:3');
    expect((await chain.readdir('/')).map((e) => e.name)).toEqual(Object.keys(MERGED).filter((p) => p !== '' && !p.includes('/')).sort());
    expect(await chain.readdir('/emptied')).toEqual([]);
    expect((await chain.readdir('/dir1')).map((e) => e.name)).toEqual(['new.txt', 'sub', 'x.txt', 'y.txt']);
  });

  it('shows what the kernel shows for the same layers under overlayfs', async (context) => {
    if (!merged) context.skip(`no kernel overlay mount: ${noKernel}`);
    const mine = await chainRecords(chain);
    const kernel = await kernelRecords(merged!);
    expect(sorted(mine)).toEqual(sorted(kernel));

    for (const dir of ['', 'dir1', 'dir1/sub', 'dir2', 'emptied', 'filedir', 'm', 'opaque', 'opaque2', 't', 'w', 'new/deep']) {
      const names = (await fsp.readdir(path.join(merged!, dir), { encoding: 'buffer' })).sort(Buffer.compare).map(latin1);
      expect((await chain.readdir(`/${dir}`)).map((e) => latin1(e.nameBytes)), dir).toEqual(names);
    }

    const chainInodes: [string, string][] = [];
    for await (const entry of chain.walk()) if (entry.stat.type !== 'directory') chainInodes.push([entry.path, String(entry.stat.inode)]);
    const kernelInodes: [string, string][] = [];
    for (const [p, record] of kernel) {
      if (record.type === 'directory') continue;
      const st = await fsp.lstat(path.join(merged!, p), { bigint: true });
      kernelInodes.push([p, `${st.dev}:${st.ino}`]);
    }
    expect(linkGroups(chainInodes)).toEqual(linkGroups(kernelInodes));

    for (const gone of GONE) {
      const error = await fsp.lstat(path.join(merged!, gone)).catch((e: NodeJS.ErrnoException) => e.code);
      expect(error, gone).toMatch(/^(ENOENT|ENOTDIR)$/);
    }
  });

  it('keeps hard links within a layer and tells apart equal inode numbers of different layers', async () => {
    const inodes: [string, string][] = [];
    for await (const entry of chain.walk()) if (entry.stat.type !== 'directory') inodes.push([entry.path, String(entry.stat.inode)]);
    expect(linkGroups(inodes)).toEqual([['hardA', 'hardB']]);
    expect((await chain.stat('/hard1')).nlink).toBe(2); // its other link is gone; the kernel says 2 as well
    const listed = new Map((await chain.readdir('/')).map((e) => [e.name, e.inode]));
    for (const name of ['a.txt', 'hardA', 'dir1', 'big.bin']) expect(listed.get(name), name).toBe((await chain.stat(`/${name}`)).inode);
  });

  it('reads walked entries as it reads their paths', async () => {
    for await (const entry of chain.walk()) {
      const at = `/${entry.path}`;
      const st = await chain.stat(at);
      expect(await chain.stat(entry)).toEqual(st);
      expect(entry.stat).toEqual(st);
      expect(await chain.xattrs(entry)).toEqual(await chain.xattrs(at));
      if (st.type === 'file') expect(sha256(await chain.readFile(entry))).toBe(sha256(await chain.readFile(at)));
      if (st.type === 'symlink') expect(await chain.readlink(entry)).toEqual(await chain.readlink(at));
      if (st.type === 'directory') expect(await chain.readdir(entry)).toEqual(await chain.readdir(at));
    }
    // An entry another image's walk gave is looked up by its names.
    let baseEntry: WalkEntry | undefined;
    for await (const entry of layers[0]!.walk()) if (entry.path === 'a.txt') baseEntry = entry;
    expect(new TextDecoder().decode(await chain.readFile(baseEntry!))).toBe('layer1 a\n');
    // A walk left early closes the layers' walks, and the next one starts afresh.
    let seen = 0;
    for await (const _ of chain.walk()) if (++seen === 3) break;
    expect((await chain.readdir('/')).length).toBe(Object.keys(MERGED).filter((p) => p !== '' && !p.includes('/')).length);
  });

  it('gives its walk\'s listings as the writer\'s source, as readdir gives them, and in any order', async () => {
    const listings = new Map<string, string[]>();
    for await (const entry of chain.walk()) {
      if (entry.stat.type === 'directory') listings.set(`/${entry.path}`, (await chain.readdir(entry)).map((e) => latin1(e.nameBytes)).sort());
    }
    const readdir = vi.spyOn(chain, 'readdir');
    try {
      // The writer's order (depth first, a directory entered as it is met): the names the walk keeps, no listing read again.
      const inOrder = imageSource(chain);
      const visit = async (at: string): Promise<void> => {
        const names = (await inOrder.readdir(at)).map(latin1).sort();
        expect(names, at).toEqual(listings.get(at));
        for (const name of names) {
          const child = at === '/' ? `/${name}` : `${at}/${name}`;
          if (((await inOrder.lstat(child)).mode & 0o170000) === 0o040000) await visit(child);
        }
      };
      await visit('/');
      expect(readdir).not.toHaveBeenCalled();
      // Out of the walk's order (deepest first): each listing still exact (the walk keeps those it passed).
      const outOfOrder = imageSource(chain);
      for (const at of [...listings.keys()].reverse()) {
        await outOfOrder.lstat(at);
        expect((await outOfOrder.readdir(at)).map(latin1).sort(), at).toEqual(listings.get(at));
      }
      expect(readdir).not.toHaveBeenCalled();
      // Asked for again, once given out: read from the layers.
      expect((await outOfOrder.readdir('/')).map(latin1).sort()).toEqual(listings.get('/'));
      expect(readdir).toHaveBeenCalledTimes(1);
    } finally {
      readdir.mockRestore();
    }
  });

  it('reads a file of many blocks in chunks and as a stream', async () => {
    const chunks: Uint8Array[] = [];
    for await (const chunk of chain.readChunks('/big.bin')) chunks.push(chunk.bytes ?? new Uint8Array(chunk.hole));
    expect(sha256(Buffer.concat(chunks))).toBe(sha256(BIG));
    const streamed = new Uint8Array(await new Response(chain.createReadStream('big.bin')).arrayBuffer());
    expect(sha256(streamed)).toBe(sha256(BIG));
  });

  it('leaves out overlayfs’s own xattrs', async () => {
    expect(await chain.xattrs('/opaque2')).toEqual([]);
    expect((await chain.stat('/opaque2')).hasXattrs).toBe(false);
    expect((await layers[1]!.stat('/opaque2')).hasXattrs).toBe(true);
    expect((await chain.xattrs('/opaque')).map((x) => x.name)).toEqual(['user.note']);
    expect((await chain.stat('/opaque')).hasXattrs).toBe(true);
  });

  it('fails for missing and hidden paths as a SquashfsImage does', async () => {
    const expectSame = async (mine: Promise<unknown>, theirs: Promise<unknown>) => {
      const [a, b] = [await mine.catch((e: unknown) => e), await theirs.catch((e: unknown) => e)];
      expect(a).toBeInstanceOf(SquashfsError);
      expect(b).toBeInstanceOf(SquashfsError);
      const show = (e: unknown) => ({ code: (e as SquashfsError).code, message: (e as SquashfsError).message, path: (e as SquashfsError).path });
      expect(show(a)).toEqual(show(b));
    };
    await expectSame(chain.stat('/nope'), layers[0]!.stat('/nope'));
    await expectSame(chain.stat('/a.txt/x'), layers[0]!.stat('/a.txt/x'));
    await expectSame(chain.readFile('/dir1'), layers[2]!.readFile('/dir1'));
    await expectSame(chain.readdir('/a.txt'), layers[0]!.readdir('/a.txt'));
    await expectSame(chain.readlink('dir1/x.txt'), layers[2]!.readlink('dir1/x.txt'));
    for (const gone of GONE) {
      for (const read of [() => chain.stat(gone), () => chain.readdir(gone), () => chain.readFile(gone), () => chain.xattrs(gone)]) {
        const error = await read().catch((e: unknown) => e);
        expect(error, gone).toBeInstanceOf(SquashfsError);
        expect((error as SquashfsError).code).toBe('NOT_FOUND');
        expect((error as SquashfsError).path).toBe(gone);
      }
    }
    // dirfile is a file in layer 1: the base's directory is not looked through.
    await expect(chain.stat('/dirfile/inner.txt')).rejects.toThrow('/dirfile/inner.txt: a component is not a directory');
    await expect(chain.stat('/dir1/x.txt')).resolves.toMatchObject({ type: 'file' });
  });

  it('tells its layers, the top layer’s info and the xattr sets of all layers', async () => {
    const info = chain.info();
    expect(info).toEqual({ ...layers[2]!.info(), layers: 3 });
    let sets = 0;
    for (const layer of layers) sets += await layer.xattrCount();
    expect(await chain.xattrCount()).toBe(sets);
  });

  it('of one image, is that image less its whiteouts', async () => {
    const base = await openImage(images[0]!);
    const single = new ChainImage([base]);
    try {
      const own = new Map<string, EntryStat>();
      for await (const entry of base.walk()) if (entry.path !== 'basewh') own.set(entry.path, entry.stat);
      const shown = new Map<string, EntryStat>();
      for await (const entry of single.walk()) shown.set(entry.path, entry.stat);
      expect(sorted(shown)).toEqual(sorted(own));
    } finally {
      await single.close();
    }
  });

  it('closes every layer', async () => {
    const closed: string[] = [];
    const opened = await Promise.all(images.map(async (image) => {
      const source = await fileSource(image);
      return SquashfsImage.open({ ...source, close: async () => {
        closed.push(image);
        await source.close?.();
      } }, { codecs: nodeCodecs() });
    }));
    await new ChainImage(opened).close();
    expect(closed).toEqual(images);
  });

  it('needs at least one image', () => {
    expect(() => new ChainImage([])).toThrow(SquashfsError);
  });
});
