/**
 * Lifetimes of chains of incremental backups (issue 14; backup contract §7):
 * prune keeps an expired backup that a live delta needs and says why, and
 * deletes the rest top layers first; deleteBackup refuses a base
 * (BACKUP_IN_USE) unless its dependants go too; and the CLI: backups list /
 * delete --dependants / prune, backup --incremental / --base / --max-chain.
 * Handles and small stand-in images are written straight into a real local
 * store; after every delete, each listed backup must still have every layer
 * of its chain.
 */
import { randomUUID } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chainOf } from '../src/backup/chain.js';
import { parseHandle, type DirectoryBackup } from '../src/backup/handle.js';
import { chainsOf, deleteBackup, listBackups, pruneExpiredBackups } from '../src/backup/manage.js';
import { main } from '../src/cli/main.js';
import { localStore } from '../src/node/local-store.js';
import type { ObjectStore } from '../src/uploader/store.js';

const HOUR = 3_600_000;

let work: string;
beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'sqfs-chain-lifetimes-'));
});
afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

/** A new empty store; `url` for the CLI. */
async function newStore() {
  const dir = await fsp.mkdtemp(path.join(work, 'store-'));
  return { store: localStore(dir), dir, url: `file://${dir}` };
}

let clock = Date.now() - 100 * HOUR;

/**
 * Writes a handle and a stand-in image into the store: live (expiring in an
 * hour, or `hours`) or expired an hour ago, a delta when `over` is given.
 * Each one is created a minute after the one before.
 */
async function put(store: ObjectStore, live: boolean, over?: DirectoryBackup, { hours = 1, fullChain = true } = {}): Promise<DirectoryBackup> {
  const id = randomUUID();
  const image = new TextEncoder().encode(`stand-in image of ${id}\n`);
  clock += 60_000;
  const chain = over ? [...chainOf(over), id] : [id];
  const handle = parseHandle({
    format: 'squashfs-4.0', id, name: 'crafted', dir: '/srv/data', key: `${id}.sqfs`, size: image.length, sha256: '0'.repeat(64),
    compression: 'zstd', level: 3, blockSize: 131072, createdAt: new Date(clock).toISOString(),
    expiresAt: new Date(Date.now() + (live ? hours : -1) * HOUR).toISOString(), files: 1, entries: 2, warnings: [],
    ...(over ? { base: over.id, chain } : fullChain ? { chain } : {}),
  }, 'a crafted handle');
  await store.put(`${id}.sqfs`, image);
  await store.put(`${id}.json`, new TextEncoder().encode(JSON.stringify(handle)));
  return handle;
}

/**
 * The store, with every delete recorded and followed by a check that each
 * backup still listed has the metadata and the image of every layer of its
 * chain (what a delete must never break, at any moment).
 */
function watched(store: ObjectStore) {
  const deleted: string[] = [];
  const broken: string[] = [];
  const wrapped: ObjectStore = {
    ...store,
    location: store.location,
    delete: async (key, signal) => {
      await store.delete(key, signal);
      deleted.push(key);
      for (const backup of await listBackups({ store })) {
        for (const id of chainOf(backup)) {
          if (!(await store.head(`${id}.json`)) || !(await store.head(`${id}.sqfs`))) broken.push(`after deleting ${key}, ${backup.id} lacks layer ${id}`);
        }
      }
    },
  };
  return { store: wrapped, deleted, broken };
}

/** The ids whose metadata or image is in the store. */
async function stored(dir: string): Promise<Set<string>> {
  return new Set((await fsp.readdir(dir)).filter((n) => /\.(json|sqfs)$/.test(n)).map((n) => n.replace(/\.(json|sqfs)$/, '')));
}

/** Deleted ids in the order their metadata went (each backup's image follows its metadata). */
function order(deleted: string[]): string[] {
  const ids = deleted.map((key) => key.replace(/\.(json|sqfs)$/, ''));
  for (let i = 0; i < deleted.length; i += 2) {
    expect(deleted[i]).toBe(`${ids[i]}.json`);
    expect(deleted[i + 1]).toBe(`${ids[i]}.sqfs`);
  }
  return ids.filter((_, i) => i % 2 === 0);
}

describe('pruneExpiredBackups keeps what a live delta needs', () => {
  it('an expired full backup with live deltas over it is kept, for the delta that expires last; an unrelated expired one goes', async () => {
    const { store: raw, dir } = await newStore();
    const full = await put(raw, false, undefined, { fullChain: false });
    const soon = await put(raw, true, full, { hours: 1 });
    const later = await put(raw, true, full, { hours: 5 });
    const unrelated = await put(raw, false);
    const { store, deleted, broken } = watched(raw);
    const kept: [string, string][] = [];
    const gone = await pruneExpiredBackups({ store, onKept: (b, reason) => kept.push([b.id, reason]) });
    expect(gone.map((b) => b.id)).toEqual([unrelated.id]);
    expect(kept).toEqual([[full.id, `base of live backup ${later.id} (expires ${later.expiresAt})`]]);
    expect(order(deleted)).toEqual([unrelated.id]);
    expect(broken).toEqual([]);
    expect(await stored(dir)).toEqual(new Set([full.id, soon.id, later.id]));
  });

  it('a chain of three whose top is live keeps the expired middle and full; an expired branch over the middle goes', async () => {
    const { store: raw, dir } = await newStore();
    const full = await put(raw, false);
    const middle = await put(raw, false, full);
    const top = await put(raw, true, middle);
    const branch = await put(raw, false, middle);
    const branchTop = await put(raw, false, branch);
    const { store, deleted, broken } = watched(raw);
    const kept = new Map<string, string>();
    const gone = await pruneExpiredBackups({ store, onKept: (b, reason) => kept.set(b.id, reason) });
    const why = `base of live backup ${top.id} (expires ${top.expiresAt})`;
    expect(kept).toEqual(new Map([[full.id, why], [middle.id, why]]));
    expect(gone.map((b) => b.id).sort()).toEqual([branch.id, branchTop.id].sort());
    expect(order(deleted)).toEqual([branchTop.id, branch.id]);
    expect(broken).toEqual([]);
    expect(await stored(dir)).toEqual(new Set([full.id, middle.id, top.id]));
  });

  it('an expired chain with nothing live over it goes entirely, newest layer first, and nothing is kept', async () => {
    const { store: raw, dir } = await newStore();
    const full = await put(raw, false);
    const d1 = await put(raw, false, full);
    const d2 = await put(raw, false, d1);
    const d3 = await put(raw, false, d2);
    const other = await put(raw, false, d1);
    const live = await put(raw, true);
    const { store, deleted, broken } = watched(raw);
    const kept: string[] = [];
    const gone = await pruneExpiredBackups({ store, onKept: (b) => kept.push(b.id) });
    expect(kept).toEqual([]);
    // Returned oldest first, as listed; deleted top layers first.
    expect(gone.map((b) => b.id)).toEqual([full.id, d1.id, d2.id, d3.id, other.id]);
    expect(order(deleted)).toEqual([d3.id, other.id, d2.id, d1.id, full.id]);
    expect(broken).toEqual([]);
    expect(await stored(dir)).toEqual(new Set([live.id]));
  });

  it('judges by `now`: the same store later prunes the chain once its top has expired too', async () => {
    const { store, dir } = await newStore();
    const full = await put(store, false);
    const top = await put(store, true, full);
    expect(await pruneExpiredBackups({ store })).toEqual([]);
    const gone = await pruneExpiredBackups({ store, now: Date.parse(top.expiresAt) + 1 });
    expect(gone.map((b) => b.id)).toEqual([full.id, top.id]);
    expect(await stored(dir)).toEqual(new Set());
  });
});

describe('deleteBackup of a base', () => {
  it('refuses with BACKUP_IN_USE naming the dependants (live or expired), and deletes nothing', async () => {
    const { store: raw, dir } = await newStore();
    const full = await put(raw, true);
    const middle = await put(raw, true, full);
    const top = await put(raw, false, middle);
    const { store, deleted } = watched(raw);
    const before = await stored(dir);
    const error = await deleteBackup(full.id, { store }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'BackupError', code: 'BACKUP_IN_USE' });
    expect((error as Error).message).toContain(`backup ${full.id} is in the chain of 2 other backups`);
    expect((error as Error).message).toContain(`${middle.id} (live until ${middle.expiresAt})`);
    expect((error as Error).message).toContain(`${top.id} (expired)`);
    await expect(deleteBackup(middle, { store })).rejects.toMatchObject({ code: 'BACKUP_IN_USE' });
    expect(deleted).toEqual([]);
    expect(await stored(dir)).toEqual(before);
  });

  it('with dependants: true deletes the subtree over it, top layers first, then it; the rest of the chain stays', async () => {
    const { store: raw, dir } = await newStore();
    const full = await put(raw, true);
    const middle = await put(raw, true, full);
    const top = await put(raw, true, middle);
    const branch = await put(raw, false, middle);
    const sibling = await put(raw, true, full);
    const { store, deleted, broken } = watched(raw);
    const ids = await deleteBackup(middle.id, { store, dependants: true });
    expect(ids).toEqual([branch.id, top.id, middle.id]);
    expect(order(deleted)).toEqual(ids);
    expect(broken).toEqual([]);
    expect(await stored(dir)).toEqual(new Set([full.id, sibling.id]));
  });

  it('a backup nothing is over is deleted as before (metadata, then image); one not there is BACKUP_NOT_FOUND', async () => {
    const { store: raw, dir } = await newStore();
    const full = await put(raw, true);
    const top = await put(raw, true, full);
    const { store, deleted } = watched(raw);
    expect(await deleteBackup(top, { store })).toEqual([top.id]);
    expect(deleted).toEqual([`${top.id}.json`, `${top.id}.sqfs`]);
    await expect(deleteBackup(top.id, { store })).rejects.toMatchObject({ code: 'BACKUP_NOT_FOUND' });
    expect(await deleteBackup(full.id, { store })).toEqual([full.id]);
    expect(await stored(dir)).toEqual(new Set());
  });

  it('a backup whose own metadata is unreadable can still be deleted (it is not read)', async () => {
    const { store, dir } = await newStore();
    const full = await put(store, true);
    await store.put(`${full.id}.json`, new TextEncoder().encode('not json'));
    expect(await deleteBackup(full.id, { store })).toEqual([full.id]);
    expect(await stored(dir)).toEqual(new Set());
  });
});

describe('chainsOf', () => {
  it('groups by full backup, oldest first, each backup followed by the deltas over it', async () => {
    const { store } = await newStore();
    const a = await put(store, true);
    const a1 = await put(store, true, a);
    const b = await put(store, true);
    const a2 = await put(store, true, a1);
    const a1b = await put(store, true, a);
    const b1 = await put(store, true, b);
    const ids = (groups: DirectoryBackup[][]) => groups.map((g) => g.map((x) => x.id));
    expect(ids(chainsOf(await listBackups({ store })))).toEqual([[a.id, a1.id, a2.id, a1b.id], [b.id, b1.id]]);
    // A delta whose base is not given starts a branch of its own in its chain's group.
    expect(ids(chainsOf([b1, a2, a1b]))).toEqual([[a2.id, a1b.id], [b1.id]]);
  });
});

/** Runs the CLI as a user would, collecting what it prints. */
async function run(...argv: string[]) {
  let out = '';
  let err = '';
  const code = await main(argv, { stdout: (t) => void (out += t), stderr: (t) => void (err += t), progress: undefined });
  return { code, out, err };
}

describe('sqfs backups with chains', () => {
  it('list shows each delta indented under the backup it is over, with its place in the chain; --json adds base and chain', async () => {
    const { store, url } = await newStore();
    const full = await put(store, false);
    const d1 = await put(store, true, full);
    const other = await put(store, true);
    const d2 = await put(store, true, d1);
    const side = await put(store, true, full);
    const listed = await run('backups', 'list', '--store', url);
    expect(listed.code, listed.err).toBe(0);
    const lines = listed.out.trimEnd().split('\n');
    expect(lines.map((l) => /^( *)(\S+)/.exec(l)!.slice(1).join(''))).toEqual([full.id, `  ${d1.id}`, `    ${d2.id}`, `  ${side.id}`, other.id]);
    expect(lines[0]).toMatch(/ {2}expired {2}full {2}crafted {2}\(\/srv\/data\)$/);
    expect(lines[1]).toContain(`  expires ${d1.expiresAt}  delta 1/2 over ${full.id}  crafted`);
    expect(lines[2]).toContain(`delta 2/2 over ${d1.id}`);
    expect(lines[3]).toContain(`delta 1/1 over ${full.id}`);
    expect(lines[4]).toContain('  full  ');

    const json = await run('backups', 'list', '--json', '--store', url);
    expect(json.code, json.err).toBe(0);
    const handles = JSON.parse(json.out) as DirectoryBackup[];
    expect(handles.map((h) => h.id)).toEqual([full.id, d1.id, other.id, d2.id, side.id]);
    expect(handles[0]).toMatchObject({ chain: [full.id] });
    expect(handles[0]!.base).toBeUndefined();
    expect(handles[3]).toMatchObject({ base: d1.id, chain: [full.id, d1.id, d2.id] });
    for (const h of handles) parseHandle(h, 'a listed handle');
  });

  it('prune prints one line for each backup it keeps, and why', async () => {
    const { store, dir, url } = await newStore();
    const full = await put(store, false);
    const middle = await put(store, false, full);
    const top = await put(store, true, middle);
    await put(store, false);
    const pruned = await run('backups', 'prune', '--store', url);
    expect(pruned.code, pruned.err).toBe(0);
    const why = `base of live backup ${top.id} (expires ${top.expiresAt})`;
    expect(pruned.err).toBe(
      `kept ${full.id} (expired ${full.expiresAt}): ${why}\n` +
        `kept ${middle.id} (expired ${middle.expiresAt}): ${why}\n` +
        'pruned 1 expired backup, kept 2 that live backups need\n',
    );
    expect(await stored(dir)).toEqual(new Set([full.id, middle.id, top.id]));
  });

  it('delete of a base fails with BACKUP_IN_USE; with --dependants it deletes the deltas over it too', async () => {
    const { store, dir, url } = await newStore();
    const full = await put(store, true);
    const d1 = await put(store, true, full);
    const d2 = await put(store, false, d1);
    const refused = await run('backups', 'delete', full.id, '--store', url);
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(new RegExp(`^sqfs backups: backup ${full.id} is in the chain of 2 other backups: .* \\[BACKUP_IN_USE\\]\\n$`));
    expect(await stored(dir)).toEqual(new Set([full.id, d1.id, d2.id]));
    const done = await run('backups', 'delete', full.id, '--dependants', '--store', url);
    expect(done.code, done.err).toBe(0);
    expect(done.err).toBe(`deleted ${d2.id}\ndeleted ${d1.id}\ndeleted ${full.id}\n`);
    expect(await stored(dir)).toEqual(new Set());
    expect((await run('backups', 'list', '--dependants', '--store', url)).code).toBe(2);
  });
});

describe('sqfs backup --incremental / --base / --max-chain', () => {
  let tree: string;
  beforeAll(async () => {
    tree = path.join(work, 'tree');
    await fsp.mkdir(path.join(tree, 'sub'), { recursive: true });
    await fsp.writeFile(path.join(tree, 'a.txt'), 'first\n');
    await fsp.writeFile(path.join(tree, 'sub', 'b.txt'), 'second\n');
  });

  it('refuses misuse as usage errors (exit 2)', async () => {
    const { url } = await newStore();
    const misuses = [
      ['--incremental', '--base', randomUUID()],
      ['--incremental', '--max-chain', '-1'],
      ['--incremental', '--max-chain', '1.5'],
      ['--incremental', '--max-chain', 'many'],
      ['--max-chain', '3'],
      ['--base', 'not-an-id'],
    ];
    for (const args of misuses) {
      const result = await run('backup', tree, '--store', url, ...args);
      expect(result.code, `${args.join(' ')}: ${result.err}`).toBe(2);
    }
  });

  it('passes base and maxChain to createBackup: a delta over the latest or a named backup; an unknown base is BACKUP_NOT_FOUND', async () => {
    const { url } = await newStore();
    const made = await run('backup', tree, '--store', url);
    expect(made.code, made.err).toBe(0);
    const full = JSON.parse(made.out) as DirectoryBackup;
    await fsp.writeFile(path.join(tree, 'a.txt'), 'changed\n');

    const latest = await run('backup', tree, '--store', url, '--incremental');
    expect(latest.code, latest.err).toBe(0);
    const delta = JSON.parse(latest.out) as DirectoryBackup;
    expect(delta).toMatchObject({ base: full.id, chain: [full.id, delta.id] });

    const named = await run('backup', tree, '--store', url, '--base', full.id);
    expect(named.code, named.err).toBe(0);
    expect(JSON.parse(named.out)).toMatchObject({ base: full.id });

    const capped = await run('backup', tree, '--store', url, '--base', delta.id, '--max-chain', '1');
    expect(capped.code, capped.err).toBe(0);
    expect(JSON.parse(capped.out).base).toBeUndefined();
    expect(capped.err).toMatch(/^sqfs backup: warning: a full backup was made: .*maxChain \(1\)/m);

    const unknown = randomUUID();
    const missing = await run('backup', tree, '--store', url, '--base', unknown);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(new RegExp(`${unknown}.* \\[BACKUP_NOT_FOUND\\]\\n$`));
  });
});
