/**
 * Private files stay private in the local store (issue #19): whatever the
 * umask, the store's directories are 0700 and its files 0600, so another
 * user can read neither an image nor the private files inside it; an
 * existing store others can read is warned about; `sqfs pack` keeps
 * mksquashfs's 0644 unless asked for --private; a running restore is staged
 * out of others' reach. Runs under umask 022; where the tests run as root,
 * a child switched to another uid tries to read.
 */
import { spawnSync } from 'node:child_process';
import { lstatSync, promises as fsp, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StreamUpload } from '../src/index.js';
import { createBackup, localStore, packDirectory, restoreBackup } from '../src/node/index.js';

const isRoot = process.getuid?.() === 0;
/** The uid and gid a child switches to when the tests run as root ("nobody"). */
const OTHER = 65534;

let work: string;
let tree: string;
let savedUmask: number;
beforeAll(async () => {
  savedUmask = process.umask(0o022);
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'sqfs-private-'));
  // Open to everyone on the way in, so that only the store's own modes keep another user out.
  await fsp.chmod(work, 0o755);
  tree = path.join(work, 'workspace');
  await fsp.mkdir(path.join(tree, '.ssh'), { recursive: true });
  await fsp.writeFile(path.join(tree, '.env'), 'API_KEY=secret\n', { mode: 0o600 });
  await fsp.writeFile(path.join(tree, '.ssh', 'id_ed25519'), '-----BEGIN OPENSSH PRIVATE KEY-----\n', { mode: 0o600 });
  await fsp.writeFile(path.join(tree, 'README.md'), '# public\n', { mode: 0o644 });
});
afterAll(async () => {
  process.umask(savedUmask);
  await fsp.rm(work, { recursive: true, force: true });
});

const modeOf = async (p: string) => (await fsp.lstat(p)).mode & 0o777;

/** Runs `cat` (or `ls`) as another user; its exit status and stderr. */
function asOther(argv: string[]): { status: number | null; stderr: string } {
  const script = `process.setgid(${OTHER}); process.setuid(${OTHER});
    const r = require('node:child_process').spawnSync(process.argv[1], process.argv.slice(2), { encoding: 'utf8' });
    process.stderr.write(r.stderr || ''); process.exit(r.status ?? 1);`;
  const r = spawnSync(process.execPath, ['-e', script, ...argv], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

describe('the local store is owner-only', () => {
  it('makes its directories 0700 (the parents it creates too) and every file 0600, under umask 022', async () => {
    const root = path.join(work, 'data', 'squashfs-ts', 'backups');
    const store = localStore(root);
    const backup = await createBackup({ dir: tree, store });
    expect(backup.warnings).toEqual([]);
    for (const dir of [path.join(work, 'data'), path.join(work, 'data', 'squashfs-ts'), root, path.join(root, '.uploads')]) {
      expect((await modeOf(dir)).toString(8), dir).toBe('700');
    }
    for (const file of [backup.key, `${backup.id}.json`]) expect((await modeOf(path.join(root, file))).toString(8), file).toBe('600');

    // A multipart upload's partial file, while it is being written.
    const up = new StreamUpload({ store, key: 'big.sqfs', partSize: 5 << 20, expectedSize: 20 << 20 });
    await up.write(new Uint8Array(11 << 20));
    await new Promise((r) => setTimeout(r, 50));
    const partials = await fsp.readdir(path.join(root, '.uploads'));
    expect(partials.length).toBeGreaterThan(0);
    for (const name of partials) expect((await modeOf(path.join(root, '.uploads', name))).toString(8), name).toBe('600');
    up.patchHead(new Uint8Array(96));
    await up.complete();
    expect((await modeOf(path.join(root, 'big.sqfs'))).toString(8)).toBe('600');
  });

  it('another user can read neither the store nor an image in it, even when the store directory was left open', async () => {
    const root = path.join(work, 'store-others');
    const backup = await createBackup({ dir: tree, store: localStore(root) });
    const image = path.join(root, backup.key);
    expect(await modeOf(image)).toBe(0o600);
    expect(await modeOf(root)).toBe(0o700);
    if (!isRoot) return; // the modes above are what keeps other users out; no other uid to try with here
    const listing = asOther(['ls', root]);
    expect(listing.status).not.toBe(0);
    expect(listing.stderr).toMatch(/Permission denied/);
    await fsp.chmod(root, 0o755); // as an older store may be
    const reading = asOther(['cat', image]);
    expect(reading.status).not.toBe(0);
    expect(reading.stderr).toMatch(/Permission denied/);
    const unsquashing = asOther(['unsquashfs', '-l', image]);
    expect(unsquashing.status).not.toBe(0);
  });

  it('an existing store that others can read gets one warning (API: warnings; CLI: stderr), and keeps working', async () => {
    const root = path.join(work, 'store-open');
    await fsp.mkdir(root, { mode: 0o755 });
    await fsp.chmod(root, 0o755);
    const backup = await createBackup({ dir: tree, store: localStore(root) });
    expect(backup.warnings).toHaveLength(1);
    expect(backup.warnings[0]).toMatch(/can be read by other users \(mode 0755\).*chmod 700/);
    expect(await localStore(root).head(backup.key)).toMatchObject({ size: backup.size });

    const { main } = await import('../src/cli/main.js');
    let err = '';
    let out = '';
    const code = await main(['backups', 'list', '--store', `file://${root}`], { stdout: (t) => void (out += t), stderr: (t) => void (err += t), progress: undefined });
    expect(code).toBe(0);
    expect(out).toContain(backup.id);
    expect(err.trim().split('\n')).toHaveLength(1);
    expect(err).toMatch(/^sqfs backups: warning: the local store .* can be read by other users/);
  });
});

describe('sqfs pack, and a running restore', () => {
  it('pack makes the image 0644 under the umask, as mksquashfs does; --private makes it 0600', async () => {
    const plain = path.join(work, 'plain.sqfs');
    await packDirectory(tree, plain, { processors: 0 });
    expect(await modeOf(plain)).toBe(0o644);
    const { main } = await import('../src/cli/main.js');
    const owned = path.join(work, 'private.sqfs');
    expect(await main(['pack', tree, owned, '--private', '--processors', '0'], { stdout: () => undefined, stderr: () => undefined, progress: undefined })).toBe(0);
    expect(await modeOf(owned)).toBe(0o600);
  });

  it("a restore is staged in a directory (and a temporary image) that others cannot read, and the result keeps the tree's modes", async () => {
    const store = localStore(path.join(work, 'store-restore'));
    const backup = await createBackup({ dir: tree, store });
    const target = path.join(work, 'restored');
    const modes = new Map<string, number>();
    await restoreBackup(backup, {
      store,
      dir: target,
      onProgress: () => {
        for (const name of readdirSync(work)) {
          if (name.startsWith('.restored.')) modes.set(name, lstatSync(path.join(work, name)).mode & 0o777);
        }
      },
    });
    const seen = [...modes].map(([name, mode]) => ({ name, mode }));
    // The extraction's staging directory and the downloaded image beside it.
    expect(seen.some((s) => s.name.includes('.unpack-'))).toBe(true);
    expect(seen.some((s) => s.name.endsWith('.sqfs'))).toBe(true);
    for (const { name, mode } of seen) expect(mode & 0o077, `${name} is ${mode.toString(8)}`).toBe(0);
    expect(await modeOf(path.join(target, '.env'))).toBe(0o600);
    expect(await modeOf(path.join(target, 'README.md'))).toBe(0o644);
  });
});
