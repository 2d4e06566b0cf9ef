/**
 * The streaming multipart uploader against a real S3-compatible server
 * (s3rver on 127.0.0.1) behind a fault-injecting proxy that also enforces
 * R2's part rules and checks every SigV4 presigned URL; against real R2
 * (Miniflare's, through the binding API); and against a local directory.
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { Miniflare } from 'miniflare';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { awsPresigner, BackupError, r2Store, s3Store, StreamUpload, type ObjectStore, type Presigner, type R2BucketLike } from '../src/index.js';
import { RequestPolicy } from '../src/uploader/policy.js';
import { localStore } from '../src/node/index.js';
import { ACCESS_KEY, SECRET_KEY, startS3, type Fault, type S3Harness } from './helpers/s3-server.js';
import { pseudoRandomBytes } from './helpers/tree.js';

const MiB = 1024 * 1024;
const FAST_RETRY = { attempts: 8, baseDelayMs: 5, maxDelayMs: 50 };

let s3: S3Harness;
let work: string;
beforeAll(async () => {
  s3 = await startS3();
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'sqfs-upload-'));
});
afterAll(async () => {
  await s3?.close();
  await fsp.rm(work, { recursive: true, force: true });
});
beforeEach(() => s3.reset());

const viaProxy = () => s3Store({ endpoint: s3.endpoint, bucket: s3.bucket, accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY, policy: FAST_RETRY });
const direct = () => s3Store({ endpoint: s3.direct, bucket: s3.bucket, accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY });

/** Streams `data` in uneven chunks (as the writer does), patching `head` over its start at the end. */
async function upload(store: ObjectStore, key: string, data: Uint8Array, options: Partial<ConstructorParameters<typeof StreamUpload>[0]> = {}, head?: Uint8Array) {
  const up = new StreamUpload({ store, key, partSize: 5 * MiB, ...options });
  let at = 0;
  for (let i = 0; at < data.length; i++) {
    const n = Math.min(data.length - at, [4096, 131072, 1_000_003, 77][i % 4]!);
    await up.write(data.subarray(at, at + n));
    at += n;
  }
  if (head) up.patchHead(head);
  return up.complete();
}

async function readAll(store: ObjectStore, key: string): Promise<Uint8Array> {
  const stream = await store.get(key);
  if (!stream) throw new Error(`${key} is missing`);
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Compares big byte arrays without asking the test runner for a diff of millions of elements. */
function expectSame(actual: Uint8Array, wanted: Uint8Array): void {
  const differs = actual.length !== wanted.length ? 0 : actual.findIndex((b, i) => b !== wanted[i]);
  expect(differs, `lengths ${actual.length} / ${wanted.length}; first difference at ${differs}`).toBe(-1);
}

function expected(data: Uint8Array, head: Uint8Array): Uint8Array {
  const out = data.slice();
  out.set(head, 0);
  return out;
}

describe('StreamUpload to S3 (s3rver behind the fault proxy)', () => {
  const data = pseudoRandomBytes(23 * MiB + 1234, 11);
  const head = pseudoRandomBytes(96, 12);

  it('uploads parts of equal size out of order, part 1 once its head is patched, after every whole part started; the object is byte-identical', async () => {
    const result = await upload(viaProxy(), 'a/image.sqfs', data, { concurrency: 3 }, head);
    expect(result).toMatchObject({ size: data.length, parts: 5, partSize: 5 * MiB });
    expectSame(await readAll(direct(), 'a/image.sqfs'), expected(data, head));
    expect(s3.violations).toEqual([]);
    const [record] = [...s3.uploads.values()];
    expect(record!.state).toBe('completed');
    // Part 1 (the superblock) is sent only once its head is patched: after every whole part has been
    // handed out, beside the last, partial one (handed out by complete()).
    const started = s3.requests.filter((r) => r.op === 'part').map((r) => r.partNumber);
    expect(started.slice(-2)).toContain(1);
    expect(started.indexOf(1)).toBeGreaterThanOrEqual(3);
    expect(record!.arrivals).toContain(1);
    expect([...record!.sizes.values()].filter((s) => s !== 5 * MiB)).toEqual([3 * MiB + 1234]);
    // The head check came after completing.
    expect(s3.requests.map((r) => r.op).slice(-2)).toEqual(['complete', 'head']);
  });

  it('sends a stream shorter than one part as a single PUT', async () => {
    const small = pseudoRandomBytes(300_000, 13);
    const result = await upload(viaProxy(), 'small.sqfs', small, {}, head);
    expect(result.parts).toBe(0);
    expect(s3.requests.map((r) => r.op)).toEqual(['put']);
    expectSame(await readAll(direct(), 'small.sqfs'), expected(small, head));
  });

  it('creates its upload at once when expected to need parts; one that comes out small is a PUT, the upload aborted', async () => {
    const small = pseudoRandomBytes(300_000, 16);
    const result = await upload(viaProxy(), 'smaller-than-expected.sqfs', small, { expectedSize: 40 * MiB }, head);
    expect(result.parts).toBe(0);
    expect(s3.requests.map((r) => r.op).sort()).toEqual(['abort', 'create', 'put']);
    expect(s3.openUploads()).toEqual([]);
    expectSame(await readAll(direct(), 'smaller-than-expected.sqfs'), expected(small, head));
    s3.reset();
    await upload(viaProxy(), 'as-expected.sqfs', data, { expectedSize: data.length }, head);
    expect(s3.requests[0]!.op).toBe('create');
    expect(s3.openUploads()).toEqual([]);
  });

  it('a stream of exactly one part is a single PUT; of exactly three parts, three equal parts', async () => {
    const one = pseudoRandomBytes(5 * MiB, 14);
    expect((await upload(viaProxy(), 'exact-1.sqfs', one, {}, head)).parts).toBe(0);
    expectSame(await readAll(direct(), 'exact-1.sqfs'), expected(one, head));
    const three = pseudoRandomBytes(15 * MiB, 15);
    expect((await upload(viaProxy(), 'exact-3.sqfs', three, {}, head)).parts).toBe(3);
    expectSame(await readAll(direct(), 'exact-3.sqfs'), expected(three, head));
    expect(s3.violations).toEqual([]);
  });

  it('rides out transient faults on a fifth of the requests (500, 503, 429, resets, slow answers, <Error> on complete)', async () => {
    let seed = 7;
    const random = () => {
      // mulberry32
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
    };
    const kinds: Fault[] = [{ status: 500 }, { status: 503 }, { status: 429 }, { reset: true }, { delayMs: 300 }, { completeError: true }];
    const injected = new Map<string, number>();
    s3.faults = (r) => {
      const fault = r.op === 'complete' && r.n === 1 ? kinds[5] : random() < 0.2 ? kinds[Math.floor(random() * kinds.length)] : undefined;
      if (fault) injected.set(JSON.stringify(fault), (injected.get(JSON.stringify(fault)) ?? 0) + 1);
      return fault;
    };
    for (const key of ['faulty-1.sqfs', 'faulty-2.sqfs', 'faulty-3.sqfs']) {
      const result = await upload(viaProxy(), key, data, {}, head);
      expect(result.size).toBe(data.length);
    }
    expect([...injected.values()].reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(4);
    s3.faults = () => undefined;
    for (const key of ['faulty-1.sqfs', 'faulty-2.sqfs', 'faulty-3.sqfs']) expectSame(await readAll(direct(), key), expected(data, head));
    expect(s3.violations).toEqual([]);
    expect(s3.openUploads()).toEqual([]);
    expect([...s3.uploads.values()].map((u) => u.state)).toEqual(['completed', 'completed', 'completed']);
  });

  for (const [label, fault, attempts] of [
    ['a part that always answers 500', { status: 500 }, FAST_RETRY.attempts],
    ['a part answered 403 (fails at once)', { status: 403 }, 1],
  ] as const) {
    it(`${label}: BACKUP_CREATE_ERROR naming part and status, no object, no open upload`, async () => {
      s3.faults = (r) => (r.op === 'part' && r.partNumber === 3 ? (fault as Fault) : undefined);
      const error = await upload(viaProxy(), 'doomed.sqfs', data, {}, head).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BackupError);
      expect(error).toMatchObject({ code: 'BACKUP_CREATE_ERROR', part: 3, status: fault.status });
      expect((error as Error).message).toMatch(new RegExp(`part 3 \\(HTTP ${fault.status}\\)`));
      expect(s3.requests.filter((r) => r.op === 'part' && r.partNumber === 3)).toHaveLength(attempts);
      s3.faults = () => undefined;
      expect(await direct().head('doomed.sqfs')).toBeUndefined();
      expect(s3.openUploads()).toEqual([]);
      expect([...s3.uploads.values()].map((u) => u.state)).toEqual(['aborted']);
    });
  }

  it('an AbortSignal mid-upload cancels, aborts the multipart upload and leaves no object', async () => {
    const controller = new AbortController();
    s3.faults = (r) => (r.op === 'part' ? { delayMs: 200 } : undefined);
    const up = new StreamUpload({ store: viaProxy(), key: 'cancelled.sqfs', partSize: 5 * MiB, signal: controller.signal });
    const writing = (async () => {
      for (let i = 0; i < 40; i++) await up.write(data.subarray(0, MiB));
      return up.complete();
    })();
    setTimeout(() => controller.abort(new Error('user cancelled')), 150);
    const error = await writing.catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'BACKUP_CREATE_ERROR' });
    expect((error as Error).message).toMatch(/aborted/);
    await up.abort();
    s3.faults = () => undefined;
    expect(await direct().head('cancelled.sqfs')).toBeUndefined();
    expect(s3.openUploads()).toEqual([]);
  });

  it('keeps at most concurrency parts in flight, plus part 1', async () => {
    let inFlight = 0;
    let most = 0;
    const store = viaProxy();
    const counting: ObjectStore = {
      ...store,
      location: store.location,
      uploadPart: async (...args) => {
        most = Math.max(most, ++inFlight);
        try {
          return await store.uploadPart(...args);
        } finally {
          inFlight--;
        }
      },
    };
    await upload(counting, 'bounded.sqfs', data, { concurrency: 2 }, head);
    expect(most).toBeLessThanOrEqual(3);
    expect(most).toBeGreaterThanOrEqual(2);
  });

  it('the store lists, reads ranges, heads and deletes', async () => {
    const store = viaProxy();
    await store.put('list/x/one', new Uint8Array([1, 2, 3, 4, 5]));
    await store.put('list/y/two', new Uint8Array(10));
    const listed = [];
    for await (const item of store.list('list/')) listed.push(item);
    expect(listed).toEqual([{ key: 'list/x/one', size: 5 }, { key: 'list/y/two', size: 10 }]);
    expect(await store.getRange('list/x/one', 1, 3)).toEqual(new Uint8Array([2, 3, 4]));
    expect(await store.head('list/x/one')).toEqual({ key: 'list/x/one', size: 5 });
    await store.delete('list/x/one');
    expect(await store.head('list/x/one')).toBeUndefined();
    expect(await store.get('list/x/one')).toBeUndefined();
  });

  it('signs a URL once for many ranged GETs of one object, and part URLs ahead; reuseUrlsFor: 0 signs every request', async () => {
    const signer = awsPresigner({ endpoint: s3.endpoint, bucket: s3.bucket, accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY });
    const signed: string[] = [];
    const presigner: Presigner = async (req) => {
      signed.push(`${req.method} ${req.query?.partNumber ?? ''}`);
      return signer(req);
    };
    const store = s3Store({ endpoint: s3.endpoint, bucket: s3.bucket, presigner });
    await store.put('signed.bin', pseudoRandomBytes(4096, 17));
    for (let i = 0; i < 10; i++) await store.getRange('signed.bin', i * 100, 100);
    expect(signed.filter((s) => s.startsWith('GET'))).toHaveLength(1);
    signed.length = 0;
    await upload(store, 'signed-parts.sqfs', data, {}, head);
    const parts = signed.filter((s) => s.startsWith('PUT') && s !== 'PUT ');
    expect(new Set(parts).size).toBe(parts.length); // each part URL signed once
    const every = s3Store({ endpoint: s3.endpoint, bucket: s3.bucket, presigner, reuseUrlsFor: 0 });
    signed.length = 0;
    for (let i = 0; i < 3; i++) await every.getRange('signed.bin', 0, 10);
    expect(signed).toHaveLength(3);
    // A presigner elsewhere that signs for less than reuseUrlsFor: its URLs are not used past their expiry (less 10 s).
    const brief = awsPresigner({ endpoint: s3.endpoint, bucket: s3.bucket, accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY, expiresIn: 5 });
    const short = s3Store({ endpoint: s3.endpoint, bucket: s3.bucket, presigner: async (req) => (signed.push(req.method), brief(req)) });
    signed.length = 0;
    for (let i = 0; i < 3; i++) await short.getRange('signed.bin', 0, 10);
    expect(signed).toHaveLength(3);
  });

  it('a wrong secret is refused by the proxy (403 SignatureDoesNotMatch), not retried', async () => {
    const wrong = s3Store({ endpoint: s3.endpoint, bucket: s3.bucket, accessKeyId: ACCESS_KEY, secretAccessKey: 'not-the-secret' });
    const error = await upload(wrong, 'x.sqfs', new Uint8Array(10)).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'BACKUP_CREATE_ERROR', status: 403 });
    expect((error as Error).message).toMatch(/SignatureDoesNotMatch/);
  });
});

describe('StreamUpload to a local directory', () => {
  it('writes parts in place in a temp file, renames it when complete; abort leaves nothing', async () => {
    const dir = path.join(work, 'local');
    const store = localStore(dir);
    const data = pseudoRandomBytes(12 * MiB + 5, 21);
    const head = new Uint8Array(96).fill(9);
    await upload(store, 'k/image.sqfs', data, {}, head);
    expectSame(new Uint8Array(await fsp.readFile(path.join(dir, 'k/image.sqfs'))), expected(data, head));
    const up = new StreamUpload({ store, key: 'k/aborted.sqfs', partSize: 5 * MiB });
    await up.write(data);
    await up.abort();
    expect(await store.head('k/aborted.sqfs')).toBeUndefined();
    expect(await fsp.readdir(path.join(dir, '.uploads'))).toEqual([]);
    const listed = [];
    for await (const item of store.list('')) listed.push(item.key);
    expect(listed).toEqual(['k/image.sqfs']);
    expectSame(await store.getRange('k/image.sqfs', 100, 4), data.subarray(100, 104));
    await expect(store.put('../escape', new Uint8Array(1))).rejects.toMatchObject({ code: 'INVALID_BACKUP_CONFIG' });
  });
});

describe('StreamUpload, any stream length and chunking (fast-check, local store)', () => {
  it('stores exactly the stream, head patched, in equal parts', async () => {
    const dir = path.join(work, 'property');
    const store = localStore(dir);
    const parts: number[][] = [];
    const recording: ObjectStore = {
      ...store,
      location: store.location,
      createMultipartUpload: async (key, size) => (parts.push([]), store.createMultipartUpload(key, size)),
      uploadPart: async (key, id, n, body) => (parts.at(-1)!.push(body.length), store.uploadPart(key, id, n, body)),
    };
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 96, max: 17 * MiB }),
        fc.array(fc.integer({ min: 1, max: 3 * MiB }), { minLength: 1, maxLength: 8 }),
        async (total, chunkSizes) => {
          const data = pseudoRandomBytes(total, run);
          const head = new Uint8Array(96).fill(run & 0xff);
          const key = `p/${run++}.bin`;
          const up = new StreamUpload({ store: recording, key, partSize: 5 * MiB, concurrency: 2 });
          for (let at = 0, i = 0; at < total; i++) {
            const n = Math.min(total - at, chunkSizes[i % chunkSizes.length]!);
            await up.write(data.subarray(at, at + n));
            at += n;
          }
          up.patchHead(head);
          const result = await up.complete();
          expect(result.size).toBe(total);
          expectSame(new Uint8Array(await fsp.readFile(path.join(dir, key))), expected(data, head));
          if (result.parts > 0) {
            const sizes = parts.at(-1)!;
            expect(sizes.length).toBe(result.parts);
            expect(sizes.filter((s) => s !== 5 * MiB).length).toBeLessThanOrEqual(1);
          }
        },
      ),
      { numRuns: 10 },
    );
  });
});

describe('StreamUpload to R2 (Miniflare, through the binding API)', () => {
  it('uploads a multipart stream and reads it back by range', async () => {
    const mf = new Miniflare({ modules: true, script: 'export default { fetch() { return new Response(null) } }', r2Buckets: ['BUCKET'], cf: false });
    try {
      const bucket = (await mf.getR2Bucket('BUCKET')) as unknown as R2BucketLike;
      const store = r2Store(bucket, { prefix: 'backups' });
      const data = pseudoRandomBytes(11 * MiB + 17, 31);
      const head = new Uint8Array(96).fill(3);
      await upload(store, 'r2.sqfs', data, {}, head);
      expect(await store.head('r2.sqfs')).toEqual({ key: 'r2.sqfs', size: data.length });
      expectSame(await store.getRange('r2.sqfs', 0, 100), expected(data, head).subarray(0, 100));
      expectSame(await store.getRange('r2.sqfs', 6 * MiB, 10), data.subarray(6 * MiB, 6 * MiB + 10));
    } finally {
      await mf.dispose();
    }
  });
});

describe('the request policy, many requests on one signal', () => {
  it('waits on a shared signal without a leak warning, and an abort still ends every request', async () => {
    const policy = new RequestPolicy({ baseDelayMs: 5, maxDelayMs: 20, requestTimeout: 10_000 });
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    try {
      const controller = new AbortController();
      // 24 at once: Node warns past 10 listeners a signal.
      const never = () => new Promise<never>(() => undefined);
      const running = Array.from({ length: 24 }, (_, i) => policy.run({ operation: 'get', key: `k${i}` }, never, controller.signal));
      const answered = await Promise.all(Array.from({ length: 24 }, (_, i) => policy.run({ operation: 'get', key: `ok${i}` }, async () => i, controller.signal)));
      expect(answered).toEqual(Array.from({ length: 24 }, (_, i) => i));
      await new Promise((resolve) => setTimeout(resolve, 20)); // warnings are emitted on a later tick
      controller.abort(new Error('stopped by the caller'));
      const settled = await Promise.allSettled(running);
      expect(settled.every((s) => s.status === 'rejected' && (s.reason as Error).message === 'stopped by the caller')).toBe(true);
      expect(warnings.map((w) => w.name)).not.toContain('MaxListenersExceededWarning');
    } finally {
      process.off('warning', onWarning);
    }
  });
});
