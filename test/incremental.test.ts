/**
 * Incremental backups (issue #14): a delta is an overlayfs layer over its
 * base. Random sequences of tree edits (fast-check) are backed up after
 * each edit, and the kernel (as root) judges each chain: its images,
 * loop-mounted and stacked with `mount -t overlay`, must show exactly the
 * tree at that point. Without root, the chain's merged tree as the backup
 * reads it is compared instead.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Volume } from 'memfs';
import { restoreBackup as webRestoreBackup, type FsWriteLike } from '../src/index.js';
import { BackupError } from '../src/errors.js';
import { compactBackup, createBackup, deleteBackup, localStore, openBackup, openImage, restoreBackup, type BackupImage, type DirectoryBackup } from '../src/node/index.js';
import { cannotMount } from './helpers/mount.js';
import { compareTrees, hasGetfattr, isRoot } from './helpers/oracles.js';

const base = existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
let work: string;
beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(base, 'sqfs-incremental-'));
});
afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

/** Why the kernel cannot judge here (not root, no squashfs driver, no overlayfs: e.g. in a container), or undefined. */
async function cannotOverlay(): Promise<string | undefined> {
  const reason = await cannotMount('kernel');
  if (reason) return reason;
  const probe = await fsp.mkdtemp(path.join(os.tmpdir(), 'sqfs-overlay-probe-'));
  try {
    for (const d of ['a', 'b', 'm']) await fsp.mkdir(path.join(probe, d));
    const r = spawnSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${probe}/a:${probe}/b`, `${probe}/m`], { encoding: 'utf8' });
    if (r.status !== 0) return `overlayfs cannot be mounted here: ${r.stderr.trim()}`;
    spawnSync('umount', [`${probe}/m`]);
    return undefined;
  } finally {
    await fsp.rm(probe, { recursive: true, force: true });
  }
}
const overlayReason = await cannotOverlay();
if (overlayReason) console.warn(`SKIPPED: the kernel's view of each chain (the other checks run): ${overlayReason}`);
const canMount = overlayReason === undefined;

/** Mounts a chain's images (full backup first) with overlayfs; runs `check` on the merged tree; unmounts. */
async function withOverlay<T>(storeDir: string, chain: readonly DirectoryBackup[], check: (merged: string) => Promise<T>): Promise<T> {
  const root = await fsp.mkdtemp(path.join(work, 'mnt-'));
  const mounted: string[] = [];
  try {
    const lowers: string[] = [];
    for (const [i, layer] of chain.entries()) {
      const at = path.join(root, `l${i}`);
      await fsp.mkdir(at);
      const r = spawnSync('mount', ['-t', 'squashfs', '-o', 'loop,ro', path.join(storeDir, layer.key), at], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`mount ${layer.key}: ${r.stderr}`);
      mounted.push(at);
      lowers.unshift(at);
    }
    const merged = path.join(root, 'merged');
    await fsp.mkdir(merged);
    if (lowers.length === 1) return await check(lowers[0]!);
    const r = spawnSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lowers.join(':')}`, merged], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`mount overlay: ${r.stderr}`);
    mounted.push(merged);
    return await check(merged);
  } finally {
    for (const at of mounted.reverse()) spawnSync('umount', [at]);
    await fsp.rm(root, { recursive: true, force: true });
  }
}

/** Every path below `root` (relative), directories first. */
async function entries(root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fsp.readdir(path.join(root, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    out.push(p);
    if (e.isDirectory()) out.push(...(await entries(root, p)));
  }
  return out;
}

const OPS = ['add', 'modify', 'chmod', 'chown', 'delete', 'toDirectory', 'toFile', 'rename', 'link', 'symlink', 'xattr', 'empty', 'mkdir'] as const;

interface Edit {
  op: (typeof OPS)[number];
  /** Which entry (an index into the tree's entries of the kind the edit takes). */
  pick: number;
  text: string;
}

/**
 * Applies an edit to the tree. Each touched entry gets a modification time
 * of its own (`time`): the quick check, like rsync's, sees a change by its
 * size or time, so the test never makes two versions within one second.
 */
async function applyEdit(root: string, edit: Edit, time: number): Promise<void> {
  const all = await entries(root);
  const directories: string[] = [''];
  const files: string[] = [];
  for (const p of all) {
    const st = await fsp.lstat(path.join(root, p));
    if (st.isDirectory()) directories.push(p);
    else if (st.isFile()) files.push(p);
  }
  const at = (list: string[]) => list[edit.pick % list.length];
  const name = `n${edit.pick % 97}-${edit.text.replace(/[^a-z0-9]/gi, '').slice(0, 8) || 'x'}`;
  const abs = (p: string) => path.join(root, p);
  const touch = async (p: string) => fsp.lutimes(abs(p), time, time);
  switch (edit.op) {
    case 'add': {
      const p = path.join(at(directories)!, name);
      await fsp.rm(abs(p), { recursive: true, force: true });
      await fsp.writeFile(abs(p), edit.text.repeat(1 + (edit.pick % 50)));
      return touch(p);
    }
    case 'mkdir': {
      const p = path.join(at(directories)!, `d${name}`);
      await fsp.rm(abs(p), { recursive: true, force: true });
      await fsp.mkdir(abs(p));
      await fsp.writeFile(abs(path.join(p, 'inside')), edit.text);
      await touch(path.join(p, 'inside'));
      return touch(p);
    }
    case 'modify': {
      const p = at(files);
      if (!p) return;
      await fsp.appendFile(abs(p), `+${edit.text}`);
      return touch(p);
    }
    case 'chmod': {
      const p = at(files) ?? at(directories.slice(1));
      if (!p) return;
      const st = await fsp.lstat(abs(p));
      return fsp.chmod(abs(p), (st.mode & 0o777) ^ 0o040);
    }
    case 'chown': {
      const p = at(files);
      if (!p || !isRoot()) return;
      return fsp.lchown(abs(p), 1000 + (edit.pick % 3), 1000 + (edit.pick % 5));
    }
    case 'delete': {
      const p = at(all);
      if (!p) return;
      return fsp.rm(abs(p), { recursive: true, force: true });
    }
    case 'toDirectory': {
      const p = at(files);
      if (!p) return;
      await fsp.rm(abs(p));
      await fsp.mkdir(abs(p));
      await fsp.writeFile(abs(path.join(p, 'was-a-file')), edit.text);
      await touch(path.join(p, 'was-a-file'));
      return touch(p);
    }
    case 'toFile': {
      const p = at(directories.slice(1));
      if (!p) return;
      await fsp.rm(abs(p), { recursive: true });
      await fsp.writeFile(abs(p), `was a directory ${edit.text}`);
      return touch(p);
    }
    case 'rename': {
      const p = at(all);
      if (!p) return;
      const to = path.join(path.dirname(p), `r${name}`);
      if (to === p || to.startsWith(`${p}/`)) return;
      await fsp.rm(abs(to), { recursive: true, force: true });
      return fsp.rename(abs(p), abs(to));
    }
    case 'link': {
      const p = at(files);
      if (!p) return;
      const to = path.join(at(directories)!, `h${name}`);
      await fsp.rm(abs(to), { recursive: true, force: true });
      return fsp.link(abs(p), abs(to));
    }
    case 'symlink': {
      const to = path.join(at(directories)!, `s${name}`);
      await fsp.rm(abs(to), { recursive: true, force: true });
      await fsp.symlink(edit.text || 'target', abs(to));
      return touch(to);
    }
    case 'xattr': {
      const p = at(files) ?? at(directories);
      if (p === undefined || !(await hasGetfattr())) return;
      spawnSync('setfattr', ['-n', `user.t${edit.pick % 3}`, '-v', edit.text || 'v', abs(p)]);
      return;
    }
    case 'empty': {
      const p = at(directories.slice(1));
      if (!p) return;
      for (const child of await fsp.readdir(abs(p))) await fsp.rm(abs(path.join(p, child)), { recursive: true, force: true });
      return;
    }
  }
}

/**
 * What the fs-shaped restore keeps of a tree, entry by entry: names, types,
 * permission bits, mtimes, file contents and symlink targets (it makes no
 * devices and sets no owners).
 */
async function webView(read: { lstat(p: string): Promise<any>; readdir(p: string): Promise<any>; readFile(p: string): Promise<any>; readlink(p: string): Promise<any> }, root: string): Promise<string[]> {
  const out: string[] = [];
  const visit = async (rel: string): Promise<void> => {
    const abs = rel ? `${root}/${rel}` : root;
    const st = await read.lstat(abs);
    const kind = st.isDirectory() ? 'd' : st.isFile() ? 'f' : st.isSymbolicLink() ? 'l' : 'other';
    let what = kind === 'f' ? Buffer.from(await read.readFile(abs)).toString('base64') : kind === 'l' ? String(await read.readlink(abs)) : '';
    if (kind === 'other') return;
    if (kind === 'l') what = `-> ${what}`;
    out.push(`${rel || '.'} ${kind} ${kind === 'l' ? '' : (st.mode & 0o7777).toString(8)} ${kind === 'l' ? '' : Math.floor(Number(st.mtimeMs) / 1000)} ${what}`);
    if (kind !== 'd') return;
    const names = (await read.readdir(abs)).map(String).sort();
    for (const name of names) await visit(rel ? `${rel}/${name}` : name);
  };
  await visit('');
  return out;
}

/** What `webView` gives, read from a backup opened by range (a chain read as one tree). */
async function imageView(image: BackupImage): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of image.walk()) {
    const { stat } = entry;
    const kind = stat.type === 'directory' ? 'd' : stat.type === 'file' ? 'f' : stat.type === 'symlink' ? 'l' : 'other';
    if (kind === 'other') continue;
    const what = kind === 'f' ? Buffer.from(await image.readFile(entry)).toString('base64') : kind === 'l' ? `-> ${Buffer.from(await image.readlink(entry)).toString()}` : '';
    out.push(`${entry.path || '.'} ${kind} ${kind === 'l' ? '' : (stat.mode & 0o7777).toString(8)} ${kind === 'l' ? '' : stat.mtime} ${what}`);
  }
  return out.sort();
}

/** A starting tree: a few directories, files, a symlink and a hard link pair. */
async function seedTree(root: string): Promise<void> {
  await fsp.mkdir(path.join(root, 'src/lib'), { recursive: true });
  await fsp.mkdir(path.join(root, 'docs'), { recursive: true });
  await fsp.writeFile(path.join(root, 'src/main.js'), 'main();\n'.repeat(40));
  await fsp.writeFile(path.join(root, 'src/lib/util.js'), 'export const x = 1;\n');
  await fsp.writeFile(path.join(root, 'docs/readme.md'), '# readme\n');
  // Bytes that do not compress (a fixed LCG), so the full image is much larger than a small delta.
  let x = 12345;
  await fsp.writeFile(path.join(root, 'big.bin'), Buffer.from(Array.from({ length: 300_000 }, () => ((x = (x * 1103515245 + 12345) >>> 0) >>> 24))));
  await fsp.symlink('src/main.js', path.join(root, 'entry'));
  await fsp.link(path.join(root, 'docs/readme.md'), path.join(root, 'README'));
}

describe('incremental backups as overlayfs layers', () => {
  it('random edit sequences: after each edit a delta, and the chain shows the tree', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ op: fc.constantFrom(...OPS), pick: fc.nat(1000), text: fc.string({ maxLength: 12 }) }), { minLength: 1, maxLength: 5 }),
        async (edits) => {
          const dir = path.join(work, `tree-${run}`);
          const storeDir = path.join(work, `store-${run++}`);
          await fsp.mkdir(dir);
          await fsp.mkdir(storeDir, { mode: 0o700 });
          const store = localStore(storeDir);
          await seedTree(dir);
          const chain: DirectoryBackup[] = [await createBackup({ dir, store, compression: 'gzip' })];
          for (const [i, edit] of edits.entries()) {
            await applyEdit(dir, edit, 1_700_000_000 + (run * 100 + i) * 10);
            const delta = await createBackup({ dir, store, compression: 'gzip', base: 'latest' });
            expect(delta.base).toBe(chain[chain.length - 1]!.id);
            expect(delta.chain).toEqual([...chain.map((b) => b.id), delta.id]);
            chain.push(delta);
            if (canMount) {
              const problems = await withOverlay(storeDir, chain, (merged) => compareTrees(dir, merged));
              expect(problems, `after ${JSON.stringify(edits.slice(0, i + 1))}`).toEqual([]);
            }
          }
          const top = chain[chain.length - 1]!;
          // Restore (Node) reads through the chain.
          const restored = path.join(work, `restored-${run}`);
          await restoreBackup(top, { store, dir: restored });
          expect(await compareTrees(dir, restored), 'restore').toEqual([]);
          // So does the fs-shaped restore (any runtime): into memfs.
          const vol = new Volume();
          await webRestoreBackup(top, { store, fs: vol.promises as unknown as FsWriteLike, dir: '/restored' });
          const expected = await webView(fsp, dir);
          expect(await webView(vol.promises as never, '/restored'), 'fs-shaped restore').toEqual(expected);
          // And openBackup, by range.
          const image = await openBackup(top, { store });
          try {
            expect(await imageView(image), 'openBackup').toEqual([...expected].sort());
          } finally {
            await image.close();
          }
          // A compacted chain is one full image of the same tree, as unsquashfs extracts it; every other
          // run, it takes the full backup's data region in whole (the files the chain changed stay there, unused).
          const compacted = await compactBackup(top, { store, reuseBase: run % 2 === 0 });
          expect(compacted.base).toBeUndefined();
          const extracted = path.join(work, `extracted-${run}`);
          const r = spawnSync('unsquashfs', ['-no-progress', '-d', extracted, path.join(storeDir, compacted.key)], { encoding: 'utf8' });
          expect(r.status, r.stderr).toBe(0);
          expect(await compareTrees(dir, extracted), 'compacted').toEqual([]);
          await fsp.rm(restored, { recursive: true, force: true });
          await fsp.rm(extracted, { recursive: true, force: true });
          await fsp.rm(dir, { recursive: true, force: true });
          await fsp.rm(storeDir, { recursive: true, force: true });
        },
      ),
      { numRuns: 12 },
    );
  }, 180_000);

  it('a chain restore writes nothing twice: what a delta replaces or removes is left out of the layers below', async () => {
    const dir = path.join(work, 'twice');
    const storeDir = path.join(work, 'twice-store');
    await fsp.mkdir(path.join(dir, 'gone/deeper'), { recursive: true });
    await fsp.mkdir(storeDir, { mode: 0o700 });
    const store = localStore(storeDir);
    let x = 7;
    const noise = (n: number) => Buffer.from(Array.from({ length: n }, () => ((x = (x * 1103515245 + 12345) >>> 0) >>> 24)));
    await fsp.writeFile(path.join(dir, 'big.bin'), noise(400_000));
    await fsp.writeFile(path.join(dir, 'keep.txt'), 'kept\n');
    await fsp.writeFile(path.join(dir, 'gone/deeper/f.bin'), noise(100_000));
    await fsp.writeFile(path.join(dir, 'later.txt'), 'first\n');
    await fsp.mkdir(path.join(dir, 'was-dir'));
    await fsp.writeFile(path.join(dir, 'was-dir/inside'), noise(50_000));
    const chain = [await createBackup({ dir, store, compression: 'gzip' })];
    // Delta 1: big.bin replaced, gone/ removed, a directory replaced by a file, later.txt rewritten.
    await fsp.writeFile(path.join(dir, 'big.bin'), noise(300_001));
    await fsp.rm(path.join(dir, 'gone'), { recursive: true });
    await fsp.rm(path.join(dir, 'was-dir'), { recursive: true });
    await fsp.writeFile(path.join(dir, 'was-dir'), 'a file now\n');
    await fsp.writeFile(path.join(dir, 'later.txt'), 'second, longer\n');
    chain.push(await createBackup({ dir, store, base: 'latest', compression: 'gzip' }));
    // Delta 2: later.txt rewritten again, keep.txt left alone.
    await fsp.writeFile(path.join(dir, 'later.txt'), 'third, longer still\n');
    chain.push(await createBackup({ dir, store, base: 'latest', compression: 'gzip' }));
    expect(chain[2]!.chain).toHaveLength(3);
    const finalBytes = 300_001 + 'kept\n'.length + 'a file now\n'.length + 'third, longer still\n'.length;

    // Node: every file written once (its bytes once), the tree as backed up.
    const restored = path.join(work, 'twice-restored');
    const result = await restoreBackup(chain[2]!, { store, dir: restored });
    expect(await compareTrees(dir, restored)).toEqual([]);
    expect(result.bytes).toBe(finalBytes);
    expect(result.files).toBe(4);

    // The fs-shaped restore: no path written twice, nothing written under what a delta removed.
    const vol = new Volume();
    const writes: string[] = [];
    const counting = new Proxy(vol.promises, {
      get(target, name, receiver) {
        const value = Reflect.get(target, name, receiver) as unknown;
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          if (name === 'writeFile' || name === 'symlink' || name === 'link') writes.push(String(args[name === 'writeFile' ? 0 : 1]));
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    await webRestoreBackup(chain[2]!, { store, fs: counting as unknown as FsWriteLike, dir: '/r' });
    expect(writes.filter((p, i) => writes.indexOf(p) !== i)).toEqual([]);
    expect(writes.filter((p) => p.includes('/gone') || p.includes('was-dir/'))).toEqual([]);
    expect(vol.readFileSync('/r/later.txt', 'utf8')).toBe('third, longer still\n');
    expect(vol.readFileSync('/r/big.bin').length).toBe(300_001);
    expect(vol.existsSync('/r/gone')).toBe(false);
  });

  it('a second backup with nothing changed is a delta of the root alone', async () => {
    const dir = path.join(work, 'same');
    const storeDir = path.join(work, 'same-store');
    await fsp.mkdir(dir);
    await fsp.mkdir(storeDir, { mode: 0o700 });
    await seedTree(dir);
    const store = localStore(storeDir);
    const full = await createBackup({ dir, store });
    const delta = await createBackup({ dir, store, base: full });
    expect(delta.entries).toBe(1);
    expect(delta.size).toBeLessThan(full.size);
    expect(delta.chain).toEqual([full.id, delta.id]);
    if (canMount) expect(await withOverlay(storeDir, [full, delta], (merged) => compareTrees(dir, merged))).toEqual([]);
  });

  it('compaction copies the stored blocks of the layers verbatim (same compressor and block size)', async () => {
    const dir = path.join(work, 'compact');
    const storeDir = path.join(work, 'compact-store');
    await fsp.mkdir(dir);
    await fsp.mkdir(storeDir, { mode: 0o700 });
    await seedTree(dir);
    // Text that compresses, differently at zstd -3 and -19: blocks copied from the base keep its -3 bytes.
    await fsp.writeFile(path.join(dir, 'log.txt'), Array.from({ length: 20_000 }, (_, i) => `line ${i} ${(i * 7919) % 1000}\n`).join(''));
    const store = localStore(storeDir);
    const full = await createBackup({ dir, store, compression: { algorithm: 'zstd', level: 3 } });
    await fsp.writeFile(path.join(dir, 'docs/new.md'), 'new\n');
    const delta = await createBackup({ dir, store, base: full, compression: { algorithm: 'zstd', level: 19 } });
    const compacted = await compactBackup(delta, { store });
    expect(compacted).toMatchObject({ compression: 'zstd', level: 19, blockSize: full.blockSize });
    const [before, after] = await Promise.all([openImage(path.join(storeDir, full.key)), openImage(path.join(storeDir, compacted.key))]);
    try {
      const [a, b] = await Promise.all([before.storedData('/log.txt'), after.storedData('/log.txt')]);
      expect(a.words.length).toBeGreaterThan(1);
      expect([...b.words]).toEqual([...a.words]);
      for (let i = 0; i < a.words.length; i++) expect(Buffer.compare(await b.block(i), await a.block(i))).toBe(0);
      // What -19 makes of the same file differs: the blocks above were not recompressed.
      const again = await createBackup({ dir, store, compression: { algorithm: 'zstd', level: 19 } });
      const fresh = await openImage(path.join(storeDir, again.key));
      try {
        expect([...(await fresh.storedData('/log.txt')).words]).not.toEqual([...a.words]);
      } finally {
        await fresh.close();
      }
    } finally {
      await Promise.all([before.close(), after.close()]);
    }
  });

  it('checksums: a sidecar sha256sum checks the restored tree; compare by content finds a change that kept size and time', async () => {
    const dir = path.join(work, 'content');
    const storeDir = path.join(work, 'content-store');
    await fsp.mkdir(dir);
    await fsp.mkdir(storeDir, { mode: 0o700 });
    await seedTree(dir);
    await fsp.writeFile(path.join(dir, 'empty'), '');
    const store = localStore(storeDir);
    const full = await createBackup({ dir, store, checksums: true });
    expect(full.checksums).toBe(`${full.id}.sha256`);
    const restored = path.join(work, 'content-restored');
    await restoreBackup(full, { store, dir: restored });
    const check = spawnSync('sha256sum', ['--check', '--strict', path.join(storeDir, full.checksums!)], { cwd: restored, encoding: 'utf8' });
    expect(check.status, check.stdout + check.stderr).toBe(0);
    expect(check.stdout.split('\n').filter((l) => l.endsWith(': OK'))).toHaveLength(6); // every regular file, the empty one included

    // Same size, same mtime, other bytes: the quick check cannot see it.
    const file = path.join(dir, 'src/lib/util.js');
    const st = await fsp.stat(file);
    await fsp.writeFile(file, 'export const x = 2;\n');
    await fsp.utimes(file, st.atime, st.mtime);
    const byMetadata = await createBackup({ dir, store, base: full });
    expect(byMetadata.entries).toBe(1);
    const byContent = await createBackup({ dir, store, base: full, compare: 'content' });
    expect(byContent.checksums).toBeDefined();
    await restoreBackup(byContent, { store, dir: restored });
    expect(await compareTrees(dir, restored)).toEqual([]);

    const error = await createBackup({ dir, store, base: byMetadata, compare: 'content' }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'INVALID_BACKUP_CONFIG', message: expect.stringMatching(/made without them/) });
    await deleteBackup(byContent, { store });
    expect(await fsp.readdir(storeDir)).not.toContain(`${byContent.id}.sha256`);
  });

  it("'latest' with no backup of the directory makes a full backup and says so; maxChain bounds a chain", async () => {
    const dir = path.join(work, 'chain-bound');
    const storeDir = path.join(work, 'chain-bound-store');
    await fsp.mkdir(dir);
    await fsp.mkdir(storeDir, { mode: 0o700 });
    await seedTree(dir);
    const store = localStore(storeDir);
    const first = await createBackup({ dir, store, base: 'latest' });
    expect(first.base).toBeUndefined();
    expect(first.warnings.join('\n')).toMatch(/a full backup was made: .* holds no live backup of/);
    const one = await createBackup({ dir, store, base: 'latest', maxChain: 2 });
    const two = await createBackup({ dir, store, base: 'latest', maxChain: 2 });
    expect(two.chain).toEqual([first.id, one.id, two.id]);
    const three = await createBackup({ dir, store, base: 'latest', maxChain: 2 });
    expect(three.base).toBeUndefined();
    expect(three.warnings.join('\n')).toMatch(/would be delta 3 of its chain, more than maxChain \(2\)/);
  });

  it('a base that is not in the store is BACKUP_NOT_FOUND, and nothing is stored', async () => {
    const dir = path.join(work, 'no-base');
    const storeDir = path.join(work, 'no-base-store');
    await fsp.mkdir(dir);
    await fsp.mkdir(storeDir, { mode: 0o700 });
    await seedTree(dir);
    const error = await createBackup({ dir, store: localStore(storeDir), base: '00000000-0000-4000-8000-000000000000' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackupError);
    expect((error as BackupError).code).toBe('BACKUP_NOT_FOUND');
    expect(await fsp.readdir(storeDir)).toEqual([]);
  });
});
