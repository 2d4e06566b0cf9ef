/**
 * The Worker holds the keys (issue 15), in real workerd: the presign
 * service (test/presign-workerd/worker.ts over the BUILT dist/index.js,
 * bundled as test/workerd.test.ts bundles its Worker) runs through
 * Miniflare without nodejs_compat, with the bucket credentials and the
 * token signing key as its bindings. The "container" is a child node
 * process whose environment has no AWS_* or R2_* variable, only the token:
 * it backs up the tricky tree into a real s3rver (behind the proxy that
 * checks every URL's SigV4 signature) through remotePresigner and restores
 * it, exactly (compareTrees); it cannot sign without the Worker, nor step
 * out of its prefix. Then the CLI, as a user runs it: `sqfs backup` and
 * `sqfs restore` (and ls, cat, backups list) with --presign-url and
 * SQFS_PRESIGN_TOKEN, no credentials. Only loopback is reached.
 *
 * `npm test` builds dist/ before the suite; alone, run `npm run build` first.
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Miniflare, supportedCompatibilityDate } from 'miniflare';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DirectoryBackup } from '../src/index.js';
import { compareTrees, run } from './helpers/oracles.js';
import { bundlePresignWorker, type PresignWorkerBundle } from './helpers/presign-bundle.js';
import { ACCESS_KEY, SECRET_KEY, startS3, type S3Harness } from './helpers/s3-server.js';
import { makeTrickyTree, pseudoRandomBytes } from './helpers/tree.js';

const ADMIN_TOKEN = 'orchestrator-only-admin-token';
const CLI = path.join(__dirname, '../dist/cli.js');
const CONTAINER = path.join(__dirname, 'presign-workerd/container.mjs');

let work: string;
let tree: string;
let s3: S3Harness;
let bundle: PresignWorkerBundle;
let mf: Miniflare;
let worker: string;

beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'sqfs-presign-workerd-'));
  tree = path.join(work, 'tree');
  await makeTrickyTree(tree, { blockSize: 131072 });
  await fsp.writeFile(path.join(tree, 'noise.bin'), pseudoRandomBytes(6 * 1024 * 1024, 21)); // a multipart upload
  s3 = await startS3();
  bundle = await bundlePresignWorker(work);
  mf = new Miniflare({
    modules: [{ type: 'ESModule', path: 'presign-worker.mjs', contents: bundle.code }],
    compatibilityDate: supportedCompatibilityDate,
    compatibilityFlags: [], // no nodejs_compat: the service needs none
    bindings: {
      S3_ENDPOINT: s3.endpoint,
      S3_BUCKET: s3.bucket,
      S3_ACCESS_KEY_ID: ACCESS_KEY,
      S3_SECRET_ACCESS_KEY: SECRET_KEY,
      PRESIGN_SIGNING_KEY: 'a-signing-key-only-the-worker-holds-0123456789',
      ADMIN_TOKEN,
    },
    host: '127.0.0.1',
    port: 0,
    cf: false, // else Miniflare fetches Request.cf data from the internet
  });
  worker = (await mf.ready).toString().replace(/\/$/, '');
});

afterAll(async () => {
  try {
    await mf?.dispose();
    await s3?.close();
  } finally {
    if (work) await fsp.rm(work, { recursive: true, force: true });
  }
});

/** A token from the Worker, as the orchestrator asks for one. */
async function issue(prefix: string, operations: string[], ttl = 3600): Promise<string> {
  const response = await fetch(`${worker}/token`, {
    method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, body: JSON.stringify({ prefix, operations, ttl }),
  });
  const body = (await response.json()) as { token?: string; error?: string };
  expect(response.status, body.error).toBe(200);
  return body.token!;
}

/** This process's environment without a single bucket credential, plus `extra`. */
function containerEnv(extra: Record<string, string>): Record<string, string> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name, value]) => value !== undefined && !/^(AWS|R2)_/.test(name))) as Record<string, string>;
  delete env.SQFS_STORE;
  delete env.SQFS_S3_ENDPOINT;
  return { ...env, ...extra };
}

/** Runs node with `args` (asynchronously: s3rver answers from this process). */
async function node(args: string[], env: Record<string, string>, timeoutMs = 120_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const result = await run(process.execPath, args, { env, timeoutMs });
  return { code: result.code, stdout: result.stdout.toString('utf8'), stderr: result.stderr.toString('utf8') };
}

describe('the presign service in workerd (Miniflare, no nodejs_compat)', () => {
  it('bundles dist/index.js without node: modules and runs in workerd', async () => {
    expect(bundle.inputs.some((name) => name.endsWith('dist/index.js'))).toBe(true);
    expect(bundle.code.match(/["']node:[a-z_/]+["']/g) ?? []).toEqual([]);
    const probe = (await (await fetch(`${worker}/probe`)).json()) as Record<string, string>;
    expect(probe).toEqual({ userAgent: 'Cloudflare-Workers', process: 'undefined', subtle: 'function' });
  });

  it('refuses in workerd what it must: no token, a forged one, a key out of the prefix, an operation not granted', async () => {
    const requests = s3.requests.length;
    const presign = (token: string | undefined, body: unknown) =>
      fetch(`${worker}/presign`, { method: 'POST', headers: token ? { authorization: `Bearer ${token}` } : {}, body: JSON.stringify(body) })
        .then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, unknown> }));
    const tok = await issue('sandboxes/w/', ['write']);
    expect(await presign(undefined, { method: 'PUT', key: 'sandboxes/w/k' })).toMatchObject({ status: 401, body: { code: 'TOKEN_MISSING' } });
    expect(await presign(`${tok.slice(0, -2)}AA`, { method: 'PUT', key: 'sandboxes/w/k' })).toMatchObject({ status: 401, body: { code: 'TOKEN_INVALID' } });
    expect(await presign(tok, { method: 'PUT', key: 'sandboxes/w/../v/k' })).toMatchObject({ status: 403, body: { code: 'KEY_NOT_ALLOWED' } });
    expect(await presign(tok, { method: 'PUT', key: 'sandboxes/w/%2e%2e%2fv/k' })).toMatchObject({ status: 403, body: { code: 'KEY_NOT_ALLOWED' } });
    expect(await presign(tok, { method: 'PUT', key: 'sandboxes/wv/k' })).toMatchObject({ status: 403, body: { code: 'KEY_NOT_ALLOWED' } });
    expect(await presign(tok, { method: 'GET', key: 'sandboxes/w/k' })).toMatchObject({ status: 403, body: { code: 'OPERATION_NOT_ALLOWED' } });
    expect(await presign(tok, { method: 'GET', key: '', query: { 'list-type': '2', prefix: '' } })).toMatchObject({ status: 403 });
    const granted = await presign(tok, { method: 'PUT', key: 'sandboxes/w/k' });
    expect(granted.status).toBe(200);
    expect(new URL(granted.body.url as string).searchParams.get('X-Amz-Expires')).toBe('300');
    expect(s3.requests.length).toBe(requests);
    const wrongAdmin = await fetch(`${worker}/token`, { method: 'POST', headers: { authorization: 'Bearer guess' }, body: '{}' });
    expect(wrongAdmin.status).toBe(401);
  });

  it('a container with a token and no credentials backs up and restores the tree exactly, within its prefix only', async () => {
    const restoreTo = path.join(work, 'container-restored');
    const token = await issue('sandboxes/x/', ['write', 'read']);
    const args = { presignUrl: `${worker}/presign`, endpoint: s3.endpoint, bucket: s3.bucket, prefix: 'sandboxes/x', dir: tree, restoreTo };
    const run = await node([CONTAINER, JSON.stringify(args)], containerEnv({ SQFS_PRESIGN_TOKEN: token }));
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as {
      credentialVariables: string[]; withoutPresigner: { code: string }; backup: DirectoryBackup; listed: string[];
      other: { status: number; code: string }; dotdot: { status: number; code: string }; 'root-list': { status: number; code: string };
    };
    expect(result.credentialVariables).toEqual([]);
    expect(result.withoutPresigner).toMatchObject({ code: 'INVALID_BACKUP_CONFIG', message: expect.stringMatching(/no credentials/) });
    expect(result.backup.size).toBeGreaterThan(5 * 1024 * 1024);
    expect(result.listed).toEqual([result.backup.id]);
    expect(await compareTrees(tree, restoreTo)).toEqual([]);
    expect(result.other).toMatchObject({ status: 403, code: 'KEY_NOT_ALLOWED' });
    expect(result.dotdot).toMatchObject({ status: 403, code: 'KEY_NOT_ALLOWED' });
    expect(result['root-list']).toMatchObject({ status: 403, code: 'REQUEST_NOT_ALLOWED' });
    // Everything the store saw was signed by the Worker (the proxy checks each signature) and under the prefix.
    expect([...s3.uploads.values()].some((u) => u.key.startsWith('sandboxes/x/') && u.state === 'completed' && u.arrivals.length >= 2)).toBe(true);
    expect(s3.openUploads()).toEqual([]);
    expect(s3.requests.every((r) => r.op === 'list' || r.key.startsWith('sandboxes/x/'))).toBe(true);
  });

  it('the CLI backs up and restores with --presign-url and SQFS_PRESIGN_TOKEN, no credentials', async () => {
    const store = ['--store', `s3://${s3.bucket}/sandboxes/cli`, '--endpoint', s3.endpoint, '--presign-url', `${worker}/presign`];
    const env = containerEnv({ SQFS_PRESIGN_TOKEN: await issue('sandboxes/cli/', ['write', 'read']) });
    const backup = await node([CLI, 'backup', tree, ...store, '--ttl', '3600'], env);
    expect(backup.code, backup.stderr).toBe(0);
    const handle = JSON.parse(backup.stdout) as DirectoryBackup;
    expect(handle.size).toBeGreaterThan(5 * 1024 * 1024);

    const out = path.join(work, 'cli-restored');
    const restore = await node([CLI, 'restore', handle.id, out, ...store], env);
    expect(restore.code, restore.stderr).toBe(0);
    expect(await compareTrees(tree, out)).toEqual([]);

    const cat = await node([CLI, 'cat', handle.id, 'text/hello.txt', ...store], env);
    expect(cat).toMatchObject({ code: 0, stdout: 'hello, world\n' });
    const ls = await node([CLI, 'ls', handle.id, 'text', ...store], env);
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout).toContain('hello.txt');
    const list = await node([CLI, 'backups', 'list', '--json', ...store], env);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toContain(handle.id);

    // The token only: refused without it, with a usage error and nothing sent.
    const requests = s3.requests.length;
    const bare = containerEnv({});
    delete bare.SQFS_PRESIGN_TOKEN;
    const missing = await node([CLI, 'backups', 'list', ...store], bare);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--presign-url needs the capability token in SQFS_PRESIGN_TOKEN/);
    // A token for another sandbox: the Worker refuses, the CLI says so on one line.
    const elsewhere = await node([CLI, 'backups', 'list', ...store], containerEnv({ SQFS_PRESIGN_TOKEN: await issue('sandboxes/other/', ['read']) }));
    expect(elsewhere.code).toBe(1);
    expect(elsewhere.stderr).toMatch(/403 REQUEST_NOT_ALLOWED/);
    expect(elsewhere.stderr.trim().split('\n')).toHaveLength(1);
    expect(s3.requests.length).toBe(requests);
  });
});
