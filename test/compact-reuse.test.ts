/**
 * Compaction that takes the full backup's data region in whole
 * (compactBackup `reuseBase`): against the real S3-compatible server (the
 * region's whole parts made with UploadPartCopy, never sent), with a store
 * that answers 501 to copies (every byte sent instead), and with the local
 * store. Each compacted image must equal the chain's merged tree as
 * unsquashfs extracts it and as restoreBackup (which checks its size and
 * SHA-256) gives it.
 */
import { spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { compactBackup, createBackup, localStore, openImage, restoreBackup, s3Store, type DirectoryBackup } from '../src/node/index.js';
import type { ObjectStore } from '../src/uploader/store.js';
import { compareTrees } from './helpers/oracles.js';
import { ACCESS_KEY, SECRET_KEY, startS3, type S3Harness } from './helpers/s3-server.js';
import { pseudoRandomBytes } from './helpers/tree.js';

const MiB = 1024 * 1024;
let work: string;
let s3: S3Harness;

beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'compact-reuse-'));
  s3 = await startS3();
});
afterAll(async () => {
  await s3?.close();
  await fsp.rm(work, { recursive: true, force: true });
});
beforeEach(() => s3.reset());

/** A tree whose full backup has a data region of about 25 MiB: big incompressible files, some text. */
async function seed(dir: string): Promise<void> {
  await fsp.mkdir(path.join(dir, 'data'), { recursive: true });
  await fsp.mkdir(path.join(dir, 'src'));
  for (let i = 0; i < 10; i++) await fsp.writeFile(path.join(dir, 'data', `blob-${i}.bin`), pseudoRandomBytes(2.5 * MiB + 1000 * i, i + 1));
  await fsp.writeFile(path.join(dir, 'data', 'copy-of-0.bin'), pseudoRandomBytes(2.5 * MiB, 1)); // a duplicate
  for (let i = 0; i < 40; i++) await fsp.writeFile(path.join(dir, 'src', `f${i}.txt`), `file ${i}\n`.repeat(50 + i));
  await fsp.writeFile(path.join(dir, 'src', 'empty'), '');
}

/** The edits between the full backup and its delta: one big file changed, one deleted, small ones changed and added. */
async function edit(dir: string): Promise<void> {
  await fsp.appendFile(path.join(dir, 'data', 'blob-1.bin'), 'appended\n');
  await fsp.rm(path.join(dir, 'data', 'blob-2.bin'));
  await fsp.writeFile(path.join(dir, 'src', 'f3.txt'), 'rewritten\n');
  await fsp.rm(path.join(dir, 'src', 'f4.txt'));
  await fsp.writeFile(path.join(dir, 'src', 'new.txt'), 'new\n'.repeat(300));
  await fsp.writeFile(path.join(dir, 'data', 'new.bin'), pseudoRandomBytes(300_000, 99));
}

/** A full backup, a delta over it, and the tree as the delta holds it. */
async function chainIn(store: ObjectStore, name: string): Promise<{ dir: string; full: DirectoryBackup; delta: DirectoryBackup }> {
  const dir = path.join(work, `${name}-tree`);
  await seed(dir);
  const full = await createBackup({ dir, store, compression: 'zstd' });
  await edit(dir);
  const delta = await createBackup({ dir, store, base: full, compression: 'zstd' });
  return { dir, full, delta };
}

/** Restores the compacted backup (size and SHA-256 checked on the way) and compares it with the tree. */
async function expectRestores(store: ObjectStore, compacted: DirectoryBackup, dir: string, name: string): Promise<void> {
  const restored = path.join(work, `${name}-restored`);
  await restoreBackup(compacted, { store, dir: restored });
  expect(await compareTrees(dir, restored)).toEqual([]);
}

const s3For = (prefix: string) => s3Store({ endpoint: s3.endpoint, bucket: s3.bucket, prefix, accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY });

describe('compaction that reuses the full backup\'s data region', () => {
  it('S3: the region\'s whole parts are copied on the server; only part 1, the new data and the tables are sent', async () => {
    const store = s3For('reuse');
    const { dir, full, delta } = await chainIn(store, 's3');
    s3.reset();
    const compacted = await compactBackup(delta, { store });
    expect(compacted.base).toBeUndefined();
    const upload = [...s3.uploads.values()].find((u) => u.key.endsWith(compacted.key))!;
    const copies = s3.requests.filter((r) => r.op === 'copy');
    const sent = s3.requests.filter((r) => r.op === 'part' && r.key.endsWith(compacted.key));
    expect(copies.length).toBeGreaterThanOrEqual(2);
    expect(upload.state).toBe('completed');
    expect(s3.violations).toEqual([]);
    // Sent: part 1 (5 MiB, the superblock and the region's start) and what follows the region; the rest was copied.
    const sentBytes = sent.reduce((n, r) => n + (upload.sizes.get(r.partNumber!) ?? 0), 0);
    expect(sentBytes).toBeLessThan(compacted.size - copies.length * 5 * MiB + 1);
    expect(compacted.size).toBeGreaterThan(full.size - MiB); // it keeps the deleted blob's blocks
    await expectRestores(store, compacted, dir, 's3');

    // unsquashfs agrees, on the object as the server stores it.
    const file = path.join(work, 's3-compacted.sqfs');
    await fsp.writeFile(file, Buffer.from(await store.getRange(compacted.key, 0, compacted.size)));
    const extracted = path.join(work, 's3-extracted');
    const r = spawnSync('unsquashfs', ['-no-progress', '-d', extracted, file], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(await compareTrees(dir, extracted)).toEqual([]);

    // The unchanged big files' blocks are where the region put them (after the new data, all moved alike),
    // byte for byte the full backup's.
    const base = path.join(work, 's3-full.sqfs');
    await fsp.writeFile(base, Buffer.from(await store.getRange(full.key, 0, full.size)));
    const [a, b] = await Promise.all([openImage(base), openImage(file)]);
    try {
      const shifts: number[] = [];
      for (const name of ['/data/blob-3.bin', '/data/blob-5.bin', '/src/f7.txt']) {
        const [before, after] = await Promise.all([a.storedData(name), b.storedData(name)]);
        expect([...after.words], name).toEqual([...before.words]);
        if (before.words.length > 7) expect(Buffer.compare(await after.block(7), await before.block(7))).toBe(0);
        expect(Buffer.compare(await after.tail(), await before.tail()), name).toBe(0);
        shifts.push(after.at!.blocksStart - before.at!.blocksStart);
      }
      expect(new Set(shifts).size).toBe(1);
      expect(shifts[0]).toBeGreaterThan(300_000); // new.bin and blob-1.bin's new blocks come first
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  }, 60_000);

  it('S3 that answers 501 to copies: every byte of the region is fetched and sent instead, and the image is the same', async () => {
    const store = s3For('no-copy');
    const { dir, delta } = await chainIn(store, 'nocopy');
    s3.reset();
    s3.faults = (r) => (r.op === 'copy' ? { status: 501 } : undefined);
    const compacted = await compactBackup(delta, { store });
    const copies = s3.requests.filter((r) => r.op === 'copy');
    expect(copies.length).toBeGreaterThanOrEqual(1);
    expect(copies.length).toBeLessThanOrEqual(8); // learnt once: the parts handed out before the first answer, no more
    expect(s3.violations).toEqual([]);
    expect(s3.openUploads()).toEqual([]);
    await expectRestores(store, compacted, dir, 'nocopy');
  }, 60_000);

  it('a transient 500 on a copy is retried', async () => {
    const store = s3For('copy-retry');
    const { dir, delta } = await chainIn(store, 'retry');
    s3.reset();
    s3.faults = (r) => (r.op === 'copy' && r.n === 1 ? { status: 500 } : undefined);
    const compacted = await compactBackup(delta, { store });
    expect(s3.faulted()).toHaveLength(1);
    await expectRestores(store, compacted, dir, 'retry');
  }, 60_000);

  it('local store: the same, with parts made from the stored file', async () => {
    const storeDir = path.join(work, 'local-store');
    await fsp.mkdir(storeDir, { mode: 0o700 });
    const store = localStore(storeDir);
    const { dir, full, delta } = await chainIn(store, 'local');
    const compacted = await compactBackup(delta, { store });
    await expectRestores(store, compacted, dir, 'local');
    const extracted = path.join(work, 'local-extracted');
    const r = spawnSync('unsquashfs', ['-no-progress', '-d', extracted, path.join(storeDir, compacted.key)], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(await compareTrees(dir, extracted)).toEqual([]);
    // Without reuse the image holds only the merged tree: smaller by the deleted and replaced blocks.
    const rewritten = await compactBackup(delta, { store, reuseBase: false });
    expect(rewritten.size).toBeLessThan(compacted.size - 4 * MiB);
    expect(compacted.size).toBeGreaterThan(full.size - MiB);
  }, 60_000);

  it('by default, a region mostly unused by the merged tree is not reused', async () => {
    const storeDir = path.join(work, 'unused-store');
    await fsp.mkdir(storeDir, { mode: 0o700 });
    const store = localStore(storeDir);
    const dir = path.join(work, 'unused-tree');
    await seed(dir);
    const full = await createBackup({ dir, store, compression: 'zstd' });
    for (let i = 1; i < 8; i++) await fsp.rm(path.join(dir, 'data', `blob-${i}.bin`));
    const delta = await createBackup({ dir, store, base: full, compression: 'zstd' });
    const compacted = await compactBackup(delta, { store });
    const fresh = await createBackup({ dir, store, compression: 'zstd' });
    expect(compacted.size).toBe(fresh.size);
    await expectRestores(store, compacted, dir, 'unused');
  }, 60_000);
});
