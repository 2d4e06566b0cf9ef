/**
 * The trees of the chain-image tests: a full backup and two deltas over it,
 * written as overlayfs layers by hand (whiteouts, opaque directories, a file
 * replaced by a directory and the reverse, an emptied directory, links,
 * xattrs), and the merged tree they make, as the tests expect it.
 *
 * As root (with setfattr), a layer is made on disk (`mknod NAME c 0 0`,
 * `setfattr -n trusted.overlay.opaque -v y`) and packed with packDirectory,
 * so the kernel can mount the same images. Otherwise the same layer is
 * written from memory (whiteouts, devices and hard links added to a memory
 * source), which needs no privileges.
 */
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { loadNodeCodecs, packDirectory } from '../../src/node/index.js';
import { memoryDir, memorySource, type MemoryDirectory, type MemoryEntry } from '../../src/source/memory-source.js';
import { S_IFCHR, type TreeSource } from '../../src/source/source.js';
import { writeImage } from '../../src/squashfs/writer/writer.js';
import { memorySink } from './memory-sink.js';

const execFileP = promisify(execFile);

export const WHITEOUT = { whiteout: true } as const;

interface Meta {
  mode?: number;
  uid?: number;
  gid?: number;
  xattrs?: Record<string, string>;
}
export interface FileSpec extends Meta {
  data: string | Uint8Array;
}
export interface DirSpec extends Meta {
  dir: TreeSpec;
  opaque?: boolean;
}
export type EntrySpec =
  | string
  | FileSpec
  | DirSpec
  | { symlink: string }
  /** A hard link to the file at this path of the same layer (made earlier). */
  | { hardlink: string }
  | { device: [number, number] }
  | typeof WHITEOUT;
export interface TreeSpec {
  [name: string]: EntrySpec;
}

/** 300 KiB that do not compress: several data blocks and a fragment tail. */
export const BIG = (() => {
  const bytes = new Uint8Array(300 * 1024 + 123);
  let x = 0x12345678;
  for (let i = 0; i < bytes.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    bytes[i] = x >>> 24;
  }
  return bytes;
})();

/** The full backup. */
export const BASE: TreeSpec = {
  'a.txt': 'base a\n',
  'b.txt': 'base b\n',
  'big.bin': { data: BIG },
  dir1: { dir: { 'x.txt': 'x\n', 'y.txt': 'y\n', sub: { dir: { 'z.txt': 'z\n' } } } },
  dir2: { dir: { 'p.txt': 'p\n', q: { dir: { 'r.txt': 'r\n' } } } },
  link: { symlink: 'a.txt' },
  hard1: 'linked\n',
  hard2: { hardlink: 'hard1' },
  filedir: 'a file, later a directory\n',
  dirfile: { dir: { 'inner.txt': 'inner\n', deep: { dir: { 'd.txt': 'd\n' } } } },
  emptied: { dir: { e1: 'e1\n', e2: 'e2\n', sub: { dir: { e3: 'e3\n' } } } },
  opaque: { dir: { o1: 'o1\n', keep: { dir: { k: 'k\n' } } } },
  opaque2: { dir: { 'gone.txt': 'gone\n' } },
  m: 'a file below a directory\n',
  w: { dir: { deep: { dir: { f: 'f\n' } } } },
  t: { dir: { t1: 't1\n' } },
  'attrs.txt': { data: 'attrs\n', xattrs: { 'user.color': 'red', 'user.keep': '1' } },
  null: { device: [1, 3] },
  basewh: WHITEOUT,
};

/** The first delta: changes, deletions, replacements. */
export const LAYER1: TreeSpec = {
  'a.txt': 'layer1 a\n',
  dir1: { dir: { 'x.txt': WHITEOUT, 'new.txt': 'new in 1\n' } },
  filedir: { dir: { 'child.txt': 'child\n' }, opaque: true },
  dirfile: 'now a file\n',
  emptied: { dir: { e1: WHITEOUT, e2: WHITEOUT, sub: WHITEOUT } },
  opaque: { dir: { o3: 'o3\n' }, opaque: true, xattrs: { 'user.note': 'opaque with a note' } },
  opaque2: { dir: {}, opaque: true },
  // Not opaque: the file below it is hidden all the same.
  m: { dir: { 'mm.txt': 'mm\n' } },
  w: WHITEOUT,
  t: 'a file over a directory\n',
  'attrs.txt': { data: 'attrs\n', xattrs: { 'user.color': 'blue' } },
  link2: { symlink: 'dir1/new.txt' },
  hardA: 'pair\n',
  hardB: { hardlink: 'hardA' },
  hard2: WHITEOUT,
};

/** The second delta: over the first one's whiteouts and replacements. */
export const LAYER2: TreeSpec = {
  'b.txt': WHITEOUT,
  dir1: { dir: { 'x.txt': 'x again\n', 'new.txt': 'new, changed in 2\n' }, mode: 0o700, uid: 1000, gid: 1000 },
  dir2: { dir: { q: WHITEOUT } },
  // A directory over a whiteout: nothing below it shows.
  w: { dir: { g: 'g\n' } },
  // A directory over a file over a directory: neither below shows.
  t: { dir: { t2: 't2\n' } },
  new: { dir: { deep: { dir: { er: { dir: { 'file.txt': { data: 'deep\n', xattrs: { 'user.deep': '1' } } } } } } } },
  'owned.txt': { data: 'owned\n', mode: 0o600, uid: 1234, gid: 5678 },
  link: { symlink: 'dir1/x.txt' },
  emptied: { dir: {} },
};

export interface Expected {
  type: 'directory' | 'file' | 'symlink' | 'char-device';
  data?: string | Uint8Array;
  target?: string;
  xattrs?: Record<string, string>;
  mode?: number;
  uid?: number;
}

/** The merged tree of BASE, LAYER1 and LAYER2, by path ("" the root). */
export const MERGED: Record<string, Expected> = {
  '': { type: 'directory' },
  'a.txt': { type: 'file', data: 'layer1 a\n' },
  'attrs.txt': { type: 'file', data: 'attrs\n', xattrs: { 'user.color': 'blue' } },
  'big.bin': { type: 'file', data: BIG },
  dir1: { type: 'directory', mode: 0o40700, uid: 1000 },
  'dir1/new.txt': { type: 'file', data: 'new, changed in 2\n' },
  'dir1/sub': { type: 'directory' },
  'dir1/sub/z.txt': { type: 'file', data: 'z\n' },
  'dir1/x.txt': { type: 'file', data: 'x again\n' },
  'dir1/y.txt': { type: 'file', data: 'y\n' },
  dir2: { type: 'directory' },
  'dir2/p.txt': { type: 'file', data: 'p\n' },
  dirfile: { type: 'file', data: 'now a file\n' },
  emptied: { type: 'directory' },
  filedir: { type: 'directory' },
  'filedir/child.txt': { type: 'file', data: 'child\n' },
  hard1: { type: 'file', data: 'linked\n' },
  hardA: { type: 'file', data: 'pair\n' },
  hardB: { type: 'file', data: 'pair\n' },
  link: { type: 'symlink', target: 'dir1/x.txt' },
  link2: { type: 'symlink', target: 'dir1/new.txt' },
  m: { type: 'directory' },
  'm/mm.txt': { type: 'file', data: 'mm\n' },
  new: { type: 'directory' },
  'new/deep': { type: 'directory' },
  'new/deep/er': { type: 'directory' },
  'new/deep/er/file.txt': { type: 'file', data: 'deep\n', xattrs: { 'user.deep': '1' } },
  null: { type: 'char-device' },
  opaque: { type: 'directory', xattrs: { 'user.note': 'opaque with a note' } },
  'opaque/o3': { type: 'file', data: 'o3\n' },
  opaque2: { type: 'directory' },
  'owned.txt': { type: 'file', data: 'owned\n', mode: 0o100600, uid: 1234 },
  t: { type: 'directory' },
  't/t2': { type: 'file', data: 't2\n' },
  w: { type: 'directory' },
  'w/g': { type: 'file', data: 'g\n' },
};

/** Paths of the layers that the merged tree does not have. */
export const GONE = [
  '/b.txt', '/basewh', '/hard2', '/dir2/q', '/dir2/q/r.txt', '/emptied/e1', '/emptied/sub', '/emptied/sub/e3',
  '/opaque/o1', '/opaque/keep', '/opaque/keep/k', '/opaque2/gone.txt', '/w/deep', '/w/deep/f', '/t/t1',
];

/** Whether layers can be made on disk here: as root, with setfattr (mknod, chown and trusted.* need root). */
export async function canMakeOnDisk(): Promise<boolean> {
  if (process.getuid?.() !== 0) return false;
  return execFileP('setfattr', ['--version']).then(() => true, () => false);
}

/** Makes a layer's tree under `dir` (which must not exist). */
export async function writeTree(spec: TreeSpec, dir: string, root = dir): Promise<void> {
  await fsp.mkdir(dir);
  for (const [name, entry] of Object.entries(spec)) {
    const p = path.join(dir, name);
    if (typeof entry === 'string') await fsp.writeFile(p, entry);
    else if ('whiteout' in entry) await execFileP('mknod', [p, 'c', '0', '0']);
    else if ('device' in entry) await execFileP('mknod', [p, 'c', String(entry.device[0]), String(entry.device[1])]);
    else if ('symlink' in entry) await fsp.symlink(entry.symlink, p);
    else if ('hardlink' in entry) await fsp.link(path.join(root, entry.hardlink), p);
    else {
      if ('data' in entry) await fsp.writeFile(p, entry.data);
      else await writeTree(entry.dir, p, root);
      if (entry.mode !== undefined) await fsp.chmod(p, entry.mode);
      if (entry.uid !== undefined) await fsp.chown(p, entry.uid, entry.gid ?? 0);
      const xattrs = { ...entry.xattrs, ...('opaque' in entry && entry.opaque ? { 'trusted.overlay.opaque': 'y' } : {}) };
      for (const [key, value] of Object.entries(xattrs)) await execFileP('setfattr', ['-n', key, '-v', value, p]);
    }
  }
}

/**
 * A layer as a tree source, without a file system: a memory source, with
 * devices (whiteouts too) and hard links laid over the placeholder files
 * that stand for them there.
 */
export function specSource(spec: TreeSpec): TreeSource {
  const devices = new Map<string, [number, number]>();
  const links = new Map<string, string>();
  const convert = (tree: TreeSpec, at: string): MemoryDirectory => {
    const out: MemoryDirectory = {};
    for (const [name, entry] of Object.entries(tree)) {
      const key = `${at}/${name}`;
      let converted: MemoryEntry;
      if (typeof entry === 'string' || 'symlink' in entry) converted = entry;
      else if ('whiteout' in entry || 'device' in entry) {
        devices.set(key, 'device' in entry ? entry.device : [0, 0]);
        converted = '';
      } else if ('hardlink' in entry) {
        links.set(key, `/${entry.hardlink}`);
        converted = '';
      } else {
        const { mode, uid, gid } = entry;
        const xattrs = { ...entry.xattrs, ...('opaque' in entry && entry.opaque ? { 'trusted.overlay.opaque': 'y' } : {}) };
        converted = 'data' in entry ? { data: entry.data, mode, uid, gid, xattrs } : memoryDir(convert(entry.dir, key), { mode, uid, gid, xattrs });
      }
      out[name] = converted;
    }
    return out;
  };
  const inner = memorySource(convert(spec, ''), { mtime: 1_700_000_000 });
  const linked = (p: string | Uint8Array) => links.get(p as string) ?? p;
  return {
    ...inner,
    lstat: async (p) => {
      const stat = await inner.lstat(linked(p));
      const device = devices.get(p as string);
      if (device) return { ...stat, mode: S_IFCHR | 0o644, size: 0, rdevMajor: device[0], rdevMinor: device[1] };
      const target = linked(p);
      const group = [...links.values()].filter((t) => t === target).length;
      return group > 0 ? { ...stat, nlink: group + 1 } : stat;
    },
    open: (p) => inner.open(linked(p)),
    xattrs: (p) => inner.xattrs!(linked(p)),
  };
}

/** Writes a layer's image at `image`: made on disk and packed under `work` when it can be, else from memory. */
export async function makeLayer(spec: TreeSpec, work: string, name: string, onDisk: boolean): Promise<string> {
  const image = path.join(work, `${name}.sqfs`);
  if (onDisk) {
    const dir = path.join(work, name);
    await writeTree(spec, dir);
    await packDirectory(dir, image, { processors: 0 });
  } else {
    const sink = memorySink();
    await writeImage(specSource(spec), '/', sink, { codecs: await loadNodeCodecs() });
    await fsp.writeFile(image, sink.image());
  }
  return image;
}
