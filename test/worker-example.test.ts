/**
 * examples/worker in real workerd (Miniflare), bundled as Wrangler bundles
 * it (helpers/wrangler-bundle.ts: its conditions and its CompiledWasm rule
 * for `.wasm` imports) from the package's BUILT output, installed as
 * node_modules/squashfs-ts: the "workerd" condition of its exports picks
 * dist/workerd.js, whose own import of ./zstd.wasm becomes a compiled
 * module, so createBackup with only dir, fs and store makes a zstd backup
 * (issue 18). Backups with gzip and zstd into R2 (Miniflare's R2 binding) and into s3rver on
 * 127.0.0.1 through presigned URLs (behind the fault proxy, which checks
 * signatures and R2's part rules), restores, single files read by range,
 * and a bucket that refuses uploads.
 *
 * And the reference product's whole flow (issue 15): the Worker issues a
 * capability token for sandboxes/<id>/; examples/worker/container.mjs, run
 * as a child node process with no AWS_* or R2_* variable in its
 * environment, backs a tree up into s3rver and restores it through the
 * Worker's POST /presign (the proxy checks every URL's signature), exactly;
 * another sandbox's keys are refused with nothing reaching s3rver; and the
 * Worker lists the sandbox's backups through its R2 binding.
 *
 * `npm test` builds dist/ first; alone, run `npm run build` before.
 */
import { execFileSync } from 'node:child_process';
import { promises as fsp, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { Miniflare, supportedCompatibilityDate } from 'miniflare';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DirectoryBackup } from '../src/index.js';
import { compareTrees, run } from './helpers/oracles.js';
import { bundleLikeWrangler, type WranglerBundle } from './helpers/wrangler-bundle.js';
import { ACCESS_KEY, SECRET_KEY, startS3, type S3Harness } from './helpers/s3-server.js';
import { makeTrickyTree, pseudoRandomBytes } from './helpers/tree.js';

const root = path.resolve(__dirname, '..');
let work: string;
let mf: Miniflare;
let s3: S3Harness;
let bundle: WranglerBundle & { bytes: number; gzipped: number };
/** The Worker's URL on 127.0.0.1 (the container reaches it over HTTP). */
let worker: string;
/** The tree the container backs up. */
let tree: string;
/** examples/worker/container.mjs, copied beside a node_modules/squashfs-ts that links to this package (as `npm install` in the example makes it). */
let container: string;
const wasm = readFileSync(path.join(root, 'dist/zstd.wasm'));

/** Bundles the example as Wrangler does, with this package installed (a link) as its squashfs-ts; memfs needs nodejs_compat. */
async function bundleExample(outDir: string) {
  const nodeModules = path.join(outDir, 'example-node_modules');
  await fsp.mkdir(nodeModules, { recursive: true });
  await fsp.symlink(root, path.join(nodeModules, 'squashfs-ts'), 'dir');
  const made = await bundleLikeWrangler(path.join(root, 'examples/worker/src/index.ts'), { outDir, nodeModules: [nodeModules], nodejsCompat: true });
  return { ...made, bytes: Buffer.byteLength(made.code), gzipped: gzipSync(made.code).length };
}

beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'sqfs-worker-example-'));
  tree = path.join(work, 'tree');
  await makeTrickyTree(tree, { blockSize: 131072 });
  await fsp.writeFile(path.join(tree, 'noise.bin'), pseudoRandomBytes(6 * 1024 * 1024, 15)); // a multipart upload
  const containerDir = path.join(work, 'container');
  await fsp.mkdir(path.join(containerDir, 'node_modules'), { recursive: true });
  await fsp.symlink(root, path.join(containerDir, 'node_modules/squashfs-ts'), 'dir');
  container = path.join(containerDir, 'container.mjs');
  await fsp.copyFile(path.join(root, 'examples/worker/container.mjs'), container);
  s3 = await startS3();
  bundle = await bundleExample(work);
  mf = new Miniflare({
    modules: [
      { type: 'ESModule', path: 'worker.mjs', contents: bundle.code },
      ...bundle.modules.map((m) => ({ type: m.type, path: m.name, contents: m.contents })),
    ],
    compatibilityDate: supportedCompatibilityDate,
    compatibilityFlags: ['nodejs_compat'],
    r2Buckets: ['BACKUPS'],
    // wrangler.toml's vars and secrets; R2_ENDPOINT points the bucket's S3 API at s3rver (through its checking proxy).
    bindings: {
      R2_ENDPOINT: s3.endpoint, BACKUP_BUCKET_NAME: s3.bucket, R2_ACCESS_KEY_ID: ACCESS_KEY, R2_SECRET_ACCESS_KEY: SECRET_KEY,
      PRESIGN_SIGNING_KEY: 'the-example-workers-own-signing-key-0123456789',
    },
    host: '127.0.0.1',
    port: 0,
    cf: false,
  });
  worker = (await mf.ready).toString().replace(/\/$/, '');
}, 60_000);

afterAll(async () => {
  await mf?.dispose();
  await s3?.close();
  if (work) await fsp.rm(work, { recursive: true, force: true });
});

async function call(route: string, init?: RequestInit) {
  const res = await mf.dispatchFetch(`http://localhost${route}`, init as never);
  return { status: res.status, text: await res.text(), headers: res.headers };
}

/** This process's environment without a single bucket credential, plus `extra`. */
function containerEnv(extra: Record<string, string>): Record<string, string> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name, value]) => value !== undefined && !/^(AWS|R2)_/.test(name))) as Record<string, string>;
  for (const name of Object.keys(env)) if (name.startsWith('SQFS_') || name === 'SANDBOX_ID') delete env[name];
  return { ...env, ...extra };
}

/** Runs the container script (asynchronously: s3rver answers from this process). */
async function runContainer(args: string[], env: Record<string, string>, timeoutMs = 120_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const result = await run(process.execPath, [container, ...args], { env, cwd: path.dirname(container), timeoutMs });
  return { code: result.code, stdout: result.stdout.toString('utf8'), stderr: result.stderr.toString('utf8') };
}

interface Grant {
  token: string;
  expiresAt: string;
  prefix: string;
  operations: string[];
  presignUrl: string;
  endpoint: string;
  bucket: string;
}

/** A token for the sandbox, as the operator asks the Worker for one. */
async function grantFor(sandbox: string): Promise<Grant> {
  const res = await fetch(`${worker}/sandboxes/${sandbox}/token`, { method: 'POST' });
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return JSON.parse(text) as Grant;
}

/** The container's environment for a grant: its settings and no credentials. */
const envFor = (sandbox: string, grant: Grant) =>
  containerEnv({
    SANDBOX_ID: sandbox, SQFS_PRESIGN_TOKEN: grant.token, SQFS_PRESIGN_URL: grant.presignUrl, SQFS_S3_ENDPOINT: grant.endpoint, SQFS_BUCKET: grant.bucket,
  });

/** CPU seconds (user + system) the workerd processes under this one have used (from /proc). */
function workerdCpuSeconds(): number {
  const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));
  let total = 0;
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // gone
    }
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (name.startsWith('workerd') && Number(fields[1]) === process.pid) total += (Number(fields[11]) + Number(fields[12])) / ticks;
  }
  return total;
}

describe('examples/worker in workerd', () => {
  it('is bundled as Wrangler bundles it, from the built Workers entry with its zstd.wasm as a compiled module (sizes reported)', () => {
    expect(bundle.code).toContain('StreamUpload');
    expect(bundle.inputs.filter((input) => input.includes('dist/'))).toContain(path.relative(process.cwd(), path.join(root, 'dist/workerd.js')));
    // One module: the package's zstd.wasm, found beside dist/workerd.js, named as Wrangler names it.
    expect(bundle.modules.map((m) => [m.type, m.file])).toEqual([['CompiledWasm', path.join(root, 'dist/zstd.wasm')]]);
    expect(bundle.modules[0]!.name).toMatch(/^[0-9a-f]{40}-zstd\.wasm$/);
    expect(bundle.code).toContain(`from "./${bundle.modules[0]!.name}"`);
    console.log(`worker bundle: ${bundle.bytes} bytes (${bundle.gzipped} gzipped), memfs included; zstd.wasm: ${wasm.length} bytes (${gzipSync(wasm).length} gzipped)`);
    expect(bundle.bytes).toBeLessThan(2 * 1024 * 1024);
  });

  it('createBackup with only dir, fs and store makes a zstd backup: no setup, no warning (issue 18)', async () => {
    // The demo tree's files (demoTree(1) in the example): the blob, readme.txt, deep/er/still/file.txt, analysis.json.
    const DEMO_BYTES = 1024 * 1024 + 20 + 5 + JSON.stringify({ result: 42, items: Array.from({ length: 200 }, (_, i) => i) }).length;
    const made = await call('/backup?store=r2&mib=1', { method: 'POST' });
    expect(made.status, made.text).toBe(200);
    const handle = JSON.parse(made.text) as DirectoryBackup;
    expect(handle).toMatchObject({ format: 'squashfs-4.0', compression: 'zstd', level: 3, dir: '/data', files: 4, bytes: DEMO_BYTES, warnings: [] });
    // The stored image's superblock says zstd (compressor id 6).
    const bucket = (await mf.getR2Bucket('BACKUPS')) as unknown as { get(key: string): Promise<{ arrayBuffer(): Promise<ArrayBuffer> } | null> };
    const image = new Uint8Array(await (await bucket.get(`worker/${handle.key}`))!.arrayBuffer());
    expect(new DataView(image.buffer).getUint16(20, true)).toBe(6);
    const restored = await call('/restore?store=r2&mib=1', { method: 'POST', body: made.text });
    expect(restored.status, restored.text).toBe(200);
    expect(JSON.parse(restored.text)).toMatchObject({ files: 4, differences: [] });
  });

  for (const [store, comp] of [['r2', 'zstd'], ['r2', 'gzip'], ['s3', 'zstd'], ['s3', 'gzip']] as const) {
    it(`backs up to ${store} with ${comp}, restores, and serves one file by range`, async () => {
      // 12 MiB, half noise: an image of two parts, so the multipart path runs.
      const mib = store === 's3' ? 12 : 6;
      const made = await call(`/backup?store=${store}&comp=${comp}&mib=${mib}`, { method: 'POST' });
      expect(made.status, made.text).toBe(200);
      const handle = JSON.parse(made.text);
      expect(handle).toMatchObject({ format: 'squashfs-4.0', compression: comp, dir: '/data', files: 4 });
      const restored = await call(`/restore?store=${store}&mib=${mib}`, { method: 'POST', body: made.text });
      expect(restored.status, restored.text).toBe(200);
      expect(JSON.parse(restored.text)).toMatchObject({ dir: '/restored', files: 4, differences: [] });
      const file = await call(`/file?store=${store}&id=${handle.id}&path=/analysis.json`);
      expect(file.status, file.text).toBe(200);
      expect(JSON.parse(file.text).result).toBe(42);
      expect(Number(file.headers.get('x-ranged-requests'))).toBeLessThanOrEqual(8);
      if (store === 's3') {
        expect(handle.size).toBeGreaterThan(5 * 1024 * 1024);
        expect([...s3.uploads.values()].filter((u) => u.key.endsWith(handle.key)).map((u) => u.state)).toEqual(['completed']);
        expect(s3.violations).toEqual([]);
        expect(s3.openUploads()).toEqual([]);
        // The stored image, fetched past the Worker, is one unsquashfs reads.
        const res = await fetch(`${s3.direct}/${s3.bucket}/worker/${handle.key}`);
        const image = path.join(work, `${store}-${comp}.sqfs`);
        await fsp.writeFile(image, new Uint8Array(await res.arrayBuffer()));
        const out = path.join(work, `${store}-${comp}`);
        execFileSync('unsquashfs', ['-no-progress', '-q', '-d', out, image]);
        expect(await fsp.readFile(path.join(out, 'readme.txt'), 'utf8')).toBe('hello from a Worker\n');
        expect(await fsp.readlink(path.join(out, 'link'))).toBe('readme.txt');
      }
    });
  }

  it('a bucket that refuses uploads: BACKUP_CREATE_ERROR, nothing left behind', async () => {
    const bucket = (await mf.getR2Bucket('BACKUPS')) as unknown as { list(o: { prefix: string }): Promise<{ objects: { key: string }[] }> };
    const before = (await bucket.list({ prefix: 'worker/' })).objects.map((o) => o.key).sort();
    for (const mib of [1, 12]) {
      const res = await call(`/backup?store=broken-r2&mib=${mib}`, { method: 'POST' });
      expect(res.status).toBe(422);
      expect(JSON.parse(res.text)).toMatchObject({ code: 'BACKUP_CREATE_ERROR', message: expect.stringMatching(/refuses uploads/) });
    }
    expect((await bucket.list({ prefix: 'worker/' })).objects.map((o) => o.key).sort()).toEqual(before);
  });

  it('measures the CPU time of backing up a 20 MB tree inside workerd', async () => {
    const before = workerdCpuSeconds();
    const started = performance.now();
    const res = await call('/backup?store=r2&comp=zstd&mib=20', { method: 'POST' });
    const wall = (performance.now() - started) / 1000;
    const cpu = workerdCpuSeconds() - before;
    expect(res.status, res.text).toBe(200);
    const handle = JSON.parse(res.text);
    console.log(`20 MiB tree backed up to R2 in workerd (zstd 3): ${wall.toFixed(2)} s wall, ${cpu.toFixed(2)} s workerd CPU, image ${handle.size} bytes`);
    expect(cpu).toBeGreaterThan(0);
  });
});

describe('examples/worker: the Worker holds the keys, the container a token', () => {
  const SANDBOX = 'box-1';
  /** The container's backup, which the listing test finds through the binding. */
  let made: DirectoryBackup | undefined;

  it('issues a token for sandboxes/<id>/ with what a container needs beside it, and no secret', async () => {
    const started = Date.now();
    const grant = await grantFor(SANDBOX);
    expect(grant).toMatchObject({ prefix: `sandboxes/${SANDBOX}/`, operations: ['write', 'read'], presignUrl: `${worker}/presign`, endpoint: s3.endpoint, bucket: s3.bucket });
    expect(Date.parse(grant.expiresAt) - started).toBeGreaterThan(3590_000);
    expect(Date.parse(grant.expiresAt) - started).toBeLessThanOrEqual(3601_000);
    expect(JSON.stringify(grant)).not.toContain(SECRET_KEY);
    const short = await fetch(`${worker}/sandboxes/${SANDBOX}/token?ttl=600`, { method: 'POST' });
    expect(Date.parse(((await short.json()) as Grant).expiresAt) - started).toBeLessThanOrEqual(601_000);
    // Only POST mints one; an id that is not a plain name is no sandbox route.
    expect((await fetch(`${worker}/sandboxes/${SANDBOX}/token`)).status).toBe(405);
    for (const id of ['a.b', 'a%2Fb', '..', 'x'.repeat(65)]) expect((await fetch(`${worker}/sandboxes/${id}/token`, { method: 'POST' })).status, id).toBe(404);
  });

  it('the container, with no bucket credentials, backs up and restores a tree exactly through the presign route', async () => {
    s3.reset();
    const grant = await grantFor(SANDBOX);
    const env = envFor(SANDBOX, grant);
    expect(Object.keys(env).filter((name) => /^(AWS|R2)_/.test(name))).toEqual([]);

    const backup = await runContainer(['backup', tree, 'checkpoint'], env);
    expect(backup.code, backup.stderr).toBe(0);
    made = JSON.parse(backup.stdout) as DirectoryBackup;
    expect(made).toMatchObject({ name: 'checkpoint', format: 'squashfs-4.0', dir: tree });
    expect(made.size).toBeGreaterThan(5 * 1024 * 1024);

    const restoreTo = path.join(work, 'container-restored');
    const restore = await runContainer(['restore', made.id, restoreTo], env);
    expect(restore.code, restore.stderr).toBe(0);
    expect(await compareTrees(tree, restoreTo)).toEqual([]);

    const list = await runContainer(['list'], env);
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as DirectoryBackup[]).map((b) => b.id)).toEqual([made.id]);

    // Every request s3rver saw was signed by the Worker (the proxy checks each signature) and under the sandbox's prefix.
    expect(s3.requests.length).toBeGreaterThan(0);
    expect(s3.requests.filter((r) => r.op !== 'list' && !r.key.startsWith(`sandboxes/${SANDBOX}/`))).toEqual([]);
    expect([...s3.uploads.values()].filter((u) => u.state === 'completed').map((u) => u.key)).toEqual([`sandboxes/${SANDBOX}/${made.key}`]);
    expect(s3.violations).toEqual([]);
    expect(s3.openUploads()).toEqual([]);
  });

  it("refuses another sandbox's keys (403) and nothing reaches s3rver", async () => {
    const grant = await grantFor(SANDBOX);
    const requests = s3.requests.length;

    // The container pointed at another sandbox, with this sandbox's token.
    const elsewhere = await runContainer(['backup', tree], envFor('box-2', grant));
    expect(elsewhere.code).toBe(1);
    expect(elsewhere.stderr).toMatch(/403 KEY_NOT_ALLOWED/);
    expect(elsewhere.stderr.trim().split('\n')).toHaveLength(1);

    // The presign route asked directly: another sandbox's key, a sibling prefix, a way out through "..", and the bucket's root listing.
    const presign = async (body: unknown) => {
      const res = await fetch(`${worker}/presign`, { method: 'POST', headers: { authorization: `Bearer ${grant.token}` }, body: JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as { code?: string } };
    };
    for (const key of ['sandboxes/box-2/x.json', 'sandboxes/box-10/x.json', `sandboxes/${SANDBOX}/../box-2/x.json`]) {
      expect(await presign({ method: 'PUT', key }), key).toMatchObject({ status: 403, body: { code: 'KEY_NOT_ALLOWED' } });
      expect(await presign({ method: 'GET', key }), key).toMatchObject({ status: 403, body: { code: 'KEY_NOT_ALLOWED' } });
    }
    expect(await presign({ method: 'GET', key: '', query: { 'list-type': '2', prefix: '' } })).toMatchObject({ status: 403, body: { code: 'REQUEST_NOT_ALLOWED' } });
    expect(await presign({ method: 'PUT', key: `sandboxes/${SANDBOX}/x.json` })).toMatchObject({ status: 200 }); // the same token, its own keys

    expect(s3.requests.length).toBe(requests);
    const listed = await (await fetch(`${s3.direct}/${s3.bucket}?list-type=2&prefix=sandboxes/box-`)).text();
    expect([...listed.matchAll(/<Key>([^<]+)<\/Key>/g)].map((m) => m[1]).filter((key) => !key!.startsWith(`sandboxes/${SANDBOX}/`))).toEqual([]);
  });

  it("lists the sandbox's backups through the R2 binding", async () => {
    expect(made, 'the container made a backup').toBeDefined();
    // In production the R2 binding and the S3 endpoint the presigned URLs point at are one bucket, so what the
    // container wrote is what the binding lists. Here they are two stores: Miniflare simulates the binding, and
    // the container wrote to s3rver. So the container's objects (its handle and its image) are copied from
    // s3rver into the binding under the same keys, as if the two were one.
    const bucket = (await mf.getR2Bucket('BACKUPS')) as unknown as { put(key: string, value: Uint8Array): Promise<unknown> };
    for (const key of [`${made!.id}.json`, made!.key]) {
      const res = await fetch(`${s3.direct}/${s3.bucket}/sandboxes/${SANDBOX}/${key}`);
      expect(res.status, key).toBe(200);
      await bucket.put(`sandboxes/${SANDBOX}/${key}`, new Uint8Array(await res.arrayBuffer()));
    }
    const res = await fetch(`${worker}/sandboxes/${SANDBOX}/backups`);
    const text = await res.text();
    expect(res.status, text).toBe(200);
    expect(JSON.parse(text)).toEqual([made]);
    // Another sandbox has none; the demo's own backups (under worker/) are not a sandbox's.
    expect(await (await fetch(`${worker}/sandboxes/box-2/backups`)).json()).toEqual([]);
    expect((await fetch(`${worker}/sandboxes/${SANDBOX}/backups`, { method: 'POST' })).status).toBe(405);
  });
});
