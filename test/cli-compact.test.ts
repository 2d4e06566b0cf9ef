/**
 * sqfs backups compact <id> (issue 14): a real chain (a full backup, then a
 * delta with `base`) made with createBackup in a local store, compacted by
 * the CLI as a user runs it. The printed handle is a full backup's (no
 * base), and `unsquashfs -d` of the new image in the store equals the tree
 * after the edit (compareTrees); the chain stays. Also the progress line on
 * a TTY, --name and --ttl, and failures as the CLI prints them.
 */
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseHandle, type DirectoryBackup } from '../src/backup/handle.js';
import { main, type CliIo } from '../src/cli/main.js';
import { createBackup } from '../src/node/backup.js';
import { localStore } from '../src/node/local-store.js';
import { compareTrees } from './helpers/oracles.js';

let work: string;
beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'sqfs-cli-compact-'));
});
afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

/** Runs the CLI as a user would, collecting what it prints. */
async function run(argv: string[], progress?: CliIo['progress']) {
  let out = '';
  let err = '';
  const code = await main(argv, {
    stdout: (t) => void (out += t),
    stdoutBytes: async (bytes) => void (out += Buffer.from(bytes).toString()),
    stderr: (t) => void (err += t),
    progress,
  });
  return { code, out, err };
}

/** Bytes that do not compress (a fixed LCG): several data blocks the compaction copies from the base. */
function noise(size: number, seed: number): Buffer {
  let x = seed;
  return Buffer.from(Array.from({ length: size }, () => ((x = (x * 1103515245 + 12345) >>> 0) >>> 24)));
}

/**
 * A tree, its full backup, an edit (changed, removed, added and re-moded
 * entries, a removed directory, a retargeted symlink) and a delta over the
 * full backup: the chain the CLI compacts, in a store of its own.
 */
async function makeChain(label: string) {
  const dir = path.join(work, `tree-${label}`);
  const storeDir = path.join(work, `store-${label}`);
  await fsp.mkdir(path.join(dir, 'src/lib'), { recursive: true });
  await fsp.mkdir(path.join(dir, 'old/deep'), { recursive: true });
  await fsp.mkdir(storeDir, { mode: 0o700 });
  await fsp.writeFile(path.join(dir, 'big.bin'), noise(400_000, 7));
  await fsp.writeFile(path.join(dir, 'src/main.js'), 'main();\n'.repeat(200));
  await fsp.writeFile(path.join(dir, 'src/lib/util.js'), 'export const x = 1;\n');
  await fsp.writeFile(path.join(dir, 'old/deep/gone.txt'), 'soon gone\n');
  await fsp.writeFile(path.join(dir, 'notes.txt'), 'notes\n');
  await fsp.symlink('src/main.js', path.join(dir, 'entry'));
  await fsp.link(path.join(dir, 'notes.txt'), path.join(dir, 'NOTES'));
  const store = localStore(storeDir);
  const full = await createBackup({ dir, store, name: `chain ${label}`, ttl: 7200 });

  // A new size: the delta's quick check (type, size, mtime in seconds...) sees the change within the same second.
  await fsp.writeFile(path.join(dir, 'src/lib/util.js'), 'export const x = 22;\n');
  await fsp.rm(path.join(dir, 'old'), { recursive: true });
  await fsp.rm(path.join(dir, 'src/main.js'));
  await fsp.mkdir(path.join(dir, 'new'));
  await fsp.writeFile(path.join(dir, 'new/added.bin'), noise(200_000, 11));
  await fsp.chmod(path.join(dir, 'notes.txt'), 0o600);
  await fsp.rm(path.join(dir, 'entry'));
  await fsp.symlink('new/added.bin', path.join(dir, 'entry'));
  const delta = await createBackup({ dir, store, base: full, name: `chain ${label}`, ttl: 3600 });
  expect(delta).toMatchObject({ base: full.id, chain: [full.id, delta.id] });
  return { dir, storeDir, url: `file://${storeDir}`, full, delta };
}

/** `unsquashfs -d` of a stored image, compared with the tree it should equal. */
async function expectImageEquals(storeDir: string, handle: DirectoryBackup, dir: string): Promise<void> {
  const image = path.join(storeDir, `${handle.id}.sqfs`);
  expect(handle.key).toBe(`${handle.id}.sqfs`);
  const extracted = path.join(work, `extracted-${handle.id}`);
  const r = spawnSync('unsquashfs', ['-no-progress', '-d', extracted, image], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  expect(await compareTrees(dir, extracted)).toEqual([]);
  await fsp.rm(extracted, { recursive: true, force: true });
}

describe('sqfs backups compact', () => {
  it("writes one full backup of a delta's chain and prints its handle; the image equals the tree and the chain stays", async () => {
    const { dir, storeDir, url, full, delta } = await makeChain('plain');
    const compacted = await run(['backups', 'compact', delta.id, '--store', url]);
    expect(compacted.code, compacted.err).toBe(0);
    expect(compacted.err).toBe('');
    expect(compacted.out.endsWith('}\n')).toBe(true);
    const handle = parseHandle(JSON.parse(compacted.out), 'the printed handle');
    expect(handle.base).toBeUndefined();
    expect(handle.chain ?? [handle.id]).toEqual([handle.id]);
    expect(handle.id).not.toBe(delta.id);
    expect(handle).toMatchObject({ dir, name: delta.name, compression: delta.compression, level: delta.level, blockSize: delta.blockSize });
    // By default it is kept as long as the delta has left.
    expect(Math.abs(Date.parse(handle.expiresAt) - Date.parse(delta.expiresAt))).toBeLessThan(5_000);
    await expectImageEquals(storeDir, handle, dir);
    // The chain is left as it was: both layers still listed, next to the new full backup.
    const listed = await run(['backups', 'list', '--json', '--store', url]);
    expect(listed.code, listed.err).toBe(0);
    const all = JSON.parse(listed.out) as DirectoryBackup[];
    expect(all.map((b) => b.id).sort()).toEqual([full.id, delta.id, handle.id].sort());
    expect(all.find((b) => b.id === handle.id)).toMatchObject({ chain: [handle.id] });
    // And the stored handle is the printed one.
    expect(JSON.parse(await fsp.readFile(path.join(storeDir, `${handle.id}.json`), 'utf8'))).toEqual(JSON.parse(compacted.out));
  });

  it('takes --name, --ttl and --no-reuse-base, and a handle file in place of the id; shows progress on a TTY', async () => {
    const { dir, storeDir, url, delta } = await makeChain('options');
    const handleFile = path.join(work, 'delta-handle.json');
    await fsp.writeFile(handleFile, JSON.stringify(delta));
    const shown: string[] = [];
    const before = Date.now();
    const compacted = await run(['backups', 'compact', handleFile, '--name', 'compacted', '--ttl', '86400', '--no-reuse-base', '--store', url], {
      isTTY: true, write: (text: string) => void shown.push(text),
    });
    expect(compacted.code, compacted.err).toBe(0);
    const handle = parseHandle(JSON.parse(compacted.out), 'the printed handle');
    expect(handle.name).toBe('compacted');
    expect(handle.base).toBeUndefined();
    const expires = Date.parse(handle.expiresAt);
    expect(expires).toBeGreaterThanOrEqual(before + 86_400_000 - 1_000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 86_400_000 + 1_000);
    // The progress line as sqfs backup shows one, cleared at the end; never on stdout.
    expect(shown.length).toBeGreaterThanOrEqual(2);
    expect(shown[0]).toMatch(/^\r\x1b\[K(scanning: \d+ entries|compacting: .* read, .* stored)$/);
    expect(shown[shown.length - 1]).toBe('\r\x1b[K');
    expect(compacted.out).not.toContain('\x1b');
    await expectImageEquals(storeDir, handle, dir);
  });

  it('prints failures as sqfs backups: <message> [CODE]: an unknown id, a chain missing its base', async () => {
    const { storeDir, url, full, delta } = await makeChain('failures');
    const unknown = randomUUID();
    const missing = await run(['backups', 'compact', unknown, '--store', url]);
    expect(missing.code).toBe(1);
    expect(missing.out).toBe('');
    expect(missing.err).toMatch(new RegExp(`^sqfs backups: .*${unknown}.* \\[BACKUP_NOT_FOUND\\]\\n$`));

    await fsp.rm(path.join(storeDir, `${full.id}.json`));
    const broken = await run(['backups', 'compact', delta.id, '--store', url]);
    expect(broken.code).toBe(1);
    expect(broken.err).toMatch(new RegExp(`^sqfs backups: backup ${delta.id}: layer 1 of its chain of 2 \\(${full.id}\\) is missing .* \\[BACKUP_NOT_FOUND\\]\\n$`));
    // Nothing was written: the store holds what it held (besides the local store's own dot-directories).
    expect((await fsp.readdir(storeDir)).filter((name) => !name.startsWith('.')).sort()).toEqual([`${delta.id}.json`, `${delta.id}.sqfs`, `${full.id}.sqfs`].sort());
  });

  it('refuses misuse as usage errors (exit 2)', async () => {
    const url = `file://${path.join(work, 'unused-store')}`;
    const id = randomUUID();
    const misuses = [
      ['backups', 'compact'],
      ['backups', 'compact', id, id],
      ['backups', 'compact', id, '--ttl', '0'],
      ['backups', 'compact', id, '--ttl', 'soon'],
      ['backups', 'compact', 'not-an-id'],
      ['backups', 'list', '--name', 'x'],
      ['backups', 'prune', '--ttl', '60'],
      ['backups', 'list', '--no-reuse-base'],
    ];
    for (const args of misuses) {
      const result = await run([...args, '--store', url]);
      expect(result.code, `${args.join(' ')}: ${result.err}`).toBe(2);
      expect(result.err, args.join(' ')).toMatch(/^sqfs backups: /);
    }
  });

  it('is in the help text', async () => {
    const help = await run(['--help']);
    expect(help.out).toMatch(/^ {2}backups compact <id \| handle\.json> \[--name N\] \[--ttl SECONDS\]/m);
  });
});

describe('sqfs backup --incremental, and ls/cat of a delta (through its chain)', () => {
  it('--checksums then --compare content finds a same-size, same-time edit; ls and cat read the chain', async () => {
    const dir = path.join(work, 'tree-content');
    const storeDir = path.join(work, 'store-content');
    await fsp.mkdir(path.join(dir, 'src'), { recursive: true });
    await fsp.mkdir(storeDir, { mode: 0o700 });
    await fsp.writeFile(path.join(dir, 'src/config.js'), 'export const mode = "a";\n');
    await fsp.writeFile(path.join(dir, 'gone.txt'), 'gone\n');
    const url = `file://${storeDir}`;
    const first = await run(['backup', dir, '--store', url, '--checksums']);
    expect(first.code, first.err).toBe(0);
    const full = parseHandle(JSON.parse(first.out), 'printed');
    expect(full.checksums).toBe(`${full.id}.sha256`);

    const file = path.join(dir, 'src/config.js');
    const st = await fsp.stat(file);
    await fsp.writeFile(file, 'export const mode = "b";\n'); // same size
    await fsp.utimes(file, st.atime, st.mtime); // same time
    await fsp.rm(path.join(dir, 'gone.txt'));
    const second = await run(['backup', dir, '--store', url, '--incremental', '--compare', 'content']);
    expect(second.code, second.err).toBe(0);
    const delta = parseHandle(JSON.parse(second.out), 'printed');
    expect(delta).toMatchObject({ base: full.id, chain: [full.id, delta.id] });

    const cat = await run(['cat', delta.id, '/src/config.js', '--store', url]);
    expect(cat.code, cat.err).toBe(0);
    expect(cat.out).toBe('export const mode = "b";\n');
    const ls = await run(['ls', delta.id, '/', '--store', url]);
    expect(ls.code, ls.err).toBe(0);
    expect(ls.out.split('\n').filter(Boolean)).toEqual(['src']);
    expect((await run(['backup', dir, '--store', url, '--compare', 'everything'])).code).toBe(2);
  });
});
