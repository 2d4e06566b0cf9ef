/**
 * `sqfs serve` (issue 16) over plain HTTP, as an attacker or a script
 * would talk to it (requests sent with their paths exactly as written,
 * never normalised by a URL parser):
 * - the token: every request without it is 401; it is taken from the URL
 *   once, into an HttpOnly SameSite=Strict cookie;
 * - mutations are POST only, refused without the server's own Origin, and
 *   need their confirmation;
 * - traversal ("../", "%2e%2e", "%2f", a symlink pointing out of the
 *   image, a path through one) is 400 or 404, and no byte from outside the
 *   image is ever in an answer;
 * - the security headers on every answer; files as attachments, never as
 *   HTML; names and contents escaped;
 * - a directory of 10,000 entries pages quickly;
 * - hostile images from the reader's test set (loops, bad listings, a
 *   truncated and a garbage image) give error pages, and the server
 *   stays up;
 * - the tar stream, checked by GNU tar on long names, hard links, devices;
 * - the CLI's usage errors.
 */
import { promises as fsp } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DirectoryBackup } from '../src/backup/handle.js';
import { listBackups } from '../src/backup/manage.js';
import { main } from '../src/cli/main.js';
import { createBackup } from '../src/node/backup.js';
import { localStore } from '../src/node/local-store.js';
import { PAGE_SIZE, serveBackups, type BackupServer } from '../src/serve/server.js';
import type { ObjectStore } from '../src/uploader/store.js';
import { buildEvilImage, bytesOf, type EvilSpec } from './helpers/fuzz.js';
import { compareTrees, isRoot, runOk } from './helpers/oracles.js';
import { LATIN1_NAME, makeServeTree, MARKUP_NAME, OUTSIDE_MARKER, type ServeTree } from './helpers/serve-tree.js';

let work: string;
let tree: ServeTree;
let store: ObjectStore;
let project: DirectoryBackup;
let server: BackupServer;

beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'sqfs-serve-http-'));
  tree = await makeServeTree(work);
  await fsp.mkdir(path.join(work, 'store'), { mode: 0o700 });
  store = localStore(path.join(work, 'store'));
  project = await createBackup({ dir: tree.dir, store, name: 'project' });
  server = await serveBackups({ store });
});

afterAll(async () => {
  await server?.close();
  if (work) await fsp.rm(work, { recursive: true, force: true });
});

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** The connection was cut before the body was complete. */
  cut: boolean;
}

/** One request with its path sent exactly as given. */
function request(
  target: BackupServer,
  rawPath: string,
  options: { method?: string; headers?: Record<string, string>; body?: string; auth?: boolean; timeoutMs?: number } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...(options.auth === false ? {} : { authorization: `Bearer ${target.token}` }), ...options.headers };
  if (options.body !== undefined) headers['content-type'] ??= 'application/x-www-form-urlencoded';
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: target.port, path: rawPath, method: options.method ?? 'GET', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', () => undefined);
      res.on('close', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks), cut: !res.complete }));
    });
    req.setTimeout(options.timeoutMs ?? 20_000, () => req.destroy(new Error(`${rawPath}: no answer in time`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

const get = (rawPath: string, options: Parameters<typeof request>[2] = {}) => request(server, rawPath, options);
const post = (rawPath: string, body: string, headers: Record<string, string> = { origin: server.origin }) => request(server, rawPath, { method: 'POST', body, headers });
const stillThere = async (id: string) => (await listBackups({ store })).some((b) => b.id === id);

function expectNoOutsideBytes(answer: Answer): void {
  expect(answer.body.includes(OUTSIDE_MARKER)).toBe(false);
  expect(answer.body.includes('root:x:0:0')).toBe(false);
}

describe('the token', () => {
  it('every request without it gets 401, and nothing of the backup', async () => {
    const id = project.id;
    for (const p of ['/', '/static/app.css', '/static/app.js', `/b/${id}/ls/`, `/b/${id}/view/README.md`, `/b/${id}/raw/README.md`, `/b/${id}/tar/`, '/prune', '/nowhere']) {
      const answer = await get(p, { auth: false });
      expect(answer.status, p).toBe(401);
      expect(answer.headers['www-authenticate']).toContain('Bearer');
      expect(answer.body.includes('Backed up to be browsed')).toBe(false);
      expect(answer.body.includes(path.join(work, 'store'))).toBe(false);
    }
    expect((await post(`/b/${id}/delete`, 'confirm=yes', { origin: server.origin, authorization: '' })).status).toBe(401);
    expect(await stillThere(id)).toBe(true);
  });

  it('a wrong token is 401, in the cookie, a header or the URL', async () => {
    const wrong = 'x'.repeat(server.token.length);
    expect((await get('/', { auth: false, headers: { cookie: `sqfs_token_${server.port}=${wrong}` } })).status).toBe(401);
    expect((await get('/', { auth: false, headers: { authorization: `Bearer ${wrong}` } })).status).toBe(401);
    expect((await get('/', { auth: false, headers: { 'x-sqfs-token': wrong } })).status).toBe(401);
    expect((await get(`/?token=${wrong}`, { auth: false })).status).toBe(401);
    expect((await get('/?token=', { auth: false })).status).toBe(401);
    // Another port's cookie is another server's.
    expect((await get('/', { auth: false, headers: { cookie: `sqfs_token_1=${server.token}` } })).status).toBe(401);
  });

  it('the URL printed sets an HttpOnly, SameSite=Strict cookie and leaves the address bar', async () => {
    const answer = await get(new URL(server.url).pathname + new URL(server.url).search, { auth: false });
    expect(answer.status).toBe(303);
    expect(answer.headers.location).toBe('/');
    const cookie = answer.headers['set-cookie']![0]!;
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    const pair = cookie.split(';')[0]!;
    expect((await get('/', { auth: false, headers: { cookie: `other=1; ${pair}` } })).status).toBe(200);
    expect((await get('/', { auth: false, headers: { 'x-sqfs-token': server.token } })).status).toBe(200);
    // The token leaves a deeper URL too, the rest of the query kept.
    const deep = await get(`/?q=pro&token=${server.token}`, { auth: false });
    expect(deep.headers.location).toBe('/?q=pro');
    // Never away to another host.
    expect((await get(`//evil.example/?token=${server.token}`, { auth: false })).headers.location).toBe('/');
    expect((await get(`/\\evil.example/?token=${server.token}`, { auth: false })).headers.location).toBe('/');
  });

  it('answers only to its own Host (no DNS rebinding)', async () => {
    expect((await get('/', { headers: { host: `evil.example:${server.port}` } })).status).toBe(421);
    expect((await get('/', { headers: { host: `localhost:${server.port}` } })).status).toBe(200);
  });
});

describe('mutations', () => {
  let target: DirectoryBackup;
  beforeAll(async () => {
    target = await createBackup({ dir: path.join(tree.dir, 'docs'), store, name: 'target' });
  });

  it('a POST from another Origin, or none, is refused, and nothing changes', async () => {
    for (const origin of ['http://evil.example', 'null', `http://127.0.0.1:${server.port + 1}`, `https://127.0.0.1:${server.port}`]) {
      const answer = await post(`/b/${target.id}/delete`, 'confirm=yes', { origin });
      expect(answer.status, origin).toBe(403);
    }
    expect((await post(`/b/${target.id}/delete`, 'confirm=yes', {})).status).toBe(403);
    expect((await post('/prune', 'confirm=yes', { origin: 'http://evil.example' })).status).toBe(403);
    const restoreTo = path.join(work, 'not-restored');
    expect((await post(`/b/${target.id}/restore`, `dir=${encodeURIComponent(restoreTo)}&confirm=yes`, { origin: 'http://evil.example' })).status).toBe(403);
    await expect(fsp.stat(restoreTo)).rejects.toThrow();
    expect(await stillThere(target.id)).toBe(true);
  });

  it('asks first: a GET shows the confirmation, a POST without it is refused', async () => {
    const page = await get(`/b/${target.id}/delete`);
    expect(page.status).toBe(200);
    expect(page.body.toString()).toContain('name="confirm"');
    expect((await post(`/b/${target.id}/delete`, '')).status).toBe(400);
    expect((await post(`/b/${target.id}/restore`, `dir=relative/dir&confirm=yes`)).status).toBe(400);
    expect(await stillThere(target.id)).toBe(true);
  });

  it('only POST changes anything; other methods are refused', async () => {
    expect((await request(server, `/b/${target.id}/delete`, { method: 'DELETE' })).status).toBe(405);
    expect((await request(server, `/b/${target.id}/raw/README.md`, { method: 'PUT', body: 'x' })).status).toBe(405);
    expect((await post(`/b/${target.id}/ls/`, 'confirm=yes')).status).toBe(405);
    expect(await stillThere(target.id)).toBe(true);
  });

  it('a confirmed delete from its own page deletes (and refuses a base with deltas unless they go too)', async () => {
    const notes = path.join(work, 'chain');
    await fsp.mkdir(notes);
    await fsp.writeFile(path.join(notes, 'a'), 'a\n');
    const base = await createBackup({ dir: notes, store, name: 'base' });
    await fsp.writeFile(path.join(notes, 'a'), 'b\n');
    const delta = await createBackup({ dir: notes, store, name: 'delta', base: 'latest' });
    const asks = (await get(`/b/${base.id}/delete`)).body.toString();
    expect(asks).toContain(delta.id);
    expect((await post(`/b/${base.id}/delete`, 'confirm=yes')).status).toBe(409);
    expect(await stillThere(base.id)).toBe(true);
    const done = await post(`/b/${base.id}/delete`, 'confirm=yes&dependants=yes');
    expect(done.status).toBe(303);
    expect(await stillThere(base.id)).toBe(false);
    expect(await stillThere(delta.id)).toBe(false);
    const list = (await get(done.headers.location!)).body.toString();
    expect(list).toContain(delta.id);
    expect(list).toContain('id="message"');
  });
});

describe('the answers', () => {
  it('every answer carries a Content-Security-Policy and nosniff', async () => {
    const id = project.id;
    for (const [p, auth] of [['/', true], ['/static/app.js', true], [`/b/${id}/ls/`, true], [`/b/${id}/raw/README.md`, true], [`/b/${id}/tar/docs`, true], ['/nowhere', true], ['/', false]] as const) {
      const answer = await get(p, { auth });
      expect(answer.headers['content-security-policy'], p).toMatch(/default-src 'none'/);
      expect(answer.headers['content-security-policy'], p).toMatch(/frame-ancestors 'none'/);
      expect(answer.headers['x-content-type-options'], p).toBe('nosniff');
    }
    expect((await get('/')).headers['content-security-policy']).not.toContain('unsafe-inline');
  });

  it('serves files as attachments of application/octet-stream, never as HTML', async () => {
    const answer = await get(`/b/${project.id}/raw/docs/guide/chapter1/page.html`);
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toBe('application/octet-stream');
    expect(answer.headers['content-disposition']).toBe(`attachment; filename="page.html"; filename*=UTF-8''page.html`);
    expect(answer.headers['content-security-policy']).toContain('sandbox');
    expect(Number(answer.headers['content-length'])).toBe(answer.body.length);
    expect(answer.body.toString()).toContain('<script>');
    // Viewed, its markup is text.
    const view = (await get(`/b/${project.id}/view/docs/guide/chapter1/page.html`)).body.toString();
    expect(view).toContain('&lt;script&gt;document.title = &quot;pwned&quot;&lt;/script&gt;');
    expect(view).not.toContain('<script>document');
  });

  it('escapes names, and reaches a name that is not UTF-8 by its bytes', async () => {
    const listing = (await get(`/b/${project.id}/ls/odd/`)).body.toString();
    expect(listing).toContain('&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; &#39;q&#39;.txt');
    expect(listing).not.toContain('<img');
    expect(listing).toContain('/raw/odd/caf%E9.txt');
    const latin = await get(`/b/${project.id}/raw/odd/${[...LATIN1_NAME].map((b) => `%${b.toString(16)}`).join('')}`);
    expect(latin.status).toBe(200);
    expect(latin.body.toString()).toBe('latin-1 name\n');
    expect(latin.headers['content-disposition']).toMatch(/^attachment; filename="caf_.txt"/);
    const marked = await get(`/b/${project.id}/raw/odd/${encodeURIComponent(MARKUP_NAME)}`);
    expect(marked.body.toString()).toBe('a name with markup\n');
  });

  it('a file streams with its Content-Length (an empty one too), and a directory is not a file', async () => {
    const blob = await get(`/b/${project.id}/raw/data/blob.bin`);
    expect(Number(blob.headers['content-length'])).toBe(tree.files.blob.length);
    expect(blob.body.equals(tree.files.blob)).toBe(true);
    const empty = await get(`/b/${project.id}/raw/data/empty.bin`);
    expect(empty.status).toBe(200);
    expect(empty.headers['content-length']).toBe('0');
    expect((await get(`/b/${project.id}/raw/data`)).status).toBe(400);
    expect((await get(`/b/${project.id}/tar/README.md`)).status).toBe(400);
    expect((await get(`/b/${project.id}/raw/nothing-here`)).status).toBe(404);
    expect((await get('/b/00000000-0000-4000-8000-000000000000/ls/')).status).toBe(404);
    expect((await get('/b/not-an-id/ls/')).status).toBe(404);
  });

  it('reports a restore\'s progress as JSON, and the restore is the backup', async () => {
    const dir = path.join(work, 'restored-http');
    const started = await post(`/b/${project.id}/restore`, `dir=${encodeURIComponent(dir)}&confirm=yes`);
    expect(started.status).toBe(303);
    const job = started.headers.location!;
    expect(job).toMatch(/^\/jobs\/[0-9a-f-]{36}$/);
    let status: { state: string; downloaded: number; total: number; message: string };
    for (;;) {
      status = JSON.parse((await get(`${job}/status`)).body.toString());
      if (status.state !== 'running') break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(status.state, status.message).toBe('done');
    expect(status.downloaded).toBe(project.size);
    expect(await compareTrees(tree.dir, dir)).toEqual([]);
    expect((await get(job)).body.toString()).toContain('Restored');
  });
});

describe('traversal', () => {
  it('"..", "%2e%2e", an encoded "/" or NUL, and symlinks out: 400 or 404, and no byte from outside', async () => {
    const b = `/b/${project.id}`;
    const attempts = [
      `${b}/raw/../../outside/secret.txt`,
      `${b}/raw/docs/../../../../../../etc/passwd`,
      `${b}/raw/%2e%2e/%2e%2e/outside/secret.txt`,
      `${b}/raw/%2E%2E/%2E%2E/%2E%2E/etc/passwd`,
      `${b}/raw/.%2e/outside/secret.txt`,
      `${b}/raw/%2e%2e%2f%2e%2e%2foutside%2fsecret.txt`,
      `${b}/raw/docs%2f..%2f..%2fetc%2fpasswd`,
      `${b}/raw/README.md%00.txt`,
      `${b}/raw/%zz`,
      `${b}/view/../../outside/secret.txt`,
      `${b}/ls/../../../`,
      `${b}/tar/..`,
      `${b}/raw/./README.md`,
      `${b}/raw/links/escape`,
      `${b}/raw/links/escape-dir/secret.txt`,
      `${b}/view/links/escape-dir/secret.txt`,
      `${b}/tar/links/escape-dir`,
      `${b}/ls/links/escape-dir/secret.txt`,
      `/b/..%2f..%2fetc%2fpasswd/raw/x`,
      `/b/${project.id}/../../etc/passwd`,
      '/../../etc/passwd',
      '/static/../../../etc/passwd',
      '/static/app.js/../../../../etc/passwd',
    ];
    for (const attempt of attempts) {
      const answer = await get(attempt);
      expect([400, 404], `${attempt} -> ${answer.status}`).toContain(answer.status);
      expectNoOutsideBytes(answer);
    }
  });

  it('a symlink pointing out is shown as a link, never followed', async () => {
    const view = await get(`/b/${project.id}/view/links/escape`);
    expect(view.status).toBe(200);
    expect(view.body.toString()).toContain('../../outside/secret.txt');
    expectNoOutsideBytes(view);
    const tar = await get(`/b/${project.id}/tar/`);
    expect(tar.status).toBe(200);
    expectNoOutsideBytes(tar);
  });
});

describe('a directory of 10,000 entries', () => {
  let many: DirectoryBackup;
  beforeAll(async () => {
    const dir = path.join(work, 'many');
    await fsp.mkdir(path.join(dir, 'big'), { recursive: true });
    await Promise.all(Array.from({ length: 10_000 }, (_, i) => fsp.writeFile(path.join(dir, 'big', `f${String(i).padStart(5, '0')}`), '')));
    many = await createBackup({ dir, store, name: 'many' });
  });

  it('is shown a page at a time, each page quickly', async () => {
    const times: number[] = [];
    for (const page of [1, 2, 50]) {
      const started = performance.now();
      const answer = await get(`/b/${many.id}/ls/big/?page=${page}`);
      times.push(performance.now() - started);
      const text = answer.body.toString();
      expect(answer.status).toBe(200);
      expect(text).toContain(`entries ${(page - 1) * PAGE_SIZE + 1}–${Math.min(page * PAGE_SIZE, 10_000)} of 10000`);
      expect(text.match(/<tr data-name=/g)?.length).toBe(PAGE_SIZE);
      expect(text).toContain(`f${String((page - 1) * PAGE_SIZE).padStart(5, '0')}`);
    }
    // The first opens the image; the others reuse it.
    console.log(`10,000 entries, pages 1, 2, 50: ${times.map((t) => `${t.toFixed(0)} ms`).join(', ')}`);
    expect(Math.max(...times.slice(1))).toBeLessThan(1000);
    // Past the end: the last page.
    expect((await get(`/b/${many.id}/ls/big/?page=999`)).body.toString()).toContain('entries 9801–10000 of 10000');
  });
});

describe('hostile images from the reader\'s test set', () => {
  const hello = bytesOf('hello, world\n');
  const cases: { name: string; bytes: () => Promise<Uint8Array> | Uint8Array; paths: string[] }[] = [
    {
      name: 'a three-level loop a/b/c/back -> a',
      bytes: () => buildEvilImage({
        nodes: [
          { kind: 'dir', entries: [{ name: 'a', node: 1 }] },
          { kind: 'dir', entries: [{ name: 'b', node: 2 }] },
          { kind: 'dir', entries: [{ name: 'c', node: 3 }] },
          { kind: 'dir', entries: [{ name: 'back', node: 1 }, { name: 'f', node: 4 }] },
          { kind: 'file', content: hello },
        ],
      }).bytes,
      paths: ['ls/', 'ls/a/b/c/back/b/c/back/b/c/', 'view/a/b/c/f', 'tar/', 'tar/a'],
    },
    {
      name: 'a symlink "a" pointing out, then an entry "a/x" (a name with "/")',
      bytes: () => buildEvilImage({
        nodes: [
          { kind: 'dir', entries: [{ name: 'a', node: 1 }, { name: 'a/x', node: 2 }] },
          { kind: 'symlink', target: '../../../etc' },
          { kind: 'file', content: bytesOf('escaped!\n') },
        ],
      }).bytes,
      paths: ['ls/', 'raw/a', 'raw/a/x', 'raw/a%2fx', 'view/a', 'tar/'],
    },
    {
      name: 'unsorted and duplicate names',
      bytes: () => buildEvilImage({
        nodes: [
          { kind: 'dir', entries: [{ name: 'b', node: 1 }, { name: 'a', node: 2 }, { name: 'a', node: 1 }] },
          { kind: 'file', content: hello },
          { kind: 'file', content: bytesOf('second\n') },
        ],
      }).bytes,
      paths: ['ls/', 'raw/a', 'raw/b', 'tar/'],
    },
    {
      name: 'a file whose size is 2^40 (more than the image holds)',
      bytes: () => {
        const spec: EvilSpec = { nodes: [{ kind: 'dir', entries: [{ name: 'huge', node: 1 }] }, { kind: 'file', content: hello, override: { fileSize: 2 ** 40 } }] };
        return buildEvilImage(spec).bytes;
      },
      paths: ['ls/', 'view/huge', 'raw/huge', 'tar/'],
    },
    {
      name: 'a reference image cut in half',
      bytes: async () => {
        const whole = await fsp.readFile(path.join(__dirname, 'fixtures/images/mksquashfs-gzip.sqfs'));
        return whole.subarray(0, Math.floor(whole.length / 2));
      },
      paths: ['ls/', 'view/hello.txt', 'raw/blocks.bin', 'tar/'],
    },
    {
      name: 'noise',
      bytes: () => Uint8Array.from({ length: 65_536 }, (_, i) => (i * 2654435761) >>> 24),
      paths: ['ls/', 'tar/'],
    },
  ];

  for (const c of cases) {
    it(`${c.name}: error pages or bounded answers, and the server stays up`, async () => {
      const file = path.join(work, `hostile-${c.name.replace(/\W+/g, '-')}.sqfs`);
      await fsp.writeFile(file, await c.bytes());
      const hostile = await serveBackups({ image: file });
      try {
        for (const p of c.paths) {
          const answer = await request(hostile, `/b/image/${p}`, { timeoutMs: 10_000 });
          const what = `${p} -> ${answer.status}${answer.cut ? ' (cut)' : ''}`;
          if (answer.status >= 400) {
            expect(answer.headers['content-type'], what).toMatch(/^text\/html/);
            expect(answer.body.toString(), what).toContain('id="error"');
          } else {
            expect([200, 303], what).toContain(answer.status);
          }
          expect(answer.body.length, what).toBeLessThan(16 * 1024 * 1024);
          expect(answer.body.includes('escaped!'), what).toBe(false);
        }
        expect((await request(hostile, '/static/app.css')).status).toBe(200);
      } finally {
        await hostile.close();
      }
    });
  }

  it('a garbage image says why on its error page', async () => {
    const file = path.join(work, 'garbage.sqfs');
    await fsp.writeFile(file, new Uint8Array(4096).fill(0x41));
    const hostile = await serveBackups({ image: file });
    try {
      const answer = await request(hostile, '/b/image/ls/');
      expect(answer.status).toBe(500);
      expect(answer.body.toString()).toMatch(/id="error"[^]*CORRUPT_IMAGE/);
    } finally {
      await hostile.close();
    }
  });
});

describe('the tar stream, read by GNU tar', () => {
  it('long names and link targets (pax), hard links, a fifo, sparse and empty files', async () => {
    const dir = path.join(work, 'tarred');
    const deep = path.join(dir, 'd'.repeat(90), 'e'.repeat(90), 'f'.repeat(90));
    await fsp.mkdir(deep, { recursive: true });
    await fsp.writeFile(path.join(deep, `${'n'.repeat(200)}.txt`), 'deep\n');
    await fsp.writeFile(path.join(dir, 'short.txt'), 'short\n');
    await fsp.link(path.join(dir, 'short.txt'), path.join(dir, 'hard.txt'));
    await fsp.symlink('t'.repeat(150), path.join(dir, 'long-link'));
    await fsp.writeFile(path.join(dir, 'empty'), '');
    const sparse = await fsp.open(path.join(dir, 'sparse'), 'w');
    await sparse.write('end\n', 3 * 1024 * 1024);
    await sparse.close();
    if (isRoot()) await runOk('mkfifo', [path.join(dir, 'fifo')]);
    await fsp.chmod(path.join(dir, 'short.txt'), 0o4751);
    const backup = await createBackup({ dir, store, name: 'tarred' });
    const tar = await get(`/b/${backup.id}/tar/`);
    expect(tar.status).toBe(200);
    expect(tar.headers['content-type']).toBe('application/x-tar');
    expect(tar.body.length % 512).toBe(0);
    const out = path.join(work, 'tarred-out');
    await fsp.mkdir(out);
    await fsp.writeFile(path.join(out, 'x.tar'), tar.body);
    await runOk('tar', ['-xpf', 'x.tar'], { cwd: out });
    expect(await compareTrees(dir, path.join(out, 'tarred'))).toEqual([]);
    const listing = (await runOk('tar', ['-tvf', 'x.tar'], { cwd: out })).stdout.toString();
    expect(listing).toMatch(/^hrw.*tarred\/short\.txt link to tarred\/hard\.txt$/m);
  });
});

describe('the CLI', () => {
  async function cli(argv: string[]) {
    let err = '';
    const code = await main(argv, { stdout: () => undefined, stderr: (t) => void (err += t) });
    return { code, err };
  }

  it('says what is wrong with its arguments', async () => {
    expect((await cli(['serve', '--port', 'eighty'])).code).toBe(2);
    expect((await cli(['serve', '--port', '70000'])).code).toBe(2);
    expect((await cli(['serve', 'a.sqfs', 'b.sqfs'])).code).toBe(2);
    expect((await cli(['serve', 'a.sqfs', '--store', `file://${work}/store`])).code).toBe(2);
    const missing = await cli(['serve', path.join(work, 'no-such.sqfs')]);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain('BACKUP_NOT_FOUND');
  });

  it('serves one image file: browse only', async () => {
    const image = await serveBackups({ image: path.join(__dirname, 'fixtures/images/mksquashfs-gzip.sqfs') });
    try {
      const start = await request(image, '/');
      expect(start.status).toBe(303);
      expect(start.headers.location).toBe('/b/image/ls/');
      const listing = (await request(image, '/b/image/ls/')).body.toString();
      expect(listing).toContain('hello.txt');
      expect(listing).not.toContain('restore…');
      expect((await request(image, '/b/image/raw/hello.txt')).body.toString()).toBe('hello, world\n');
      expect((await request(image, '/prune')).status).toBe(404);
      expect((await request(image, '/b/image/delete', { method: 'POST', body: 'confirm=yes', headers: { origin: image.origin } })).status).toBe(404);
      expect((await request(image, `/b/${project.id}/ls/`)).status).toBe(404);
    } finally {
      await image.close();
    }
  });
});
