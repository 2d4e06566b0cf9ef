/**
 * restoreBackup of a delta reads through its chain, and applyLayer applies
 * one overlay layer onto a tree. The oracle is the kernel: each image
 * mounted as squashfs and the overlay of them (`lowerdir=L3:L2:L1:BASE`)
 * shows the tree a restore must make. Where the kernel cannot mount, the
 * expected tree is built on disk from the same script (chain-layers.ts).
 * Whiteouts, opaque directories and owners need root, and so does the suite.
 */
import { randomUUID } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metadataKey, type DirectoryBackup } from '../src/backup/handle.js';
import { openImage } from '../src/node/file-source.js';
import { localStore } from '../src/node/local-store.js';
import { packDirectory } from '../src/node/pack.js';
import { restoreBackup } from '../src/node/restore.js';
import { applyLayer } from '../src/node/unpack.js';
import { applySteps, writeLayer, type LayerStep } from './helpers/chain-layers.js';
import { mountChain, storeBackup, type MountedChain } from './helpers/chain-store.js';
import { compareTrees, isRoot, walkTree } from './helpers/oracles.js';
import { pseudoRandomBytes } from './helpers/tree.js';

const BASE: LayerStep[] = [
  { file: 'keep.txt', data: 'unchanged\n' },
  { file: 'changed.txt', data: 'version 1\n' },
  { file: 'gone.txt', data: 'deleted by layer 1\n' },
  { file: 'gone-dir/a/b.txt', data: 'deleted with its directory by layer 2\n' },
  { file: 'file-to-dir', data: 'a file, then a directory\n' },
  { dir: 'dir-to-file', mode: 0o700 },
  { file: 'dir-to-file/inner.txt', data: 'inner\n' },
  { file: 'opaque/old1', data: 'hidden by the opaque directory of layer 2\n' },
  { file: 'opaque/sub/old2', data: 'hidden too\n' },
  { dir: 'merge', xattrs: { 'user.base': 'b' } },
  { file: 'merge/a.txt', data: 'a\n' },
  { file: 'merge/b.txt', data: 'b\n' },
  { file: 'merge/sub/c.txt', data: 'c\n' },
  { symlink: 'link', target: 'keep.txt' },
  { symlink: 'through', target: 'merge' },
  { file: 'big.bin', data: pseudoRandomBytes(300_000, 1) },
  { file: 'replaced-by-link', data: 'a file, then a name of a hard link\n' },
  { file: 'xfile', data: 'with an xattr\n', xattrs: { 'user.one': '1' } },
];

const LAYERS: LayerStep[][] = [
  [
    { file: 'changed.txt', data: 'version 2, longer\n', mode: 0o600, mtime: 1_650_000_000 },
    { whiteout: 'gone.txt' },
    { dir: 'file-to-dir', mode: 0o750, mtime: 1_650_000_100 },
    { file: 'file-to-dir/child.txt', data: 'child\n' },
    // A directory merged into, with another mode, time, owner and xattrs (its user.base goes).
    { dir: 'merge', mode: 0o770, mtime: 1_650_000_200, owner: [1000, 1000], xattrs: { 'user.layer1': 'l' } },
    { file: 'merge/new.txt', data: 'added by layer 1\n' },
    // Written in pieces on several threads (larger than 4 MiB).
    { file: 'huge.bin', data: pseudoRandomBytes(5 * 1024 * 1024 + 12345, 2) },
    { device: 'null', major: 1, minor: 3, mode: 0o666 },
    { file: 'owned.txt', data: 'setuid, owned by someone else\n', owner: [1234, 5678], mode: 0o4755 },
  ],
  [
    { dir: 'opaque', opaque: true, mode: 0o711 },
    { file: 'opaque/new.txt', data: 'all the opaque directory holds\n' },
    { file: 'dir-to-file', data: 'a directory, then a file\n' },
    { whiteout: 'gone-dir' },
    // A symlink to a directory, replaced by a directory: nothing lands in what it pointed to.
    { dir: 'through', mode: 0o705 },
    { file: 'through/inner.txt', data: 'inside a directory that was a symlink\n' },
    { file: 'hl/one', data: 'three names\n' },
    { link: 'hl/two', to: 'hl/one' },
    { link: 'replaced-by-link', to: 'hl/one' },
    // Holds merge with the default attributes: layer 1's go.
    { file: 'merge/sub/c.txt', data: 'c, version 2\n' },
  ],
  [
    { whiteout: 'merge/a.txt' },
    { symlink: 'link', target: 'changed.txt', mtime: 1_660_000_000 },
    { fifo: 'xfile', mode: 0o640 },
    { dir: 'file-to-dir', mode: 0o751, mtime: 1_660_000_100 },
    { dir: 'file-to-dir/deeper', mode: 0o700 },
    { file: 'file-to-dir/deeper/f', data: 'deeper\n' },
    { whiteout: 'hl/two' },
    { dir: 'new-opaque', opaque: true },
    { file: 'new-opaque/x', data: 'x\n' },
  ],
];

const IMAGE_TIME = 1_700_000_000;
const root = isRoot();

let work: string;
/** The images, the full backup's first. */
const images: string[] = [];
/** expected[k]: the tree with the first k layers over the full backup, built on disk. */
const expected: string[] = [];
/** The kernel's overlay of the first k layers over the full backup, or why there is none. */
const kernel: (MountedChain | string)[] = [];

beforeAll(async () => {
  if (!root) return;
  work = await fsp.mkdtemp('/dev/shm/chain-restore-');
  for (const [i, steps] of [BASE, ...LAYERS].entries()) {
    const dir = path.join(work, `layer-${i}`);
    await fsp.mkdir(dir);
    await writeLayer(dir, steps);
    const image = path.join(work, `layer-${i}.sqfs`);
    await packDirectory(dir, image, { compression: 'zstd', mtime: IMAGE_TIME });
    images.push(image);
    const tree = path.join(work, `expected-${i}`);
    await fsp.mkdir(tree);
    await writeLayer(tree, BASE);
    for (const layer of LAYERS.slice(0, i)) await applySteps(tree, layer);
    expected.push(tree);
  }
  for (let k = 1; k <= LAYERS.length; k++) kernel[k] = await mountChain(images.slice(0, k + 1), path.join(work, `kernel-${k}`));
});

afterAll(async () => {
  for (const mounted of kernel) if (typeof mounted === 'object') await mounted.unmount();
  if (work) await fsp.rm(work, { recursive: true, force: true });
});

/** Stores the full backup and its deltas in a store of their own; returns the store's directory and the handles, the full backup's first. */
async function storeChain(name: string, dir: string) {
  const storeDir = path.join(work, name);
  const store = localStore(storeDir);
  const handles: DirectoryBackup[] = [];
  for (const image of images) {
    handles.push(await storeBackup(store, await fsp.readFile(image), { id: randomUUID(), dir, base: handles[handles.length - 1] }));
  }
  return { store, storeDir, handles };
}

/** The restored tree is the one the kernel shows (and the one built on disk, which the kernel's must be too). */
async function expectTree(restored: string, layers: number) {
  expect(await compareTrees(expected[layers]!, restored)).toEqual([]);
  const mounted = kernel[layers]!;
  if (typeof mounted === 'string') {
    console.warn(`chain of ${layers} deltas: no kernel overlay to compare with (${mounted}); compared with the tree built on disk`);
    return;
  }
  expect(await compareTrees(mounted.merged, expected[layers]!)).toEqual([]);
  expect(await compareTrees(mounted.merged, restored)).toEqual([]);
}

/** Nothing beside `target` but itself: no staging directory, no downloaded image left. */
async function nothingBeside(target: string) {
  const prefix = `.${path.basename(target)}.`;
  expect((await fsp.readdir(path.dirname(target))).filter((name) => name.startsWith(prefix))).toEqual([]);
}

describe.skipIf(!root)('restoreBackup of a delta reads through its chain', () => {
  it('restores each delta of a chain of three exactly as overlayfs shows it, reporting progress over the chain', async () => {
    const { store, handles } = await storeChain('store-ok', '/nowhere');
    for (let k = 1; k <= LAYERS.length; k++) {
      const target = path.join(work, `restored-${k}`);
      const events: { phase: string; bytes: number; total: number }[] = [];
      const warnings: string[] = [];
      const result = await restoreBackup(handles[k]!.id, {
        store, dir: target, onProgress: (p) => events.push(p), onWarning: (m) => warnings.push(m),
      });
      expect(result.dir).toBe(target);
      expect(warnings).toEqual([]);
      await expectTree(target, k);
      await nothingBeside(target);
      const total = handles.slice(0, k + 1).reduce((sum, h) => sum + h.size, 0);
      expect(new Set(events.map((e) => e.total))).toEqual(new Set([total]));
      const downloaded = events.filter((e) => e.phase === 'download').map((e) => e.bytes);
      expect(downloaded).toEqual([...downloaded].sort((a, b) => a - b));
      expect(Math.max(...downloaded)).toBeGreaterThan(total - handles[k]!.size);
      expect(Math.max(...downloaded)).toBeLessThanOrEqual(total);
    }
  });

  it('a restore over an existing, different target replaces it', async () => {
    const { store, handles } = await storeChain('store-over', '/nowhere');
    const target = path.join(work, 'over');
    await fsp.mkdir(path.join(target, 'merge', 'stale'), { recursive: true });
    await fsp.writeFile(path.join(target, 'merge', 'a.txt'), 'not from the backup\n');
    await fsp.writeFile(path.join(target, 'extra.txt'), 'not from the backup\n');
    await fsp.symlink('/etc', path.join(target, 'opaque'));
    await restoreBackup(handles[3]!, { store, dir: target });
    await expectTree(target, 3);
    await nothingBeside(target);
  });
});

describe.skipIf(!root)('a chain that cannot be restored leaves the target as it was', () => {
  let target: string;
  const prepare = async (name: string) => {
    target = path.join(work, `untouched-${name}`);
    await fsp.mkdir(target);
    await fsp.writeFile(path.join(target, 'precious.txt'), 'keep me\n');
  };
  const untouched = async () => {
    expect(await fsp.readdir(target)).toEqual(['precious.txt']);
    expect(await fsp.readFile(path.join(target, 'precious.txt'), 'utf8')).toBe('keep me\n');
    await nothingBeside(target);
  };

  it('a missing middle layer (its metadata deleted): BACKUP_NOT_FOUND naming it', async () => {
    await prepare('missing-layer');
    const { store, handles } = await storeChain('store-missing-layer', target);
    await store.delete(metadataKey(handles[2]!.id));
    const error = await restoreBackup(handles[3]!, { store, dir: target }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'BACKUP_NOT_FOUND', key: metadataKey(handles[2]!.id) });
    expect((error as Error).message).toContain(handles[2]!.id);
    await untouched();
  });

  it('a tampered layer (one byte flipped, same size): BACKUP_INTEGRITY_ERROR', async () => {
    await prepare('tampered');
    const { store, storeDir, handles } = await storeChain('store-tampered', target);
    const file = path.join(storeDir, handles[2]!.key);
    const bytes = await fsp.readFile(file);
    bytes[Math.floor(bytes.length / 2)] ^= 0x40;
    await fsp.writeFile(file, bytes);
    const error = await restoreBackup(handles[3]!, { store, dir: target }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'BACKUP_INTEGRITY_ERROR' });
    expect((error as Error).message).toContain(handles[2]!.id);
    await untouched();
  });

  it('a missing layer image (its metadata there): BACKUP_NOT_FOUND before anything is downloaded or written', async () => {
    await prepare('missing-image');
    const { store, handles } = await storeChain('store-missing-image', target);
    await store.delete(handles[2]!.key);
    const events: unknown[] = [];
    const error = await restoreBackup(handles[3]!, { store, dir: target, onProgress: (p) => events.push(p) }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'BACKUP_NOT_FOUND', key: handles[2]!.key });
    expect(events).toEqual([]);
    await untouched();
  });
});

describe.skipIf(!root)('applyLayer', () => {
  /** Packs a layer, applies it onto `tree`, and checks the result against the same steps applied on disk to a copy. */
  async function applyAndCompare(name: string, tree: string, steps: LayerStep[]) {
    const layerDir = path.join(work, `${name}-layer`);
    await fsp.mkdir(layerDir);
    await writeLayer(layerDir, steps);
    const image = path.join(work, `${name}.sqfs`);
    await packDirectory(layerDir, image, { mtime: IMAGE_TIME });
    const copy = path.join(work, `${name}-expected`);
    await copyWithTimes(tree, copy);
    await applySteps(copy, steps);
    const opened = await openImage(image);
    try {
      await applyLayer(opened, tree);
    } finally {
      await opened.close();
    }
    expect(await compareTrees(copy, tree)).toEqual([]);
  }

  it('replaces a symlink in the tree where the layer has a directory or a file, never writing through it', async () => {
    const base = path.join(work, 'apply-symlinks');
    const tree = path.join(base, 'tree');
    const outside = path.join(base, 'outside');
    await fsp.mkdir(tree, { recursive: true });
    await fsp.mkdir(outside);
    await fsp.writeFile(path.join(outside, 'keep'), 'outside\n');
    await fsp.writeFile(path.join(outside, 'x'), 'outside too\n');
    for (const name of ['d', 's', 'a']) await fsp.symlink('../outside', path.join(tree, name));
    await fsp.symlink('../outside/keep', path.join(tree, 'f'));
    const before = await snapshot(outside);
    await applyAndCompare('apply-symlinks', tree, [
      { dir: 'd' },
      { file: 'd/keep', data: 'inside\n' },
      { file: 'f', data: 'a file where a symlink was\n' },
      { whiteout: 's/x' },
      { file: 'a/b/c.txt', data: 'deep\n' },
    ]);
    expect(await snapshot(outside)).toEqual(before);
    for (const name of ['d', 's', 'a']) expect((await fsp.lstat(path.join(tree, name))).isDirectory()).toBe(true);
    expect(await fsp.readFile(path.join(tree, 'd', 'keep'), 'utf8')).toBe('inside\n');
    expect(await fsp.readdir(path.join(tree, 's'))).toEqual([]);
  });

  it("an opaque root merges like any root, as the kernel shows it (it never reads the root's marker)", async () => {
    const tree = path.join(work, 'apply-opaque-root');
    await fsp.mkdir(path.join(tree, 'old', 'deeper'), { recursive: true });
    await fsp.writeFile(path.join(tree, 'old', 'deeper', 'f'), 'old\n');
    await fsp.symlink('/etc', path.join(tree, 'etc'));
    await applyAndCompare('apply-opaque-root', tree, [{ dir: '', opaque: true, mode: 0o750 }, { file: 'only', data: 'all there is\n' }]);
    expect((await fsp.readdir(tree)).sort()).toEqual(['etc', 'old', 'only']);
  });
});

/** Copies a tree with every entry's mtime (symlinks' too): fs.cp stamps the copy with the time of copying. */
async function copyWithTimes(from: string, to: string) {
  await fsp.cp(from, to, { recursive: true, verbatimSymlinks: true });
  for (const entry of await walkTree(from)) {
    const copied = entry.rel.length === 0 ? Buffer.from(to) : Buffer.concat([Buffer.from(to + '/'), entry.rel]);
    await fsp.lutimes(copied, Number(entry.st.atimeNs) / 1e9, Number(entry.st.mtimeNs) / 1e9);
  }
}

/** A directory's entries, their types, modes, times and contents. */
async function snapshot(dir: string) {
  const entries = await walkTree(dir);
  return Promise.all(
    entries.map(async (e) => ({
      rel: e.rel.toString('latin1'),
      mode: e.st.mode,
      mtime: e.st.mtimeNs,
      data: e.st.isFile() ? (await fsp.readFile(e.abs)).toString('latin1') : undefined,
    })),
  );
}
