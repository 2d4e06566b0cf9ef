/**
 * `sqfs serve` (issue 16) driven as a person drives it: a real headless
 * Chromium (Debian's chromium, through playwright-core) clicks through the
 * pages, against a local store (the server started in-process) and against
 * the S3-compatible test server (the real CLI, `sqfs serve --store s3://`,
 * started as a user starts it). In each: the backups are listed, one is
 * opened and browsed three levels deep, a text file is viewed, a binary
 * file is downloaded and checked byte for byte, a directory is downloaded
 * as .tar and extracted with GNU tar and compared with the source
 * (compareTrees: modes, mtimes, owners, contents, links, xattrs), and a
 * backup is deleted after confirming. Against the local store also: the
 * filter, a chain shown grouped, a restore with its progress live, and a
 * prune. Every page is saved as a screenshot in test/artifacts/.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DirectoryBackup } from '../src/backup/handle.js';
import { listBackups } from '../src/backup/manage.js';
import { createBackup } from '../src/node/backup.js';
import { localStore } from '../src/node/local-store.js';
import { serveBackups, type BackupServer } from '../src/serve/server.js';
import { s3Store } from '../src/uploader/s3-store.js';
import type { ObjectStore } from '../src/uploader/store.js';
import { bundleForNode } from './helpers/child.js';
import { compareTrees, runOk } from './helpers/oracles.js';
import { ACCESS_KEY, SECRET_KEY, startS3, type S3Harness } from './helpers/s3-server.js';
import { makeServeTree, OUTSIDE_MARKER, type ServeTree } from './helpers/serve-tree.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = path.join(__dirname, 'artifacts');
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) {
  // CI installs it (.ci/run); elsewhere say so rather than fail.
  if (process.env.CI) throw new Error(`${CHROMIUM} is missing: apt-get install chromium`);
  console.warn(`${CHROMIUM} is missing (apt-get install chromium): the browser tests of sqfs serve are skipped`);
}

let work: string;
let tree: ServeTree;
let browser: Browser;

beforeAll(async () => {
  if (!haveChromium) return;
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'sqfs-serve-browser-'));
  await fsp.mkdir(ARTIFACTS, { recursive: true });
  tree = await makeServeTree(work);
  browser = await chromium.launch({ executablePath: CHROMIUM });
});

afterAll(async () => {
  await browser?.close();
  if (work) await fsp.rm(work, { recursive: true, force: true });
});

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(ARTIFACTS, `serve-${name}.png`), fullPage: true });
}

/** Clicks a link that downloads, and returns the bytes the browser saved. */
async function downloadVia(page: Page, selector: string): Promise<{ bytes: Buffer; name: string }> {
  const [download] = await Promise.all([page.waitForEvent('download'), page.click(selector)]);
  const file = await download.path();
  return { bytes: await fsp.readFile(file), name: download.suggestedFilename() };
}

/** An entry's name link in a directory page. */
const entry = (name: string) => `table.ls tr[data-name="${name}"] td.name a`;

/**
 * The steps both stores go through: list, browse three levels deep, view
 * a text file, download a binary file and a directory as tar, delete a
 * backup after confirming.
 */
function browseSteps(label: string, setup: () => { url: string; project: DirectoryBackup; doomed: DirectoryBackup; store: ObjectStore; page: () => Page }): void {
  it('lists the backups', async () => {
    const { url, project, doomed, page } = setup();
    await page().goto(url);
    // The token went into a cookie and left the URL.
    expect(new URL(page().url()).search).toBe('');
    await expect.poll(() => page().locator('tbody.chain tr[data-name]').count()).toBeGreaterThanOrEqual(2);
    const row = page().locator(`tr[data-id="${project.id}"]`);
    await expect.poll(() => row.textContent()).toContain(project.name);
    expect(await row.textContent()).toContain(project.id.slice(0, 8));
    expect(await row.textContent()).toContain('zstd');
    expect(await page().locator(`tr[data-id="${doomed.id}"]`).count()).toBe(1);
    await shot(page(), `${label}-backups`);
  });

  it('opens a backup and goes three levels deep', async () => {
    const { project, page } = setup();
    await page().click(`tr[data-id="${project.id}"] td.name a`);
    await page().waitForSelector('table.ls');
    expect(await page().locator('table.ls tbody tr[data-name]').count()).toBe(8); // README.md data docs links logs odd private scripts
    const readme = await page().locator('tr[data-name="README.md"]').textContent();
    expect(readme).toMatch(/-rw-r--r--/);
    expect(readme).toContain('2020-09-13 12:26'); // mtime 1_600_000_000, UTC
    expect(await page().locator('tr[data-name="private"]').textContent()).toMatch(/drwx------/);
    await shot(page(), `${label}-root`);
    // Symlinks show their targets, and are not links to follow.
    await page().click(entry('links'));
    await page().waitForURL(/\/links\/$/);
    expect(await page().locator('tr[data-name="escape"] td.name').textContent()).toBe('escape -> ../../outside/secret.txt');
    expect(await page().locator('tr[data-name="escape"] td.name a').count()).toBe(0);
    await shot(page(), `${label}-links`);
    await page().click('a[rel=up]');
    await page().waitForSelector('tr[data-name="docs"]');
    for (const dir of ['docs', 'guide', 'chapter1']) {
      await page().click(entry(dir));
      await page().waitForURL(new RegExp(`/${dir}/$`));
    }
    expect(new URL(page().url()).pathname).toBe(`/b/${project.id}/ls/docs/guide/chapter1/`);
    expect(await page().locator('h1.crumbs').textContent()).toMatch(/docs.*guide.*chapter1/s);
    const notes = page().locator('tr[data-name="notes.txt"] td');
    expect(await notes.nth(0).textContent()).toBe('-rw-r-----');
    expect(await notes.nth(4).textContent()).toBe(String(tree.files.notes.length));
    await shot(page(), `${label}-directory`);
  });

  it('views a text file', async () => {
    const { page } = setup();
    await page().click(entry('notes.txt'));
    await page().waitForSelector('#text');
    expect(await page().locator('#text').textContent()).toBe(tree.files.notes.toString());
    expect(await page().locator('#truncated').count()).toBe(0);
    await shot(page(), `${label}-text`);
    // Markup in a file is shown as text, never run.
    await page().goBack();
    await page().click(entry('page.html'));
    await page().waitForSelector('#text');
    expect(await page().locator('#text').textContent()).toContain('<script>document.title = "pwned"</script>');
    expect(await page().title()).not.toBe('pwned');
  });

  it('shows the first MiB of a larger text file, and says so', async () => {
    const { project, page } = setup();
    await page().goto(new URL(`/b/${project.id}/view/logs/big.log`, page().url()).href);
    await page().waitForSelector('#truncated');
    expect(await page().locator('#truncated').textContent()).toContain('first 1.0 MiB of 1.2 MiB');
    expect((await page().locator('#text').textContent())!.length).toBe(1024 * 1024);
  });

  it('downloads a binary file, byte for byte', async () => {
    const { project, page } = setup();
    await page().goto(new URL(`/b/${project.id}/ls/data/`, page().url()).href);
    await page().waitForSelector('table.ls');
    const { bytes, name } = await downloadVia(page(), 'tr[data-name="blob.bin"] td.actions a');
    expect(name).toBe('blob.bin');
    expect(bytes.length).toBe(tree.files.blob.length);
    expect(bytes.equals(tree.files.blob)).toBe(true);
    await shot(page(), `${label}-data`);
  });

  it('downloads a directory as .tar that extracts to the source', async () => {
    const { project, page } = setup();
    // The whole backup, from its root page's button: every kind of entry the tree has.
    await page().goto(new URL(`/b/${project.id}/ls/`, page().url()).href);
    const { bytes, name } = await downloadVia(page(), 'a.button:has-text("download as .tar")');
    expect(name).toBe(`${project.name}.tar`);
    expect(bytes.includes(OUTSIDE_MARKER)).toBe(false);
    const out = path.join(work, `${label}-tar`);
    await fsp.mkdir(out);
    await fsp.writeFile(path.join(out, 'all.tar'), bytes);
    await runOk('tar', ['--xattrs', '--xattrs-include=*', '-xpf', 'all.tar'], { cwd: out });
    expect(await compareTrees(tree.dir, path.join(out, project.name))).toEqual([]);
    // A directory three levels down, from its row.
    await page().goto(new URL(`/b/${project.id}/ls/docs/guide/`, page().url()).href);
    const sub = await downloadVia(page(), 'tr[data-name="chapter1"] td.actions a');
    expect(sub.name).toBe('chapter1.tar');
    await fsp.writeFile(path.join(out, 'sub.tar'), sub.bytes);
    await fsp.mkdir(path.join(out, 'sub'));
    await runOk('tar', ['-xpf', '../sub.tar'], { cwd: path.join(out, 'sub') });
    expect(await compareTrees(path.join(tree.dir, 'docs/guide/chapter1'), path.join(out, 'sub/chapter1'))).toEqual([]);
  });

  it('deletes a backup after confirming', async () => {
    const { doomed, store, page } = setup();
    await page().goto(new URL('/', page().url()).href);
    await page().click(`tr[data-id="${doomed.id}"] a:has-text("delete")`);
    await page().waitForSelector('#confirm-delete');
    await shot(page(), `${label}-delete`);
    // Not confirmed: the form does not go.
    await page().click('#confirm-delete');
    expect(new URL(page().url()).pathname).toBe(`/b/${doomed.id}/delete`);
    expect((await listBackups({ store })).some((b) => b.id === doomed.id)).toBe(true);
    await page().check('input[name=confirm]');
    await page().click('#confirm-delete');
    await page().waitForSelector('#message');
    expect(await page().locator('#message').textContent()).toContain(doomed.id);
    expect(await page().locator(`tr[data-id="${doomed.id}"]`).count()).toBe(0);
    expect((await listBackups({ store })).some((b) => b.id === doomed.id)).toBe(false);
    await shot(page(), `${label}-deleted`);
  });
}

describe.runIf(haveChromium)('a local store, served in-process', () => {
  let server: BackupServer;
  let store: ObjectStore;
  let project: DirectoryBackup;
  let doomed: DirectoryBackup;
  let expired: DirectoryBackup;
  let page: Page;

  beforeAll(async () => {
    const storeDir = path.join(work, 'store');
    await fsp.mkdir(storeDir, { mode: 0o700 });
    store = localStore(storeDir);
    project = await createBackup({ dir: tree.dir, store, name: 'project' });
    // A chain: a full backup of another directory, then a delta over it.
    const notes = path.join(work, 'notes');
    await fsp.mkdir(notes);
    await fsp.writeFile(path.join(notes, 'todo.txt'), 'one\n');
    await createBackup({ dir: notes, store, name: 'notes' });
    await fsp.writeFile(path.join(notes, 'todo.txt'), 'one\ntwo\n');
    await createBackup({ dir: notes, store, name: 'notes', base: 'latest' });
    doomed = await createBackup({ dir: notes, store, name: 'scratch' });
    expired = await createBackup({ dir: notes, store, name: 'stale', ttl: 1 });
    server = await serveBackups({ store });
    page = await browser.newPage({ viewport: { width: 1280, height: 560 } });
  });

  afterAll(async () => {
    await page?.close();
    await server?.close();
  });

  browseSteps('local', () => ({ url: server.url, project, doomed, store, page: () => page }));

  it('filters by name as one types, and shows a chain grouped', async () => {
    await page.goto(new URL('/', server.url).href);
    const notesRows = page.locator('tbody.chain:has(tr[data-name="notes"]) tr');
    expect(await notesRows.count()).toBe(2);
    expect(await notesRows.nth(1).getAttribute('class')).toContain('delta');
    expect(await notesRows.nth(1).textContent()).toContain('delta 1 over');
    await page.fill('#filter', 'note');
    await expect.poll(() => page.locator('tr[data-name]:visible').count()).toBe(2);
    expect(await page.locator('#count').textContent()).toBe('2');
    await shot(page, 'local-filtered');
    await page.fill('#filter', '');
    await page.selectOption('#sort', 'name');
    await page.waitForURL(/sort=name/);
    const names = await page.locator('tr.full[data-name]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-name')));
    expect(names).toEqual([...names].sort());
  });

  it('restores a backup into a directory, its progress shown live', async () => {
    const target = path.join(work, 'restored');
    await page.goto(new URL('/', server.url).href);
    await page.click(`tr[data-id="${project.id}"] a:has-text("restore")`);
    await page.waitForSelector('#confirm-restore');
    await page.fill('input[name=dir]', target);
    await page.check('input[name=confirm]');
    await shot(page, 'local-restore');
    await page.click('#confirm-restore');
    await page.waitForURL(/\/jobs\//);
    await page.waitForSelector('[data-state="done"]', { timeout: 30_000 });
    expect(await page.locator('#job-done').textContent()).toContain(`into ${target}`);
    expect(await page.locator('#job-download-bar').evaluate((el) => (el as HTMLProgressElement).value)).toBe(project.size);
    await shot(page, 'local-restored');
    expect(await compareTrees(tree.dir, target)).toEqual([]);
  });

  it('prunes the expired backups after confirming', async () => {
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, Date.parse(expired.expiresAt) - Date.now() + 50)));
    await page.goto(new URL('/', server.url).href);
    await page.click('a:has-text("prune expired")');
    await page.waitForSelector('#confirm-prune');
    expect(await page.locator('.confirm').textContent()).toContain(expired.id);
    await shot(page, 'local-prune');
    await page.check('input[name=confirm]');
    await page.click('#confirm-prune');
    await page.waitForSelector('#message');
    expect(await page.locator('#message').textContent()).toContain('Pruned 1 expired backup');
    expect((await listBackups({ store })).map((b) => b.id)).not.toContain(expired.id);
  });

  it('shows an error page for a backup that is not there', async () => {
    await page.goto(new URL(`/b/${doomed.id}/ls/`, server.url).href);
    expect(await page.locator('#error').textContent()).toContain('BACKUP_NOT_FOUND');
    await shot(page, 'local-error');
  });
});

describe.runIf(haveChromium)('an S3-compatible store, served by the CLI (sqfs serve --store s3://)', () => {
  let s3: S3Harness;
  let child: ChildProcess;
  let url: string;
  let store: ObjectStore;
  let project: DirectoryBackup;
  let doomed: DirectoryBackup;
  let page: Page;

  beforeAll(async () => {
    s3 = await startS3();
    store = s3Store({ endpoint: s3.endpoint, bucket: s3.bucket, prefix: 'serve', accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY });
    project = await createBackup({ dir: tree.dir, store, name: 'project' });
    doomed = await createBackup({ dir: path.join(tree.dir, 'docs'), store, name: 'docs only' });
    const cli = await bundleForNode(path.join(__dirname, '../src/cli/bin.ts'), path.join(work, 'cli.mjs'));
    child = spawn(process.execPath, [cli, 'serve', '--store', `s3://${s3.bucket}/serve`, '--endpoint', s3.endpoint], {
      env: { ...process.env, AWS_ACCESS_KEY_ID: ACCESS_KEY, AWS_SECRET_ACCESS_KEY: SECRET_KEY, SQFS_STORE: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    url = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        if (out.includes('\n')) resolve(out.trim());
      });
      child.once('exit', (code) => reject(new Error(`sqfs serve exited ${code}: ${err}`)));
    });
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]{32}$/);
    page = await browser.newPage({ viewport: { width: 1280, height: 560 } });
    s3.reset();
  });

  afterAll(async () => {
    await page?.close();
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    await s3?.close();
  });

  browseSteps('s3', () => ({ url, project, doomed, store, page: () => page }));

  it('read the images by range, never whole', () => {
    const reads = s3.requests.filter((r) => r.op === 'get' && r.key.endsWith('.sqfs'));
    expect(reads.length).toBeGreaterThan(0);
    expect(reads.filter((r) => !r.range)).toEqual([]);
  });

  it('stops on SIGTERM', async () => {
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
