/**
 * The Worker holds the keys (issue 15), in Node: presignService called as a
 * function with fetch Requests, behind a plain HTTP server on 127.0.0.1
 * (test/helpers/presign-server.ts), and remotePresigner in s3Store against
 * a real s3rver (behind the proxy that checks every URL's SigV4 signature
 * and expiry). A backup made and restored with a token alone comes back
 * exactly (compareTrees). Each refusal is checked at the server afterwards:
 * the store saw no request and its objects are as they were. A fast-check
 * property holds the key rules against a reference written here from the
 * rules alone: a key is signed iff it, and every form percent-decoding
 * makes of it, is a clean path under the token's prefix.
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { s3StoreFrom } from '../src/cli/store-options.js';
import {
  deleteBackup, encodeKey, listBackups, presignService, remotePresigner, RequestPolicy, s3Store, StoreError, type Capability,
  type ObjectStore, type PresignRequest, type PresignService,
} from '../src/index.js';
import { compactBackup, createBackup, restoreBackup } from '../src/node/index.js';
import { compareTrees } from './helpers/oracles.js';
import { startPresignServer, type PresignServer } from './helpers/presign-server.js';
import { ACCESS_KEY, SECRET_KEY, startS3, type S3Harness } from './helpers/s3-server.js';
import { makeTrickyTree, pseudoRandomBytes } from './helpers/tree.js';

const SIGNING_KEY = 'presign-test-signing-key-0123456789abcdef';
const OTHER_KEY = 'another-signing-key-which-is-long-enough-too';
const PREFIX = 'sandboxes/a/';

let work: string;
let tree: string;
let s3: S3Harness;
let service: PresignService;
let server: PresignServer;
/** Sees the bucket as s3rver keeps it, past the proxy (its requests are not logged). */
let admin: ObjectStore;
/** Quick retries, and the same policy for the store and its presign requests. */
const policy = new RequestPolicy({ baseDelayMs: 5, maxDelayMs: 50, requestTimeout: 10_000 });

const makeService = (options: Partial<Parameters<typeof presignService>[0]> = {}) =>
  presignService({ endpoint: s3.endpoint, bucket: s3.bucket, accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY, signingKey: SIGNING_KEY, ...options });

beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'sqfs-presign-'));
  tree = path.join(work, 'tree');
  await makeTrickyTree(tree, { blockSize: 131072 });
  // Incompressible and over one 5 MiB part: the image goes up as a multipart upload.
  await fsp.writeFile(path.join(tree, 'noise.bin'), pseudoRandomBytes(6 * 1024 * 1024, 15));
  s3 = await startS3();
  service = makeService();
  server = await startPresignServer((request) => service.handle(request));
  admin = s3Store({ endpoint: s3.direct, bucket: s3.bucket, accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY });
});
afterAll(async () => {
  await server?.close();
  await s3?.close();
  if (work) await fsp.rm(work, { recursive: true, force: true });
});
beforeEach(() => {
  s3.reset();
  server.faults = () => undefined;
  server.log.length = 0;
});

const token = (operations: Capability[] = ['write', 'read'], prefix = PREFIX, ttl = 3600, from: PresignService = service) =>
  from.issueToken({ prefix, operations, ttl });

/** An s3Store under `prefix` that holds nothing but `tok`. */
const storeWith = (tok: string, prefix = 'sandboxes/a', extra: { reuseUrlsFor?: number } = {}) =>
  s3Store({ endpoint: s3.endpoint, bucket: s3.bucket, prefix, policy, ...extra, presigner: remotePresigner({ url: server.url, token: tok, policy, ...extra }) });

/** One presign request straight to the service. */
async function ask(tok: string | undefined, body: unknown, init: RequestInit = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await service.handle(new Request('http://presign.test/presign', {
    method: 'POST',
    headers: tok === undefined ? {} : { authorization: `Bearer ${tok}` },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...init,
  }));
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** Every object in the bucket, key and size. */
async function objects(): Promise<string[]> {
  const all: string[] = [];
  for await (const o of admin.list('')) all.push(`${o.key} ${o.size}`);
  return all.sort();
}

/** The promise's rejection (it must reject). */
async function rejection(promise: Promise<unknown>): Promise<Error & { status?: number; code?: string; details?: { code?: string; status?: number } }> {
  const outcome = await promise.then(() => undefined, (e: unknown) => e as Error);
  expect(outcome, 'expected a refusal').toBeInstanceOf(Error);
  return outcome!;
}

/**
 * Runs `attempt` (a store operation the token must not allow) and checks
 * that it failed with the service's `status` and `code`, that the store
 * saw no request (but of the `allowed` ops, made before the refused one)
 * and that the bucket holds what it held.
 */
async function expectRefusedAtServer(attempt: () => Promise<unknown>, status: number, code: string, allowed: string[] = []): Promise<void> {
  const before = await objects();
  const requests = s3.requests.length;
  const error = await rejection(attempt());
  let store: unknown = error;
  for (let depth = 0; store && !(store instanceof StoreError) && depth < 5; depth++) store = (store as { cause?: unknown }).cause;
  expect(store, error.message).toBeInstanceOf(StoreError);
  expect((store as StoreError).details).toMatchObject({ status, code, retryable: false });
  expect((store as StoreError).message).toMatch(/the presign service answered/);
  expect(s3.requests.slice(requests).filter((r) => !allowed.includes(r.op))).toEqual([]);
  expect(await objects()).toEqual(before);
  expect(server.log.at(-1)).toMatchObject({ status, code });
}

describe('a backup through a presign service, with a token and no credentials', () => {
  it('round-trips the tricky tree exactly, by handle and by id, all of it under the token prefix', async () => {
    const store = storeWith(await token(['write', 'read']));
    const backup = await createBackup({ dir: tree, store, name: 'sandbox a', ttl: 3600 });
    expect(backup.size).toBeGreaterThan(5 * 1024 * 1024);
    const uploads = [...s3.uploads.values()];
    expect(uploads.some((u) => u.state === 'completed' && u.arrivals.length >= 2)).toBe(true);
    expect(s3.openUploads()).toEqual([]);
    expect(s3.violations).toEqual([]);

    const target = path.join(work, 'restored');
    await restoreBackup(backup, { store, dir: target });
    expect(await compareTrees(tree, target)).toEqual([]);
    const again = path.join(work, 'restored-by-id');
    await restoreBackup(backup.id, { store, dir: again });
    expect(await compareTrees(tree, again)).toEqual([]);
    expect((await listBackups({ store })).map((b) => b.id)).toEqual([backup.id]);

    // Every URL the store used was the service's, and every object is under the prefix.
    expect(s3.requests.every((r) => r.op === 'list' || r.key.startsWith(PREFIX))).toBe(true);
    expect(server.log.length).toBeGreaterThan(5);
    expect(server.log.every((e) => e.status === 200)).toBe(true);
    expect((await objects()).filter((o) => o.startsWith(`${PREFIX}${backup.id}`))).toHaveLength(2);
  });

  it('tries a presign request again after a 500 and after a dropped connection', async () => {
    const small = path.join(work, 'small');
    await fsp.mkdir(small, { recursive: true });
    await fsp.writeFile(path.join(small, 'a.txt'), 'hello\n');
    server.faults = (n) => (n === 1 ? { status: 500 } : n === 3 ? { reset: true } : undefined);
    const store = storeWith(await token(['write', 'read']));
    const backup = await createBackup({ dir: small, store, ttl: 3600 });
    expect(server.log.filter((e) => e.fault)).toHaveLength(2);
    expect(server.log[1]!.body).toBe(server.log[0]!.body); // the same request, asked again
    const out = path.join(work, 'small-out');
    await restoreBackup(backup, { store, dir: out });
    expect(await compareTrees(small, out)).toEqual([]);
  });

  it('compacts a chain with the full backup\'s region copied on the server (UploadPartCopy signed through the service)', async () => {
    const dir = path.join(work, 'copied');
    await fsp.mkdir(dir, { recursive: true });
    await fsp.writeFile(path.join(dir, 'big.bin'), pseudoRandomBytes(12 * 1024 * 1024, 31));
    await fsp.writeFile(path.join(dir, 'a.txt'), 'one\n');
    const store = storeWith(await token(['write', 'read']));
    const full = await createBackup({ dir, store, ttl: 3600, compression: 'gzip' });
    await fsp.writeFile(path.join(dir, 'a.txt'), 'two, longer\n');
    const delta = await createBackup({ dir, store, ttl: 3600, base: full, compression: 'gzip' });
    s3.reset();
    const compacted = await compactBackup(delta, { store, reuseBase: true });
    expect(s3.requests.filter((r) => r.op === 'copy').length).toBeGreaterThanOrEqual(1);
    expect(s3.violations).toEqual([]);
    const out = path.join(work, 'copied-out');
    await restoreBackup(compacted, { store, dir: out });
    expect(await compareTrees(dir, out)).toEqual([]);
  });

  it('is the store the CLI makes from --presign-url and SQFS_PRESIGN_TOKEN, and refuses either alone', async () => {
    const ctx = { usage: (message: string) => new Error(`usage: ${message}`) };
    const values = { endpoint: s3.endpoint, 'presign-url': server.url };
    const tok = await token(['read']);
    const store = s3StoreFrom(ctx, values, `s3://${s3.bucket}/sandboxes/a`, { baseDelayMs: 5 }, { SQFS_PRESIGN_TOKEN: tok })!;
    await listBackups({ store });
    expect(server.log.length).toBeGreaterThan(0);
    expect(server.log.every((e) => e.status === 200)).toBe(true);
    expect(() => s3StoreFrom(ctx, values, `s3://${s3.bucket}/sandboxes/a`, undefined, {})).toThrow(/--presign-url needs the capability token in SQFS_PRESIGN_TOKEN/);
    expect(() => s3StoreFrom(ctx, values, 'file:///tmp/store', undefined, { SQFS_PRESIGN_TOKEN: tok })).toThrow(/--presign-url goes with an s3:\/\/bucket\/prefix store/);
    expect(() => s3StoreFrom(ctx, values, undefined, undefined, { SQFS_PRESIGN_TOKEN: tok })).toThrow(/--presign-url goes with an s3:\/\/bucket\/prefix store/);
    expect(() => s3StoreFrom(ctx, { ...values, 'presign-url': 'ftp://x' }, 's3://b/p', undefined, { SQFS_PRESIGN_TOKEN: tok })).toThrow(/http\(s\) URL/);
    // Without --presign-url and without credentials, there is nothing to sign with.
    const bare = { AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined, R2_ACCESS_KEY_ID: undefined, R2_SECRET_ACCESS_KEY: undefined };
    const saved = Object.fromEntries(Object.keys(bare).map((k) => [k, process.env[k]]));
    for (const k of Object.keys(bare)) delete process.env[k];
    try {
      expect(() => s3StoreFrom(ctx, { endpoint: s3.endpoint }, `s3://${s3.bucket}/x`, undefined, {})).toThrow(/no credentials/);
    } finally {
      for (const [k, v] of Object.entries(saved)) if (v !== undefined) process.env[k] = v;
    }
  });
});

describe('what the service refuses (nothing signed, nothing reaches the store)', () => {
  let other: string;
  beforeAll(async () => {
    // Another sandbox's backup, whose objects the token for sandboxes/a/ must not reach.
    const small = path.join(work, 'other-tree');
    await fsp.mkdir(small, { recursive: true });
    await fsp.writeFile(path.join(small, 'secret.txt'), 'sandbox b\n');
    const b = await createBackup({ dir: small, store: storeWith(await token(['write'], 'sandboxes/b/'), 'sandboxes/b'), ttl: 3600 });
    other = b.id;
  });

  const escapes = [
    ['in plain sight', 'sandboxes/b', 'k'],
    ['through ../', 'sandboxes/a', '../b/k'],
    ['through %2e%2e%2f', 'sandboxes/a', '%2e%2e%2fb/k'],
    ['through ..%2F', 'sandboxes/a', '..%2Fb/k'],
    ['through an encoded slash before the prefix ends', 'sandboxes', 'a%2F..%2Fb/k'],
    ['through %252e%252e (encoded twice)', 'sandboxes/a', '%252e%252e/b/k'],
    ['through backslashes', 'sandboxes/a', '..\\b\\k'],
    ['through a double slash', 'sandboxes/a', '/../b/k'],
    ['through a NUL', 'sandboxes/a', 'k\0/../../b/k'],
    ['through a ./ segment', 'sandboxes/a', './k'],
  ] as const;
  for (const [how, prefix, key] of escapes) {
    it(`a key in another sandbox's prefix ${how}: put, get and delete`, async () => {
      const tok = await token(['write', 'read', 'delete']);
      await expectRefusedAtServer(() => storeWith(tok, prefix).put(key, new Uint8Array([1, 2, 3])), 403, 'KEY_NOT_ALLOWED');
      await expectRefusedAtServer(() => storeWith(tok, prefix).get(key), 403, 'KEY_NOT_ALLOWED');
      await expectRefusedAtServer(() => storeWith(tok, prefix).delete(key), 403, 'KEY_NOT_ALLOWED');
    });
  }

  it("reaches none of the other sandbox's objects by name, either", async () => {
    const tok = await token(['write', 'read', 'delete']);
    await expectRefusedAtServer(() => storeWith(tok, 'sandboxes/a').get(`../b/${other}.json`), 403, 'KEY_NOT_ALLOWED');
    await expectRefusedAtServer(() => deleteBackup(other, { store: storeWith(tok, 'sandboxes/b') }), 403, 'KEY_NOT_ALLOWED');
    await expectRefusedAtServer(() => storeWith(tok, 'sandboxes/a').head(`%2e%2e/b/${other}.sqfs`), 403, 'KEY_NOT_ALLOWED');
    expect(await objects()).toEqual(expect.arrayContaining([expect.stringMatching(new RegExp(`^sandboxes/b/${other}\\.sqfs `))]));
  });

  it('a LIST of the bucket root, of another prefix, or of one the token prefix only starts', async () => {
    const tok = await token(['read']);
    await expectRefusedAtServer(() => listBackups({ store: storeWith(tok, '') }), 403, 'REQUEST_NOT_ALLOWED');
    await expectRefusedAtServer(() => listBackups({ store: storeWith(tok, 'sandboxes/b') }), 403, 'REQUEST_NOT_ALLOWED');
    await expectRefusedAtServer(() => listBackups({ store: storeWith(tok, 'sandboxes') }), 403, 'REQUEST_NOT_ALLOWED');
    for (const query of [
      { 'list-type': '2', prefix: 'sandboxes/a' }, // would list sandboxes/ab/ too
      { 'list-type': '2', prefix: '' },
      { 'list-type': '2' }, // no prefix: the whole bucket
      { 'list-type': '2', prefix: 'sandboxes/a/../b/' },
      { 'list-type': '2', prefix: 'sandboxes/a/%2e%2e/' },
      { 'list-type': '2', prefix: 'sandboxes/a//' },
      { prefix: PREFIX }, // ListObjects v1
    ]) {
      const answer = await ask(tok, { method: 'GET', key: '', query });
      expect(answer, JSON.stringify(query)).toMatchObject({ status: 403, body: { code: 'REQUEST_NOT_ALLOWED' } });
      expect(answer.body.url).toBeUndefined();
    }
    expect((await ask(tok, { method: 'GET', key: '', query: { 'list-type': '2', prefix: PREFIX } })).status).toBe(200);
    expect((await ask(tok, { method: 'GET', key: '', query: { 'list-type': '2', prefix: `${PREFIX}abc`, 'continuation-token': 'opaque' } })).status).toBe(200);
  });

  it('an UploadPartCopy from another sandbox, with a write-only token, or with other headers or a bad range', async () => {
    const copy = (source: string, range = 'bytes=0-99', extra: Record<string, string> = {}) => ({
      method: 'PUT', key: `${PREFIX}new.sqfs`, query: { partNumber: '2', uploadId: 'u' },
      headers: { 'x-amz-copy-source': source, 'x-amz-copy-source-range': range, ...extra },
    });
    const both = await token(['write', 'read']);
    const mine = `/${s3.bucket}/${PREFIX}old.sqfs`;
    const granted = await ask(both, copy(mine));
    expect(granted.status).toBe(200);
    expect(new URL(String(granted.body.url)).searchParams.get('X-Amz-SignedHeaders')).toBe('host;x-amz-copy-source;x-amz-copy-source-range');
    for (const source of [`/${s3.bucket}/sandboxes/b/${other}.sqfs`, `/${s3.bucket}/${PREFIX}../b/${other}.sqfs`, `/${s3.bucket}/${PREFIX}%2e%2e/b/x`, `/other-bucket/${PREFIX}old.sqfs`, `${s3.bucket}/${PREFIX}old.sqfs`]) {
      const answer = await ask(both, copy(source));
      expect(answer, source).toMatchObject({ status: 403, body: { code: 'KEY_NOT_ALLOWED' } });
      expect(answer.body.url).toBeUndefined();
    }
    expect(await ask(await token(['write']), copy(mine))).toMatchObject({ status: 403, body: { code: 'KEY_NOT_ALLOWED' } });
    for (const range of ['bytes=0-', 'bytes=-5', '0-99', 'bytes=00-1']) expect((await ask(both, copy(mine, range))).status, range).toBe(403);
    expect(await ask(both, copy(mine, 'bytes=0-99', { 'x-amz-acl': 'public-read' }))).toMatchObject({ status: 403, body: { code: 'REQUEST_NOT_ALLOWED' } });
    expect(await ask(both, { ...copy(mine), query: {} })).toMatchObject({ status: 403, body: { code: 'REQUEST_NOT_ALLOWED' } });
  });

  it('DELETE and GET with a write-only token; writes with a read-only one', async () => {
    const write = await token(['write']);
    const store = storeWith(write);
    const small = path.join(work, 'write-only');
    await fsp.mkdir(small, { recursive: true });
    await fsp.writeFile(path.join(small, 'f'), 'x');
    const backup = await createBackup({ dir: small, store, ttl: 3600 });
    await expectRefusedAtServer(() => store.delete(`${backup.id}.sqfs`), 403, 'OPERATION_NOT_ALLOWED');
    await expectRefusedAtServer(() => store.get(`${backup.id}.json`), 403, 'OPERATION_NOT_ALLOWED');
    await expectRefusedAtServer(() => store.getRange(`${backup.id}.sqfs`, 0, 96), 403, 'OPERATION_NOT_ALLOWED');
    // (restore checks the image's size with a HEAD first, which write allows: what it may not do is read)
    await expectRefusedAtServer(() => restoreBackup(backup, { store, dir: path.join(work, 'never') }), 403, 'OPERATION_NOT_ALLOWED', ['head']);
    await expectRefusedAtServer(() => listBackups({ store }), 403, 'OPERATION_NOT_ALLOWED');
    const read = storeWith(await token(['read']));
    await expectRefusedAtServer(() => read.put('new', new Uint8Array(1)), 403, 'OPERATION_NOT_ALLOWED');
    await expectRefusedAtServer(() => read.createMultipartUpload('new', 5 << 20), 403, 'OPERATION_NOT_ALLOWED');
    await expectRefusedAtServer(() => read.delete(`${backup.id}.sqfs`), 403, 'OPERATION_NOT_ALLOWED');
    expect(await read.head(`${backup.id}.sqfs`)).toMatchObject({ size: backup.size }); // read allows head
  });

  it('an expired token, a token with one bit changed, and one signed with another key', async () => {
    const expired = await token(['write', 'read'], PREFIX, 3600, makeService({ now: () => Date.now() - 2 * 3600_000 }));
    await expectRefusedAtServer(() => storeWith(expired).put('k', new Uint8Array(1)), 401, 'TOKEN_EXPIRED');

    const foreign = await token(['write', 'read'], PREFIX, 3600, makeService({ signingKey: OTHER_KEY }));
    await expectRefusedAtServer(() => storeWith(foreign).put('k', new Uint8Array(1)), 401, 'TOKEN_INVALID');

    const genuine = await token(['write', 'read']);
    expect((await ask(genuine, { method: 'PUT', key: `${PREFIX}k` })).status).toBe(200);
    expect(await service.verifyToken(genuine)).toMatchObject({ prefix: PREFIX, operations: ['write', 'read'], expiresAt: expect.any(Number) });
    expect(await service.verifyToken(expired)).toBeUndefined();
    expect(await service.verifyToken(foreign)).toBeUndefined();
    // One bit of any base64url digit, payload and MAC alike: never genuine.
    const digits = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    for (let i = 0; i < genuine.length; i++) {
      if (genuine[i] === '.') continue;
      for (const bit of [1, 32]) {
        const flipped = genuine.slice(0, i) + digits[digits.indexOf(genuine[i]!) ^ bit] + genuine.slice(i + 1);
        const answer = await ask(flipped, { method: 'PUT', key: `${PREFIX}k` });
        expect(answer, `digit ${i}, bit ${bit}`).toMatchObject({ status: 401, body: { code: 'TOKEN_INVALID' } });
      }
    }
    // A bit of the claims themselves: sandboxes/a/ becomes sandboxes/c/ ('a' ^ 2), the MAC kept.
    const [payload, mac] = genuine.split('.');
    const claims = Buffer.from(payload!, 'base64url');
    const at = claims.indexOf('sandboxes/a/') + 'sandboxes/'.length;
    claims[at] ^= 2;
    expect(claims.toString()).toContain('"sandboxes/c/"');
    const forged = `${claims.toString('base64url')}.${mac}`;
    await expectRefusedAtServer(() => storeWith(forged, 'sandboxes/c').put('k', new Uint8Array(1)), 401, 'TOKEN_INVALID');
    await expectRefusedAtServer(() => storeWith('not-a-token', 'sandboxes/a').put('k', new Uint8Array(1)), 401, 'TOKEN_INVALID');
    expect(await ask(undefined, { method: 'PUT', key: `${PREFIX}k` })).toMatchObject({ status: 401, body: { code: 'TOKEN_MISSING' } });
  });

  it('a token for sandboxes/a used on sandboxes/ab', async () => {
    const tok = await token(['write', 'read', 'delete'], 'sandboxes/a'); // no trailing slash: the same as sandboxes/a/
    await expectRefusedAtServer(() => storeWith(tok, 'sandboxes/ab').put('k', new Uint8Array(1)), 403, 'KEY_NOT_ALLOWED');
    await expectRefusedAtServer(() => storeWith(tok, 'sandboxes/ab').head('k'), 403, 'KEY_NOT_ALLOWED');
    await expectRefusedAtServer(() => listBackups({ store: storeWith(tok, 'sandboxes/ab') }), 403, 'REQUEST_NOT_ALLOWED');
    expect((await ask(tok, { method: 'PUT', key: 'sandboxes/a/k' })).status).toBe(200);
    expect((await ask(tok, { method: 'PUT', key: 'sandboxes/a' })).status).toBe(403);
  });

  it('query parameters s3Store does not send, other shapes, and requests that are not presign requests', async () => {
    const tok = await token(['write', 'read', 'delete']);
    const key = `${PREFIX}k`;
    const widening: PresignRequest[] = [
      { method: 'GET', key, query: { 'response-content-type': 'text/html' } },
      { method: 'GET', key, query: { 'X-Amz-Expires': '604800' } },
      { method: 'GET', key, query: { versionId: '1' } },
      { method: 'PUT', key, query: { 'x-id': 'PutObject' } },
      { method: 'PUT', key, query: { 'partNumber&uploadId': 'x' } },
      { method: 'GET', key: '', query: { 'list-type': '2', prefix: PREFIX, delimiter: '/' } },
      { method: 'GET', key: '', query: { 'list-type': '2', prefix: PREFIX, 'start-after': 'sandboxes/b/' } },
      { method: 'GET', key: '', query: { 'list-type': '1', prefix: PREFIX } },
      { method: 'PUT', key, query: { partNumber: '0', uploadId: 'u' } },
      { method: 'PUT', key, query: { partNumber: '10001', uploadId: 'u' } },
      { method: 'PUT', key, query: { partNumber: '1', uploadId: '' } },
      { method: 'PUT', key, query: { partNumber: '1', uploadId: 'u\r\nx: y' } },
      { method: 'POST', key, query: { uploads: 'x' } },
      { method: 'GET', key, query: { 'list-type': '2', prefix: PREFIX } }, // LIST on a key
      { method: 'PUT', key: '' }, // CreateBucket
      { method: 'DELETE', key: '' }, // DeleteBucket
      { method: 'HEAD', key: '' }, // HeadBucket
    ];
    for (const req of widening) {
      const answer = await ask(tok, req);
      expect(answer, JSON.stringify(req)).toMatchObject({ status: 403, body: { code: 'REQUEST_NOT_ALLOWED' } });
    }
    // JSON makes "__proto__" an own name, which is no query parameter s3Store sends either.
    expect(await ask(tok, `{"method":"GET","key":"${key}","query":{"__proto__":"x"}}`)).toMatchObject({ status: 403, body: { code: 'REQUEST_NOT_ALLOWED' } });
    for (const body of ['not json', '[]', JSON.stringify({ method: 'PATCH', key }), JSON.stringify({ method: 'GET', key, extra: 1 }), JSON.stringify({ method: 'GET', key, query: { a: 1 } })]) {
      expect(await ask(tok, body), body).toMatchObject({ status: 400, body: { code: 'BAD_REQUEST' } });
    }
    expect(await ask(tok, 'x'.repeat(20_000))).toMatchObject({ status: 400, body: { code: 'BAD_REQUEST' } });
    const get = await service.handle(new Request('http://presign.test/presign', { headers: { authorization: `Bearer ${tok}` } }));
    expect(get.status).toBe(405);
    // And what s3Store does send is signed, each for exactly its key and query.
    for (const req of [
      { method: 'POST', key, query: { uploads: '' } },
      { method: 'PUT', key, query: { partNumber: '10000', uploadId: 'abc' } },
      { method: 'POST', key, query: { uploadId: 'abc' } },
      { method: 'DELETE', key, query: { uploadId: 'abc' } },
      { method: 'PUT', key }, { method: 'HEAD', key }, { method: 'GET', key }, { method: 'DELETE', key },
    ] as PresignRequest[]) {
      const answer = await ask(tok, req);
      expect(answer.status, JSON.stringify(req)).toBe(200);
      const url = new URL(answer.body.url as string);
      expect(url.pathname).toBe(`/${s3.bucket}/${encodeKey(key)}`);
      for (const [name, value] of Object.entries(req.query ?? {})) expect(url.searchParams.get(name)).toBe(value);
    }
  });
});

describe('making a service and its tokens', () => {
  it('refuses what would make a token wider than meant, or a weak key', async () => {
    for (const prefix of ['', '/', '/sandboxes/a/', 'sandboxes//a/', 'sandboxes/./a/', 'sandboxes/../a', 'sandboxes/%2e%2e/a', 'sandboxes\\a', 'sandboxes/a\0']) {
      await expect(service.issueToken({ prefix, operations: ['read'], ttl: 60 }), JSON.stringify(prefix)).rejects.toMatchObject({ code: 'INVALID_BACKUP_CONFIG' });
    }
    for (const operations of [[], ['admin'], ['read', 'list']] as Capability[][]) {
      await expect(service.issueToken({ prefix: PREFIX, operations, ttl: 60 })).rejects.toMatchObject({ code: 'INVALID_BACKUP_CONFIG' });
    }
    for (const ttl of [0, -1, 1.5, Number.NaN, 8 * 24 * 3600]) {
      await expect(service.issueToken({ prefix: PREFIX, operations: ['read'], ttl })).rejects.toMatchObject({ code: 'INVALID_BACKUP_CONFIG' });
    }
    expect(() => makeService({ signingKey: 'short' })).toThrow(/at least 32 bytes/);
    expect(() => makeService({ urlTtl: 7200 })).toThrow(/urlTtl/);
    expect(() => remotePresigner({ url: 'file:///x', token: 't' })).toThrow(/http\(s\) URL/);
    expect(() => remotePresigner({ url: server.url, token: 'bad token\n' })).toThrow(/capability token/);
  });

  it('takes a CryptoKey as its signing key', async () => {
    const key = await crypto.subtle.importKey('raw', new TextEncoder().encode(SIGNING_KEY), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
    const withKey = makeService({ signingKey: key });
    // The same key as bytes: the tokens are interchangeable.
    expect(await service.verifyToken(await withKey.issueToken({ prefix: PREFIX, operations: ['read'], ttl: 60 }))).toMatchObject({ prefix: PREFIX });
  });
});

describe('how long URLs live', () => {
  it('signs for urlTtl, never past the token, and says when (expiresAt is X-Amz-Date + X-Amz-Expires)', async () => {
    const answer = await ask(await token(['write']), { method: 'PUT', key: `${PREFIX}k` });
    const url = new URL(answer.body.url as string);
    expect(url.searchParams.get('X-Amz-Expires')).toBe('300');
    expect(answer.body.expiresIn).toBe(300);
    const d = url.searchParams.get('X-Amz-Date')!;
    const signed = Date.UTC(+d.slice(0, 4), +d.slice(4, 6) - 1, +d.slice(6, 8), +d.slice(9, 11), +d.slice(11, 13), +d.slice(13, 15));
    expect(Date.parse(answer.body.expiresAt as string)).toBe(signed + 300_000);

    const short = await ask(await token(['write'], PREFIX, 40), { method: 'PUT', key: `${PREFIX}k` });
    expect(short.body.expiresIn).toBeLessThanOrEqual(40);
    expect(Number(new URL(short.body.url as string).searchParams.get('X-Amz-Expires'))).toBeLessThanOrEqual(40);
  });

  it('never hands s3Store a URL it would reuse after it expired', async () => {
    // The token expires in 40 s; s3Store reuses URLs for 60 s: refused before anything is sent.
    const soon = await token(['write', 'read'], PREFIX, 40);
    const requests = s3.requests.length;
    const error = await rejection(storeWith(soon).put('k', new Uint8Array(1)));
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).details).toMatchObject({ code: 'URL_EXPIRES_TOO_SOON', retryable: false });
    expect(error.message).toMatch(/signed the URL for (39|40) s .* the store may use it for 60 s/);
    expect(s3.requests.length).toBe(requests);
    // A service whose URLs live 30 s, likewise.
    const brief = makeService({ urlTtl: 30 });
    const briefServer = await startPresignServer((request) => brief.handle(request));
    try {
      const store = s3Store({ endpoint: s3.endpoint, bucket: s3.bucket, prefix: 'sandboxes/a', policy, presigner: remotePresigner({ url: briefServer.url, token: await token(['write']), policy }) });
      await expect(store.put('k', new Uint8Array(1))).rejects.toMatchObject({ details: { code: 'URL_EXPIRES_TOO_SOON' } });
      expect(s3.requests.length).toBe(requests);
    } finally {
      await briefServer.close();
    }
    // Told that the store signs every request (reuseUrlsFor 0 on both), the 40 s token is fine.
    const store = storeWith(soon, 'sandboxes/a', { reuseUrlsFor: 0 });
    await store.put('soon', new Uint8Array([7]));
    expect(await store.head('soon')).toMatchObject({ size: 1 });
    await admin.delete(`${PREFIX}soon`);
  });
});

// ---------------------------------------------------------------------------
// The key rules, written out again from the rules alone

/** The key, then each form one more round of percent-decoding (%HH to U+00HH) makes, until it stops changing. */
function decodedForms(key: string): string[] {
  const forms = [key];
  for (;;) {
    const last = forms[forms.length - 1]!;
    let next = '';
    for (let i = 0; i < last.length; i++) {
      const hex = last.slice(i + 1, i + 3);
      if (last[i] === '%' && /^[0-9a-fA-F]{2}$/.test(hex)) {
        next += String.fromCharCode(Number.parseInt(hex, 16));
        i += 2;
      } else {
        next += last[i];
      }
    }
    if (next === last) return forms;
    forms.push(next);
  }
}

function hasLoneSurrogate(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
      else return true;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      return true;
    }
  }
  return false;
}

/**
 * Whether `key` lies under `prefix` by the rules: at most 1024 UTF-8 bytes,
 * no lone surrogate; it and every decoded form: under the prefix, no
 * control character (C0, DEL, C1), no backslash, as many slashes as the key
 * itself, and every segment after the prefix neither empty nor "." nor "..".
 * A LIST prefix (`list`) may end with "/" (or be the prefix itself).
 */
function liesUnder(key: string, prefix: string, list = false): boolean {
  if (Buffer.byteLength(key, 'utf8') > 1024 || hasLoneSurrogate(key)) return false;
  const slashCount = (s: string) => s.split('').filter((c) => c === '/').length;
  return decodedForms(key).every((form) => {
    if (!form.startsWith(prefix) || slashCount(form) !== slashCount(key)) return false;
    for (const c of form) {
      const code = c.codePointAt(0)!;
      if (code < 0x20 || (code >= 0x7f && code <= 0x9f) || c === '\\') return false;
    }
    const segments = form.slice(prefix.length).split('/');
    if (list && segments[segments.length - 1] === '') segments.pop();
    return segments.every((s) => s !== '' && s !== '.' && s !== '..');
  });
}

describe('the key rules, against a reference (fast-check)', () => {
  const pieces = fc.constantFrom(
    'sandboxes/a/', 'sandboxes/', 'sandboxes/ab/', 'sandboxes/b/', 'a', 'b', 'k', 'x.json', '/', '//', '.', '..', '...',
    '%', '%2', '%2e', '%2E', '%2f', '%2F', '%25', '%252e', '%252F', '%25252f', '%5c', '%5C', '%00', '%0A', '%1f', '%7f', '%85', '%c3%a9', '%41', '%zz',
    '\\', '\0', '\n', '\t', '\x7f', '\u0085', '\u00a0', 'é', '\uD800', '\uDC00', '😀', ' ', '-', '?', '#', '&', '=', '+', '~', 'x'.repeat(500),
  );
  const text = fc.array(fc.oneof({ weight: 4, arbitrary: pieces }, { weight: 1, arbitrary: fc.string({ maxLength: 3 }) }, { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 2 }) }), { maxLength: 10 })
    .map((parts) => parts.join(''));
  const keyArb = fc.tuple(fc.boolean(), text).map(([under, rest]) => (under ? PREFIX : '') + rest);

  it('signs a key iff it lies under the prefix, and then for exactly that key', async () => {
    const tok = await token(['write']);
    const seen = { signed: 0, refused: 0 };
    await fc.assert(
      fc.asyncProperty(keyArb, async (key) => {
        const answer = await ask(tok, { method: 'PUT', key });
        const expected = liesUnder(key, PREFIX);
        expect(answer.status, `${JSON.stringify(key)}: ${JSON.stringify(answer.body)}`).toBe(expected ? 200 : 403);
        if (expected) {
          seen.signed++;
          expect(new URL(answer.body.url as string).pathname).toBe(`/${s3.bucket}/${encodeKey(key)}`);
        } else {
          seen.refused++;
          expect(answer.body).toMatchObject({ code: key === '' ? 'REQUEST_NOT_ALLOWED' : 'KEY_NOT_ALLOWED' }); // '' is the bucket
          expect(answer.body.url).toBeUndefined();
        }
      }),
      { numRuns: 600 },
    );
    expect(seen.signed).toBeGreaterThan(50);
    expect(seen.refused).toBeGreaterThan(50);
  });

  it('signs a LIST iff its prefix lies under the token prefix', async () => {
    const tok = await token(['read']);
    await fc.assert(
      fc.asyncProperty(keyArb, async (prefix) => {
        const answer = await ask(tok, { method: 'GET', key: '', query: { 'list-type': '2', prefix } });
        expect(answer.status, JSON.stringify(prefix)).toBe(liesUnder(prefix, PREFIX, true) ? 200 : 403);
      }),
      { numRuns: 300 },
    );
  });
});
