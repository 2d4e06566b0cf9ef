/**
 * createBackup / restoreBackup / openBackup / listBackups / deleteBackup /
 * pruneExpiredBackups on a local store and on a real S3-compatible server
 * (s3rver behind the fault proxy), with the tricky tree compared entry by
 * entry after the round trip.
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Volume } from 'memfs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  BackupError, deleteBackup, listBackups, openBackup, pruneExpiredBackups, restoreBackup as webRestoreBackup, s3Store, type FsWriteLike, type ObjectStore,
  type RequestPolicyOptions,
} from '../src/index.js';
import { createBackup, localStore, restoreBackup } from '../src/node/index.js';
import { compareTrees } from './helpers/oracles.js';
import { ACCESS_KEY, SECRET_KEY, startS3, type S3Harness } from './helpers/s3-server.js';
import { makeTrickyTree, pseudoRandomBytes } from './helpers/tree.js';

let work: string;
let tree: string;
let s3: S3Harness;
beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'sqfs-backup-'));
  tree = path.join(work, 'tree');
  await makeTrickyTree(tree, { blockSize: 131072 });
  s3 = await startS3();
});
afterAll(async () => {
  await s3?.close();
  await fsp.rm(work, { recursive: true, force: true });
});
beforeEach(() => s3.reset());

const s3store = (endpoint = s3.endpoint, prefix = 'backups', policy?: RequestPolicyOptions) =>
  s3Store({ endpoint, bucket: s3.bucket, prefix, accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY, policy });

/** Counts ranged reads and bytes through a store. */
function counting(store: ObjectStore) {
  const stats = { ranges: 0, bytes: 0 };
  const wrapped: ObjectStore = {
    ...store,
    location: store.location,
    getRange: async (key, offset, length, signal) => {
      stats.ranges++;
      stats.bytes += length;
      return store.getRange(key, offset, length, signal);
    },
  };
  return { store: wrapped, stats };
}

describe.each([
  ['a local store', () => localStore(path.join(work, 'store'))],
  ['S3 (s3rver behind the proxy)', () => s3store()],
])('round trip through %s', (_label, makeStore) => {
  it('backs up the tricky tree and restores it exactly, into another directory', async () => {
    const store = makeStore();
    const backup = await createBackup({ dir: tree, store, name: 'tricky', ttl: 3600 });
    expect(JSON.parse(JSON.stringify(backup))).toEqual(backup);
    expect(backup).toMatchObject({ format: 'squashfs-4.0', name: 'tricky', dir: tree, compression: 'zstd', level: 3 });
    const target = path.join(work, `restored-${Math.random().toString(36).slice(2)}`);
    const result = await restoreBackup(backup, { store, dir: target });
    expect(result.dir).toBe(target);
    expect(await compareTrees(tree, target)).toEqual([]);
    expect(s3.violations).toEqual([]);
    expect(s3.openUploads()).toEqual([]);
    // By id alone, too, and listed.
    const again = path.join(work, `again-${Math.random().toString(36).slice(2)}`);
    await restoreBackup(backup.id, { store, dir: again });
    expect(await compareTrees(tree, again)).toEqual([]);
    expect((await listBackups({ store })).map((b) => b.id)).toContain(backup.id);
  });
});

describe('what goes wrong, goes wrong with its code and touches nothing', () => {
  let store: ObjectStore;
  let target: string;
  beforeAll(async () => {
    store = localStore(path.join(work, 'store-errors'));
  });
  beforeEach(async () => {
    target = path.join(work, `target-${Math.random().toString(36).slice(2)}`);
    await fsp.mkdir(target);
    await fsp.writeFile(path.join(target, 'precious.txt'), 'keep me\n');
  });
  const untouched = async () => {
    expect(await fsp.readdir(target)).toEqual(['precious.txt']);
    expect((await fsp.readdir(path.dirname(target))).filter((n) => n.startsWith(`.${path.basename(target)}.`))).toEqual([]);
  };

  it('an expired handle: BACKUP_EXPIRED', async () => {
    const backup = await createBackup({ dir: tree, store, ttl: 0.001 });
    await new Promise((r) => setTimeout(r, 5));
    await expect(restoreBackup(backup, { store, dir: target })).rejects.toMatchObject({ code: 'BACKUP_EXPIRED' });
    await expect(openBackup(backup, { store })).rejects.toMatchObject({ code: 'BACKUP_EXPIRED' });
    await untouched();
    expect((await pruneExpiredBackups({ store })).map((b) => b.id)).toContain(backup.id);
    expect(await store.head(backup.key)).toBeUndefined();
  });

  it('a tampered image (one byte flipped in the store): BACKUP_INTEGRITY_ERROR', async () => {
    const backup = await createBackup({ dir: tree, store });
    const file = path.join(work, 'store-errors', backup.key);
    const bytes = await fsp.readFile(file);
    bytes[Math.floor(bytes.length / 2)] ^= 0x40;
    await fsp.writeFile(file, bytes);
    const error = await restoreBackup(backup, { store, dir: target }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'BACKUP_INTEGRITY_ERROR' });
    expect((error as Error).message).toMatch(/sha256/);
    await untouched();
  });

  it('a missing object, and a wrong store: BACKUP_NOT_FOUND', async () => {
    const backup = await createBackup({ dir: tree, store });
    await fsp.rm(path.join(work, 'store-errors', backup.key));
    await expect(restoreBackup(backup, { store, dir: target })).rejects.toMatchObject({ code: 'BACKUP_NOT_FOUND' });
    const elsewhere = localStore(path.join(work, 'store-empty'));
    await expect(restoreBackup(backup.id, { store: elsewhere, dir: target })).rejects.toMatchObject({ code: 'BACKUP_NOT_FOUND' });
    await expect(deleteBackup(backup.id, { store: elsewhere })).rejects.toMatchObject({ code: 'BACKUP_NOT_FOUND' });
    await untouched();
  });

  it.each([
    ['a relative dir', { dir: 'relative/dir' }, 'INVALID_BACKUP_CONFIG'],
    ['ttl 0', { ttl: 0 }, 'INVALID_BACKUP_CONFIG'],
    ['ttl -5', { ttl: -5 }, 'INVALID_BACKUP_CONFIG'],
    ['a name with a control character', { name: 'bad\u0007name' }, 'INVALID_BACKUP_CONFIG'],
    ['a name of 257 characters', { name: 'n'.repeat(257) }, 'INVALID_BACKUP_CONFIG'],
    ['an unknown compression', { compression: 'brotli' }, 'INVALID_BACKUP_CONFIG'],
    ['a missing dir', { dir: '/nonexistent/sqfs-test' }, 'BACKUP_CREATE_ERROR'],
  ] as const)('%s: %s', async (_label, patch, code) => {
    const error = await createBackup({ dir: tree, store, ...(patch as object) }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackupError);
    expect(error).toMatchObject({ code });
  });

  it('a file where a directory should be: BACKUP_CREATE_ERROR, and nothing is stored', async () => {
    const before = [];
    for await (const item of store.list('')) before.push(item.key);
    const file = path.join(work, 'not-a-dir');
    await fsp.writeFile(file, 'x');
    await expect(createBackup({ dir: file, store })).rejects.toMatchObject({ code: 'BACKUP_CREATE_ERROR', message: expect.stringMatching(/not a directory/) });
    const after = [];
    for await (const item of store.list('')) after.push(item.key);
    expect(after).toEqual(before);
  });

  it('a restore whose download fails half way leaves the previous contents intact', async () => {
    const big = path.join(work, 'big-tree');
    await fsp.mkdir(big, { recursive: true });
    await fsp.writeFile(path.join(big, 'random.bin'), pseudoRandomBytes(12 << 20, 5));
    const remote = s3store();
    const backup = await createBackup({ dir: big, store: remote });
    s3.faults = (r) => (r.op === 'get' ? { reset: true } : undefined);
    const error = await restoreBackup(backup, { store: remote, dir: target }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackupError);
    expect(['BACKUP_RESTORE_ERROR', 'BACKUP_INTEGRITY_ERROR']).toContain((error as BackupError).code);
    await untouched();
  });

  it('an upload that fails leaves no object and no metadata behind', async () => {
    const remote = s3store(s3.endpoint, 'failing', { attempts: 2, baseDelayMs: 1 });
    s3.faults = (r) => (r.op === 'put' || r.op === 'part' ? { status: 500 } : undefined);
    const error = await createBackup({ dir: tree, store: remote }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'BACKUP_CREATE_ERROR' });
    s3.faults = () => undefined;
    const left = [];
    for await (const item of s3store(s3.direct, 'failing').list('')) left.push(item.key);
    expect(left).toEqual([]);
    expect(s3.openUploads()).toEqual([]);
  });
});

describe('concurrency, ranged reads, other sources', () => {
  it('ten concurrent backups of one directory run one at a time, and each restores to its own content', async () => {
    const dir = path.join(work, 'changing');
    await fsp.mkdir(dir, { recursive: true });
    const store = localStore(path.join(work, 'store-concurrent'));
    let running = 0;
    let most = 0;
    const backups = await Promise.all(
      Array.from({ length: 10 }, async (_, i) => {
        await fsp.writeFile(path.join(dir, `call-${i}.txt`), `call ${i}\n`);
        let started = false;
        return createBackup({
          dir, store, name: `call ${i}`,
          onProgress: (p) => {
            if (!started) {
              started = true;
              most = Math.max(most, ++running);
            }
            if (p.phase === 'done') running--;
          },
        });
      }),
    );
    expect(most).toBe(1);
    expect(new Set(backups.map((b) => b.id)).size).toBe(10);
    for (const backup of backups.slice(0, 3)) {
      const out = path.join(work, `concurrent-${backup.id}`);
      await restoreBackup(backup, { store, dir: out });
      expect((await fsp.readdir(out)).length).toBe(backup.files);
    }
  });

  it('openBackup reads one small file out of a 100 MB backup with a handful of ranged requests', async () => {
    const dir = path.join(work, 'hundred');
    await fsp.mkdir(path.join(dir, 'a/b/c'), { recursive: true });
    for (let i = 0; i < 10; i++) await fsp.writeFile(path.join(dir, `blob-${i}.bin`), pseudoRandomBytes(10 << 20, 100 + i));
    await fsp.writeFile(path.join(dir, 'a/b/c/analysis.json'), '{"result": 42}\n');
    const remote = s3store();
    const backup = await createBackup({ dir, store: remote, compression: 'gzip' });
    expect(backup.size).toBeGreaterThan(100 << 20);
    const { store, stats } = counting(remote);
    const image = await openBackup(backup, { store });
    expect(new TextDecoder().decode(await image.readFile('/a/b/c/analysis.json'))).toBe('{"result": 42}\n');
    console.log(`openBackup: one file from a ${backup.size}-byte backup in ${stats.ranges} ranged requests, ${stats.bytes} bytes`);
    expect(stats.ranges).toBeLessThanOrEqual(12);
    expect(stats.bytes).toBeLessThan(200_000);
    // A large file is read ahead: far fewer requests than its 80 blocks; what is read past its end is one piece at most (4 MiB).
    const before = { ...stats };
    expect(Buffer.compare(Buffer.from(await image.readFile('/blob-3.bin')), Buffer.from(pseudoRandomBytes(10 << 20, 103)))).toBe(0);
    const ranges = stats.ranges - before.ranges;
    console.log(`openBackup: a 10 MiB file in ${ranges} ranged requests, ${stats.bytes - before.bytes} bytes`);
    expect(ranges).toBeLessThanOrEqual(16);
    expect(stats.bytes - before.bytes).toBeLessThanOrEqual((10 << 20) + (4 << 20) + 65536);
  });

  it('backs up a memfs tree (the fs option) with gzip, and excludes by pattern', async () => {
    const vol = Volume.fromJSON({ '/data/keep.txt': 'keep\n', '/data/skip.log': 'skip\n', '/data/node_modules/x/index.js': 'x\n', '/data/sub/also.txt': 'also\n' });
    const store = localStore(path.join(work, 'store-memfs'));
    const backup = await createBackup({
      dir: '/data', fs: vol.promises as never, store, compression: { algorithm: 'gzip', level: 6 }, excludes: ['*.log', 'node_modules'],
    });
    const image = await openBackup(backup, { store });
    const names: string[] = [];
    for await (const entry of image.walk()) names.push(entry.path);
    expect(names.sort()).toEqual(['', 'keep.txt', 'sub', 'sub/also.txt']);
  });

  it('gitignore: every .gitignore applies to its directory (deeper rules win, negations too), and .git is left out', async () => {
    const dir = path.join(work, 'repo');
    const layout: Record<string, string> = {
      '.git/HEAD': 'ref\n',
      '.gitignore': '# comment\nbuild/\n*.tmp\n!keep.tmp\n',
      'build/out.o': 'o',
      'a.tmp': 't',
      'keep.tmp': 'k',
      'src.c': 'c',
      'lib/.gitignore': 'vendor/\n!b.tmp\n/only-here.txt\n',
      'lib/vendor/v.c': 'v',
      'lib/a.tmp': 'a',
      'lib/b.tmp': 'b',
      'lib/only-here.txt': 'x',
      'only-here.txt': 'kept: the rule is anchored to lib/',
    };
    for (const [name, content] of Object.entries(layout)) {
      await fsp.mkdir(path.dirname(path.join(dir, name)), { recursive: true });
      await fsp.writeFile(path.join(dir, name), content);
    }
    const store = localStore(path.join(work, 'store-git'));
    const image = await openBackup(await createBackup({ dir, store, gitignore: true }), { store });
    const names: string[] = [];
    for await (const entry of image.walk()) if (entry.path) names.push(entry.path);
    expect(names.sort()).toEqual(['.gitignore', 'keep.tmp', 'lib', 'lib/.gitignore', 'lib/b.tmp', 'only-here.txt', 'src.c']);
    // git itself agrees, where it is installed.
    const git = await import('node:child_process').then(({ execFileSync }) => {
      try {
        execFileSync('git', ['init', '-q', dir]);
        return execFileSync('git', ['-C', dir, 'ls-files', '--others', '--exclude-standard'], { encoding: 'utf8' });
      } catch {
        return undefined;
      }
    });
    if (git !== undefined) expect(git.trim().split('\n').sort()).toEqual(names.filter((n) => n !== 'lib').sort());
  });

  it("symlinks pointing outside dir are reported, or refused with symlinks: 'reject-outside'", async () => {
    const dir = path.join(work, 'links');
    await fsp.mkdir(path.join(dir, 'sub'), { recursive: true });
    await fsp.symlink('../sub', path.join(dir, 'sub/up-and-back'));
    await fsp.symlink('../../elsewhere', path.join(dir, 'sub/outside'));
    await fsp.symlink('/etc/passwd', path.join(dir, 'absolute'));
    const store = localStore(path.join(work, 'store-links'));
    const backup = await createBackup({ dir, store });
    expect(backup.warnings.sort()).toEqual([`symlink absolute -> /etc/passwd points outside ${dir}`, `symlink sub/outside -> ../../elsewhere points outside ${dir}`]);
    await expect(createBackup({ dir, store, symlinks: 'reject-outside' })).rejects.toMatchObject({ code: 'BACKUP_CREATE_ERROR' });
  });
});

describe('the fs-shaped restore (any runtime) holds no copy of the image', () => {
  it('reads by range within its window, writes each file a block at a time, and restores exactly', async () => {
    const dir = path.join(work, 'web-restore');
    await fsp.mkdir(path.join(dir, 'sub'), { recursive: true });
    const big = pseudoRandomBytes(20 << 20, 41);
    await fsp.writeFile(path.join(dir, 'big.bin'), big);
    for (let i = 0; i < 40; i++) await fsp.writeFile(path.join(dir, 'sub', `small-${i}.txt`), `file ${i}\n`.repeat(i * 50));
    const store = localStore(path.join(work, 'store-web'));
    const backup = await createBackup({ dir, store, compression: 'gzip' });
    let inFlight = 0;
    let most = 0;
    let fetched = 0;
    const watched: ObjectStore = {
      ...store,
      location: store.location,
      getRange: async (key, offset, length, signal) => {
        fetched += length;
        inFlight += length;
        most = Math.max(most, inFlight);
        try {
          return await store.getRange(key, offset, length, signal);
        } finally {
          inFlight -= length;
        }
      },
    };
    const vol = new Volume();
    let largestWrite = 0;
    const promises = vol.promises as unknown as FsWriteLike;
    const target: FsWriteLike = {
      ...promises,
      writeFile: async (p, data) => {
        largestWrite = Math.max(largestWrite, data.length);
        return promises.writeFile(p, data);
      },
      appendFile: async (p, data) => {
        largestWrite = Math.max(largestWrite, data.length);
        return promises.appendFile!(p, data);
      },
    };
    const MiB = 1 << 20;
    const result = await webRestoreBackup(backup, { store: watched, fs: target, dir: '/restored', download: { concurrency: 2, rangeSize: MiB } });
    expect(result).toMatchObject({ files: 41, bytes: big.length + [...Array(40).keys()].reduce((n, i) => n + `file ${i}\n`.length * i * 50, 0) });
    expect(Buffer.compare(vol.readFileSync('/restored/big.bin') as Buffer, Buffer.from(big))).toBe(0);
    expect(vol.readFileSync('/restored/sub/small-7.txt', 'utf8')).toBe('file 7\n'.repeat(350));
    // The data region came in 1 MiB ranges, two at a time (plus the tables, fetched first); nothing was fetched twice over.
    const tables = backup.size - Number(new DataView((await store.getRange(backup.key, 64, 8)).buffer).getBigUint64(0, true));
    expect(most).toBeLessThanOrEqual(2 * MiB + tables);
    expect(fetched).toBeLessThan(backup.size * 1.05 + 96);
    expect(largestWrite).toBeLessThanOrEqual(backup.blockSize);
  });

  it('a tampered image is BACKUP_INTEGRITY_ERROR and nothing is written to the target', async () => {
    const dir = path.join(work, 'web-tamper');
    await fsp.mkdir(dir, { recursive: true });
    await fsp.writeFile(path.join(dir, 'data.bin'), pseudoRandomBytes(3 << 20, 42));
    const storeDir = path.join(work, 'store-web-tamper');
    const store = localStore(storeDir);
    const backup = await createBackup({ dir, store, compression: 'gzip' });
    const file = path.join(storeDir, backup.key);
    const bytes = await fsp.readFile(file);
    bytes[1 << 20] ^= 0x01;
    await fsp.writeFile(file, bytes);
    const vol = new Volume();
    vol.mkdirSync('/restored/keep', { recursive: true });
    vol.writeFileSync('/restored/keep/precious.txt', 'keep me');
    const error = await webRestoreBackup(backup, { store, fs: vol.promises as unknown as FsWriteLike, dir: '/restored' }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'BACKUP_INTEGRITY_ERROR' });
    expect(vol.readdirSync('/')).toEqual(['restored']);
    expect(vol.readFileSync('/restored/keep/precious.txt', 'utf8')).toBe('keep me');
  });
});

describe('sqfs backup / restore / backups / ls and cat by id', () => {
  it('backs up to a file:// store, lists, reads by id, restores, deletes', async () => {
    const { main } = await import('../src/cli/main.js');
    const run = async (...argv: string[]) => {
      let out = '';
      let err = '';
      const bytes: Uint8Array[] = [];
      const code = await main(argv, {
        stdout: (t) => void (out += t), stderr: (t) => void (err += t), stdoutBytes: async (b) => void bytes.push(b.slice()), progress: undefined,
      });
      return { code, out, err, bytes: Buffer.concat(bytes).toString() };
    };
    const storeUrl = `file://${path.join(work, 'cli-store')}`;
    const made = await run('backup', tree, '--store', storeUrl, '--name', 'from the cli', '--ttl', '600', '--comp', 'gzip', '--exclude', '*.bin');
    expect(made.code, made.err).toBe(0);
    const handle = JSON.parse(made.out);
    expect(handle).toMatchObject({ name: 'from the cli', compression: 'gzip' });
    const listed = await run('backups', 'list', '--store', storeUrl);
    expect(listed.out).toContain(handle.id);
    const ls = await run('ls', handle.id, '/', '--store', storeUrl);
    expect(ls.code, ls.err).toBe(0);
    const handleFile = path.join(work, 'handle.json');
    await fsp.writeFile(handleFile, made.out);
    const out = path.join(work, 'cli-restored');
    const restored = await run('restore', handleFile, out, '--store', storeUrl);
    expect(restored.code, restored.err).toBe(0);
    const names = await fsp.readdir(out);
    expect(names.length).toBeGreaterThan(3);
    expect(names.filter((n) => n.endsWith('.bin'))).toEqual([]);
    const file = names.find((n) => n.endsWith('.txt'));
    if (file) expect((await run('cat', handle.id, `/${file}`, '--store', storeUrl)).bytes).toBe(await fsp.readFile(path.join(out, file), 'utf8'));
    expect((await run('backups', 'delete', handle.id, '--store', storeUrl)).code).toBe(0);
    expect((await run('restore', handle.id, out, '--store', storeUrl)).code).toBe(1);
    expect((await run('backup', 'relative/dir', '--ttl', '-1')).code).toBe(2);
    expect((await run('backups', 'list', '--request-timeout', '0')).code).toBe(2);
  });

  it('a store that fails prints one line with the operation, the key, the status and a code, no stack trace', async () => {
    const { main } = await import('../src/cli/main.js');
    const remote = s3store();
    const backup = await createBackup({ dir: tree, store: remote });
    const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY, debug: process.env.SQFS_DEBUG };
    process.env.AWS_ACCESS_KEY_ID = ACCESS_KEY;
    process.env.AWS_SECRET_ACCESS_KEY = SECRET_KEY;
    delete process.env.SQFS_DEBUG;
    try {
      const run = async (...argv: string[]) => {
        let err = '';
        const code = await main([...argv, '--store', 's3://backups/backups', '--endpoint', s3.endpoint, '--request-timeout', '5'], {
          stdout: () => undefined, stderr: (t) => void (err += t), progress: undefined,
        });
        return { code, err };
      };
      s3.faults = (r) => (r.op === 'head' ? { status: 403 } : undefined);
      const restored = await run('restore', backup.id, path.join(work, 'cli-failing'));
      expect(restored.code).toBe(1);
      expect(restored.err).toMatch(new RegExp(`^sqfs restore: .*head ${backup.id}\\.sqfs: HTTP 403.* \\[BACKUP_RESTORE_ERROR\\]\\n$`));
      s3.faults = (r) => (r.op === 'list' ? { status: 403 } : undefined);
      const listed = await run('backups', 'list');
      expect(listed.code).toBe(1);
      expect(listed.err).toMatch(/^sqfs backups: list : HTTP 403 AccessDenied.* \[STORE_ERROR\]\n$/);
      expect(listed.err).not.toMatch(/\n\s+at /);
    } finally {
      process.env.AWS_ACCESS_KEY_ID = saved.id;
      process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
      if (saved.debug !== undefined) process.env.SQFS_DEBUG = saved.debug;
      if (saved.id === undefined) delete process.env.AWS_ACCESS_KEY_ID;
      if (saved.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
    }
  });
});
