/**
 * Every store request goes through one retry and timeout policy (issue #13,
 * contract section 6): create, part, complete, abort, put, head, get, ranged
 * get, list, delete, on S3 (s3rver behind the fault proxy) and on the R2
 * binding (Miniflare's). Faults are injected on one request in five of every
 * kind (deterministically, see oneInFive), and singly where a test needs to
 * see what one retry did: a body cut off half way is resumed from where it
 * stopped, a stall is abandoned after requestTimeout, Retry-After is waited
 * out, a 4xx is not retried, and a fault that does not go away fails with a
 * coded error and leaves nothing behind.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Miniflare } from 'miniflare';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  BackupError, deleteBackup, listBackups, openBackup, pruneExpiredBackups, r2Store, s3Store, StoreError,
  type DirectoryBackup, type ObjectStore, type R2BucketLike, type R2MultipartUploadLike, type RequestPolicyOptions,
} from '../src/index.js';
import { createBackup, restoreBackup } from '../src/node/index.js';
import { compareTrees } from './helpers/oracles.js';
import {
  ACCESS_KEY, oneInFive, requestClass, SECRET_KEY, startS3, TRANSIENT_FAULTS, type Fault, type ProxyRequest, type S3Harness,
} from './helpers/s3-server.js';
import { compressibleBytes, pseudoRandomBytes } from './helpers/tree.js';

const MiB = 1024 * 1024;
/** Quick backoff, and a stall is given up after half a second. */
const FAST: RequestPolicyOptions = { baseDelayMs: 5, maxDelayMs: 50, requestTimeout: 500 };
/** For faults that never go away: three tries. */
const THREE_TRIES: RequestPolicyOptions = { attempts: 3, baseDelayMs: 5, maxDelayMs: 20, requestTimeout: 2000 };
const UPLOAD = { partSize: 5 * MiB };
const DOWNLOAD = { rangeSize: MiB, concurrency: 4 };
const BIG = 9 * MiB + 4321;

let s3: S3Harness;
let work: string;
/** A few MiB: a 9 MiB file (several ranges, two parts), a smaller one, text, links, modes, an empty dir. */
let source: string;
/** Below one part: a single PUT. */
let small: string;

beforeAll(async () => {
  s3 = await startS3();
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'sqfs-transfers-'));
  source = path.join(work, 'source');
  const files: [string, Uint8Array | string, number][] = [
    ['big.bin', pseudoRandomBytes(BIG, 1), 0o644],
    ['medium.bin', pseudoRandomBytes(2 * MiB + 17, 2), 0o600],
    ['text/notes.txt', compressibleBytes(600_000, 3), 0o640],
    ['text/empty.txt', '', 0o444],
    ['bin/run.sh', '#!/bin/sh\necho hello\n', 0o755],
    ['deep/a/b/c/leaf.json', '{"leaf": true}\n', 0o644],
  ];
  for (const [name, content, mode] of files) {
    await fsp.mkdir(path.dirname(path.join(source, name)), { recursive: true });
    await fsp.writeFile(path.join(source, name), content);
    await fsp.chmod(path.join(source, name), mode);
  }
  await fsp.mkdir(path.join(source, 'empty-dir'));
  await fsp.chmod(path.join(source, 'empty-dir'), 0o700);
  await fsp.mkdir(path.join(source, 'links'));
  await fsp.symlink('../big.bin', path.join(source, 'links/to-big'));
  await fsp.symlink('../text', path.join(source, 'links/to-dir'));
  await fsp.symlink('../nowhere', path.join(source, 'links/dangling'));
  await fsp.link(path.join(source, 'medium.bin'), path.join(source, 'hard-link.bin'));
  await fsp.utimes(path.join(source, 'text/notes.txt'), 1_000_000_000, 1_000_000_000);
  await fsp.utimes(path.join(source, 'deep/a'), 1_200_000_000, 1_200_000_000);

  small = path.join(work, 'small');
  await fsp.mkdir(small);
  await fsp.writeFile(path.join(small, 'one.txt'), 'one\n');
  await fsp.writeFile(path.join(small, 'two.bin'), pseudoRandomBytes(300_000, 4));
});
afterAll(async () => {
  await s3?.close();
  if (work) await fsp.rm(work, { recursive: true, force: true });
});

const viaProxy = (prefix: string, policy: RequestPolicyOptions = FAST) =>
  s3Store({ endpoint: s3.endpoint, bucket: s3.bucket, prefix, accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY, policy });
/** Straight to s3rver: no faults, no proxy. */
const direct = (prefix: string) => s3Store({ endpoint: s3.direct, bucket: s3.bucket, prefix, accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY });

async function keys(store: ObjectStore): Promise<string[]> {
  const out: string[] = [];
  for await (const item of store.list('')) out.push(item.key);
  return out.sort();
}

async function readAll(store: ObjectStore, key: string): Promise<Buffer> {
  const stream = await store.get(key);
  if (!stream) throw new Error(`${key} is missing`);
  return Buffer.from(await new Response(stream).arrayBuffer());
}

/** The handle's sha256: the image with its 96-byte superblock hashed last. */
const superblockLastSha256 = (image: Buffer) => createHash('sha256').update(image.subarray(96)).update(image.subarray(0, 96)).digest('hex');

/** Compares big byte arrays without a diff of millions of elements. */
function expectSame(actual: Uint8Array, wanted: Uint8Array): void {
  const differs = actual.length !== wanted.length ? 0 : Buffer.compare(Buffer.from(actual.buffer, actual.byteOffset, actual.length), Buffer.from(wanted.buffer, wanted.byteOffset, wanted.length));
  expect(differs, `lengths ${actual.length} / ${wanted.length}`).toBe(0);
}

function parseRange(range: string | undefined): { start: number; end: number | undefined } {
  const m = /^bytes=(\d+)-(\d*)$/.exec(range ?? '');
  if (!m) throw new Error(`not a byte range: ${range}`);
  return { start: Number(m[1]), end: m[2] ? Number(m[2]) : undefined };
}

/** The errors along `cause`, outermost first. */
function causes(error: unknown): unknown[] {
  const out: unknown[] = [];
  for (let e = error; e !== undefined && out.length < 10; e = (e as { cause?: unknown }).cause) out.push(e);
  return out;
}

const storeError = (error: unknown) => causes(error).find((e): e is StoreError => e instanceof StoreError);

/** A fresh directory to restore into, holding a file the restore must not touch when it fails. */
async function precious(): Promise<{ dir: string; untouched: () => Promise<void> }> {
  const dir = path.join(work, `target-${Math.random().toString(36).slice(2)}`);
  await fsp.mkdir(path.join(dir, 'sub'), { recursive: true });
  await fsp.writeFile(path.join(dir, 'precious.txt'), 'keep me\n');
  return {
    dir,
    untouched: async () => {
      expect((await fsp.readdir(dir)).sort()).toEqual(['precious.txt', 'sub']);
      expect(await fsp.readFile(path.join(dir, 'precious.txt'), 'utf8')).toBe('keep me\n');
      const beside = (await fsp.readdir(work)).filter((n) => n.startsWith(`.${path.basename(dir)}`));
      expect(beside, 'staging files or directories left beside the target').toEqual([]);
    },
  };
}

const faultName = (fault: Fault) => Object.keys(fault).filter((k) => k !== 'maxMs' && k !== 'retryAfter').map((k) => (k === 'status' ? `status ${(fault as { status: number }).status}` : k))[0]!;

describe('one request in five fails, of every kind (S3 behind the fault proxy)', () => {
  const prefix = 'five';
  const store = () => viaProxy(prefix);
  let first: DirectoryBackup;
  let second: DirectoryBackup;
  beforeAll(() => {
    s3.reset();
    s3.faults = oneInFive();
  });
  afterAll(() => s3.reset());

  it('createBackup: a multipart image and a single-PUT one are stored whole, with their metadata', async () => {
    first = await createBackup({ dir: source, store: store(), name: 'big', ttl: 3600, compression: 'zstd', upload: UPLOAD });
    second = await createBackup({ dir: small, store: store(), name: 'small', ttl: 60, compression: 'gzip', upload: UPLOAD });
    expect(first.size).toBeGreaterThan(10 * MiB);
    expect(second.size).toBeLessThan(5 * MiB);
    expect(await keys(direct(prefix))).toEqual([first.key, `${first.id}.json`, second.key, `${second.id}.json`].sort());
    for (const backup of [first, second]) {
      const image = await readAll(direct(prefix), backup.key);
      expect(image.length).toBe(backup.size);
      expect(superblockLastSha256(image)).toBe(backup.sha256);
      expect(JSON.parse((await readAll(direct(prefix), `${backup.id}.json`)).toString())).toEqual(backup);
    }
    expect(s3.violations).toEqual([]);
    expect(s3.openUploads()).toEqual([]);
    expect([...s3.uploads.values()].map((u) => u.state)).toEqual(['completed']);
  });

  it('restoreBackup by id: the tree comes back exactly, fetched by ranged GETs', async () => {
    const target = path.join(work, 'five-restored');
    const result = await restoreBackup(first.id, { store: store(), dir: target, download: DOWNLOAD });
    expect(result.dir).toBe(target);
    expect(await compareTrees(source, target)).toEqual([]);
    const gets = s3.requests.filter((r) => r.op === 'get' && r.key === `${prefix}/${first.key}`);
    expect(gets.filter((r) => !r.range), 'whole-object GETs of the image').toEqual([]);
    expect(new Set(gets.map((r) => r.range)).size).toBeGreaterThanOrEqual(Math.ceil(first.size / MiB));
  });

  it('openBackup: readFile, readdir and stat give the source bytes and modes', async () => {
    const image = await openBackup(first, { store: store() });
    expectSame(await image.readFile('/big.bin'), await fsp.readFile(path.join(source, 'big.bin')));
    expectSame(await image.readFile('/text/notes.txt'), await fsp.readFile(path.join(source, 'text/notes.txt')));
    expect((await image.readdir('/')).map((e) => e.name).sort()).toEqual((await fsp.readdir(source)).sort());
    expect((await image.stat('/bin/run.sh')).mode & 0o7777).toBe(0o755);
    expect(new TextDecoder().decode(await image.readlink('/links/to-big'))).toBe('../big.bin');
  });

  it('listBackups: both, oldest first, as they were made', async () => {
    expect(await listBackups({ store: store() })).toEqual([first, second]);
  });

  it('pruneExpiredBackups: removes exactly the expired one, image and metadata', async () => {
    const pruned = await pruneExpiredBackups({ store: store(), now: Date.parse(second.expiresAt) + 1000 });
    expect(pruned).toEqual([second]);
    expect(await keys(direct(prefix))).toEqual([first.key, `${first.id}.json`].sort());
    expect(await listBackups({ store: store() })).toEqual([first]);
  });

  it('deleteBackup: leaves nothing behind', async () => {
    await deleteBackup(first.id, { store: store() });
    expect(await keys(direct(prefix))).toEqual([]);
    expect(await listBackups({ store: store() })).toEqual([]);
  });

  it('the faults fell on every kind of request, and every kind of fault was used', () => {
    const byClass = new Map<string, Set<string>>();
    for (const r of s3.faulted()) {
      const name = requestClass(r);
      if (!byClass.has(name)) byClass.set(name, new Set());
      byClass.get(name)!.add(faultName(r.fault!));
    }
    const summary = Object.fromEntries([...byClass].map(([k, v]) => [k, [...v].sort()]));
    for (const kind of ['create', 'part', 'complete', 'put', 'put:json', 'head', 'get:range', 'get:json', 'list', 'delete']) {
      expect(byClass.has(kind), `no fault on ${kind}: ${JSON.stringify(summary)}`).toBe(true);
    }
    const used = new Set([...byClass.values()].flatMap((s) => [...s]));
    expect([...used].sort()).toEqual([...new Set(TRANSIENT_FAULTS.map(faultName))].sort());
    // The two faults a ranged read must ride out in the middle of a transfer.
    expect([...byClass.get('get:range')!]).toEqual(expect.arrayContaining(['dropBody', 'stall']));
    // About one in five, not fewer.
    expect(s3.faulted().length).toBeGreaterThanOrEqual(Math.floor(s3.requests.length / 5) - byClass.size);
  });
});

describe('what one retry does', () => {
  const prefix = 'single';
  let backup: DirectoryBackup;
  let imageKey: string;
  beforeAll(async () => {
    s3.reset();
    backup = await createBackup({ dir: source, store: viaProxy(prefix), upload: UPLOAD });
    imageKey = `${prefix}/${backup.key}`;
  });
  beforeEach(() => s3.reset());

  /** The faulted request, and the requests for bytes of its range made after it. */
  function retriesOf(faulted: ProxyRequest) {
    const { start, end } = parseRange(faulted.range);
    const later = s3.requests.slice(s3.requests.indexOf(faulted) + 1).filter((r) => r.op === 'get' && r.key === faulted.key && r.range);
    return { start, end: end!, later: later.filter((r) => parseRange(r.range).start >= start && parseRange(r.range).start <= end!) };
  }

  it('restore: a ranged GET cut off half way resumes from the byte where it stopped, not from the range start', async () => {
    let done = false;
    s3.faults = (r) => {
      if (done || r.op !== 'get' || r.key !== imageKey || !r.range) return undefined;
      const { start, end } = parseRange(r.range);
      // A range of the data region, not the first one: its start is neither 0 nor where a restart would begin.
      if (start === 0 || end === undefined || end - start + 1 < 256 * 1024) return undefined;
      done = true;
      return { dropBody: true };
    };
    const target = path.join(work, 'resumed-restore');
    await restoreBackup(backup, { store: viaProxy(prefix), dir: target, download: DOWNLOAD });
    expect(await compareTrees(source, target)).toEqual([]);
    const [faulted] = s3.faulted();
    expect(faulted, 'no ranged GET was cut off').toBeDefined();
    const { start, end, later } = retriesOf(faulted!);
    const sent = Math.floor((end - start + 1) / 2);
    expect(later.length, 'the cut-off range was not asked for again').toBeGreaterThanOrEqual(1);
    const resumed = parseRange(later[0]!.range);
    expect(resumed.start, `resumed at ${resumed.start}, the range was ${start}-${end}`).toBeGreaterThan(start);
    expect(resumed.start).toBeLessThanOrEqual(start + sent);
    expect(resumed.end ?? end).toBe(end);
    expect(later.filter((r) => parseRange(r.range).start === start), 'fetched again from the range start').toEqual([]);
  });

  it('openBackup().readFile: a data block cut off half way resumes from where it stopped', async () => {
    const image = await openBackup(backup, { store: viaProxy(prefix) });
    let done = false;
    s3.faults = (r) => {
      if (done || r.op !== 'get' || !r.range) return undefined;
      const { start, end } = parseRange(r.range);
      if (end === undefined || end - start + 1 < 64 * 1024) return undefined;
      done = true;
      return { dropBody: true };
    };
    expectSame(await image.readFile('/big.bin'), await fsp.readFile(path.join(source, 'big.bin')));
    const [faulted] = s3.faulted();
    expect(faulted, 'no block read was cut off').toBeDefined();
    const { start, end, later } = retriesOf(faulted!);
    expect(later.length).toBeGreaterThanOrEqual(1);
    const resumed = parseRange(later[0]!.range);
    expect(resumed.start).toBeGreaterThan(start);
    expect(resumed.start).toBeLessThanOrEqual(start + Math.floor((end - start + 1) / 2));
  });

  it('a stalled HEAD (nothing answered) is abandoned after requestTimeout and tried again', async () => {
    s3.faults = (r) => (r.op === 'head' && r.n === 1 ? { stall: true, maxMs: 20_000 } : undefined);
    const started = performance.now();
    const image = await openBackup(backup, { store: viaProxy(prefix, { ...FAST, requestTimeout: 300 }) });
    expect((await image.stat('/big.bin')).size).toBe(BIG);
    const heads = s3.requests.filter((r) => r.op === 'head');
    expect(heads).toHaveLength(2);
    // The client's clock starts before the proxy sees the request (signing, connecting): the gap there is a little shorter.
    expect(heads[1]!.at - heads[0]!.at).toBeGreaterThanOrEqual(200);
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(290);
    // Well before the proxy's own cap (20 s) would have broken the connection.
    expect(elapsed).toBeLessThan(5000);
  }, 15_000);

  it('a ranged GET that stalls after its headers is abandoned after requestTimeout and tried again', async () => {
    const image = await openBackup(backup, { store: viaProxy(prefix, { ...FAST, requestTimeout: 300 }) });
    s3.reset();
    s3.faults = (r) => (r.op === 'get' && r.range && r.n === 1 ? { stall: true, maxMs: 20_000 } : undefined);
    const started = performance.now();
    expectSame(await image.readFile('/medium.bin'), await fsp.readFile(path.join(source, 'medium.bin')));
    const elapsed = performance.now() - started;
    const [stalled] = s3.faulted();
    expect(stalled).toBeDefined();
    const again = s3.requests.filter((r) => r !== stalled && r.op === 'get' && r.range === stalled!.range);
    expect(again, 'the stalled range was not asked for again').toHaveLength(1);
    expect(again[0]!.at - stalled!.at).toBeGreaterThanOrEqual(200);
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(5000);
  }, 15_000);

  it('Retry-After is waited out, even when the backoff would be shorter', async () => {
    s3.faults = (r) => (r.op === 'head' && r.n === 1 ? { status: 503, retryAfter: 1 } : undefined);
    await openBackup(backup, { store: viaProxy(prefix) });
    const heads = s3.requests.filter((r) => r.op === 'head');
    expect(heads).toHaveLength(2);
    expect(heads[1]!.at - heads[0]!.at).toBeGreaterThanOrEqual(950);
  });

  it('restore fetches by ranged GETs, several at once, at most `concurrency` (and the tables beside them)', async () => {
    s3.faults = (r) => (r.op === 'get' && r.key === imageKey ? { delayMs: 100 } : undefined);
    const target = path.join(work, 'parallel-restore');
    await restoreBackup(backup, { store: viaProxy(prefix), dir: target, download: { rangeSize: MiB, concurrency: 3 } });
    expect(await compareTrees(source, target)).toEqual([]);
    const gets = s3.requests.filter((r) => r.op === 'get' && r.key === imageKey);
    expect(gets.every((r) => r.range)).toBe(true);
    // Every byte of the image is fetched, none of it twice (but for a few small reads such as the superblock), in ranges of at most rangeSize.
    const ranges = gets.map((r) => parseRange(r.range)).map((r) => ({ start: r.start, end: r.end ?? backup.size - 1 }));
    expect(Math.max(...ranges.map((r) => r.end - r.start + 1))).toBeLessThanOrEqual(MiB);
    let covered = 0;
    for (const r of [...ranges].sort((a, b) => a.start - b.start)) {
      expect(r.start, `a gap before byte ${r.start}`).toBeLessThanOrEqual(covered);
      covered = Math.max(covered, r.end + 1);
    }
    expect(covered).toBe(backup.size);
    expect(ranges.reduce((sum, r) => sum + r.end - r.start + 1, 0)).toBeLessThanOrEqual(backup.size + 64 * 1024);
    // `concurrency` ranges of the data, and beside them the tables (fetched at once, for the walk).
    const most = Math.max(...gets.map((r) => r.inFlight));
    expect(most).toBeGreaterThanOrEqual(2);
    expect(most).toBeLessThanOrEqual(3 + 1);
  });
});

describe('a fault that does not go away: a coded error, and nothing left behind', () => {
  beforeEach(() => s3.reset());

  it.each([
    ['every part answers 500', (r: ProxyRequest) => r.op === 'part', /part/i, /\.sqfs/, (rs: ProxyRequest[]) => Math.max(...countBy(rs.filter((r) => r.op === 'part'), (r) => r.partNumber!).values())],
    ['the complete answers 500', (r: ProxyRequest) => r.op === 'complete', /complete/i, /\.sqfs/, (rs: ProxyRequest[]) => rs.filter((r) => r.op === 'complete').length],
    ['the metadata put answers 500', (r: ProxyRequest) => r.op === 'put' && r.key.endsWith('.json'), /put/i, /\.json/, (rs: ProxyRequest[]) => rs.filter((r) => r.op === 'put').length],
  ])('createBackup where %s: BACKUP_CREATE_ERROR naming operation, key and status', async (label, faulty, operation, key, tries) => {
    const prefix = `doomed-${label.split(' ')[1]}`;
    s3.faults = (r) => (faulty(r) ? { status: 500 } : undefined);
    const error = await createBackup({ dir: source, store: viaProxy(prefix, THREE_TRIES), upload: UPLOAD }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackupError);
    expect(error).toMatchObject({ code: 'BACKUP_CREATE_ERROR' });
    const message = (error as Error).message;
    expect(message).toMatch(operation);
    expect(message).toMatch(key);
    expect(message).toMatch(/\b500\b/);
    const cause = storeError(error);
    expect(cause, 'a StoreError in the cause chain').toBeDefined();
    expect(cause!.status).toBe(500);
    expect(cause!.details.operation).toMatch(operation);
    expect(cause!.details.key).toMatch(key);
    expect(tries(s3.requests), 'tries of the failing request').toBe(3);
    s3.faults = () => undefined;
    expect(await keys(direct(prefix)), 'objects left in the bucket').toEqual([]);
    expect(s3.openUploads()).toEqual([]);
  });

  it('restoreBackup where every ranged GET answers 500: BACKUP_RESTORE_ERROR, the target untouched, no staging left', async () => {
    const prefix = 'doomed-restore';
    const backup = await createBackup({ dir: source, store: viaProxy(prefix), upload: UPLOAD });
    s3.reset();
    s3.faults = (r) => (r.op === 'get' && r.key === `${prefix}/${backup.key}` ? { status: 500 } : undefined);
    const { dir, untouched } = await precious();
    const error = await restoreBackup(backup, { store: viaProxy(prefix, THREE_TRIES), dir, download: DOWNLOAD }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackupError);
    expect(error).toMatchObject({ code: 'BACKUP_RESTORE_ERROR' });
    expect((error as Error).message).toMatch(/\b500\b/);
    expect((error as Error).message).toContain(backup.key);
    expect(storeError(error)?.status).toBe(500);
    const gets = s3.requests.filter((r) => r.op === 'get' && r.key === `${prefix}/${backup.key}`);
    expect(gets.every((r) => r.range), 'whole-object GETs of the image').toBe(true);
    expect(Math.max(...countBy(gets, (r) => r.range!).values())).toBe(3);
    await untouched();
  });
});

describe('a 4xx is not retried', () => {
  const prefix = 'forbidden';
  let backup: DirectoryBackup;
  beforeAll(async () => {
    s3.reset();
    backup = await createBackup({ dir: source, store: viaProxy(prefix), upload: UPLOAD });
  });
  beforeEach(() => s3.reset());

  it('a part answered 403: BACKUP_CREATE_ERROR at once, the part sent once, the upload aborted', async () => {
    s3.faults = (r) => (r.op === 'part' && r.partNumber === 2 ? { status: 403 } : undefined);
    const error = await createBackup({ dir: source, store: viaProxy('forbidden-part'), upload: UPLOAD }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'BACKUP_CREATE_ERROR' });
    expect((error as Error).message).toMatch(/\b403\b/);
    expect(storeError(error)?.status).toBe(403);
    expect(s3.requests.filter((r) => r.op === 'part' && r.partNumber === 2)).toHaveLength(1);
    s3.faults = () => undefined;
    expect(await keys(direct('forbidden-part'))).toEqual([]);
    expect(s3.openUploads()).toEqual([]);
  });

  it('a ranged GET answered 403 during restore: BACKUP_RESTORE_ERROR at once, asked once, the target untouched', async () => {
    s3.faults = (r) => (r.op === 'get' && r.range && r.n === 1 ? { status: 403 } : undefined);
    const { dir, untouched } = await precious();
    const error = await restoreBackup(backup, { store: viaProxy(prefix), dir, download: DOWNLOAD }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'BACKUP_RESTORE_ERROR' });
    expect(storeError(error)?.status).toBe(403);
    const [faulted] = s3.faulted();
    expect(s3.requests.filter((r) => r.op === 'get' && r.range === faulted!.range)).toHaveLength(1);
    await untouched();
  });

  it.each([
    ['head', () => openBackup(backup, { store: viaProxy(prefix) })],
    ['list', () => listBackups({ store: viaProxy(prefix) })],
    ['delete', () => deleteBackup(backup.id, { store: viaProxy(prefix) })],
  ] as const)('a %s answered 403: fails with the status, asked once', async (op, run) => {
    s3.faults = (r) => (r.op === op ? { status: 403 } : undefined);
    const error = await run().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(storeError(error)?.status).toBe(403);
    expect(s3.requests.filter((r) => r.op === op)).toHaveLength(1);
  });
});

function countBy<T, K>(items: T[], key: (item: T) => K): Map<K, number> {
  const counts = new Map<K, number>();
  for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1);
  return counts;
}

/**
 * An R2 binding with the proxy's faults, as a binding shows them: a status
 * or a reset is a rejected call ("Network connection lost."), a stall a call
 * that never settles, a cut body a stream that breaks off half way. `pick`
 * is asked once per call, as the proxy asks its script once per request.
 */
function faultyBucket(bucket: R2BucketLike, pick: (request: ProxyRequest) => Fault | undefined) {
  const log: { op: string; key: string; fault?: string }[] = [];
  const lost = () => new Error('Network connection lost.');
  async function call<T>(op: ProxyRequest['op'], key: string, run: () => Promise<T>, range?: string): Promise<{ value: T; fault?: Fault }> {
    const fault = pick({ op, key, range, method: '', n: log.length + 1, at: performance.now(), inFlight: 0 });
    log.push({ op: range ? 'get:range' : op, key, fault: fault && faultName(fault) });
    if (fault && 'delayMs' in fault) await new Promise((r) => setTimeout(r, fault.delayMs));
    if (fault && 'stall' in fault) return new Promise<never>(() => undefined);
    if (fault && !('delayMs' in fault) && !('dropBody' in fault)) throw lost();
    return { value: await run(), fault };
  }
  const plain = async <T>(op: ProxyRequest['op'], key: string, run: () => Promise<T>) => (await call(op, key, run)).value;
  /** The object, but its body breaks off after the first half (which is delivered). */
  const cut = <O extends object>(object: O & { arrayBuffer(): Promise<ArrayBuffer> }): O => {
    const whole = object.arrayBuffer().then((b) => new Uint8Array(b));
    let pulls = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const bytes = await whole;
        if (pulls++ === 0) controller.enqueue(bytes.slice(0, Math.floor(bytes.length / 2)));
        else controller.error(lost());
      },
    });
    return new Proxy(object, {
      get(target, name) {
        if (name === 'body') return body;
        if (name === 'arrayBuffer' || name === 'text' || name === 'json' || name === 'blob' || name === 'bytes') return () => whole.then(() => Promise.reject(lost()));
        const value = Reflect.get(target, name, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  };
  const upload = (key: string, real: R2MultipartUploadLike): R2MultipartUploadLike => ({
    uploadId: real.uploadId,
    uploadPart: (n, value) => plain('part', key, () => real.uploadPart(n, value)),
    complete: (parts) => plain('complete', key, () => real.complete(parts)),
    abort: () => plain('abort', key, () => real.abort()),
  });
  const wrapped: R2BucketLike = {
    createMultipartUpload: async (key) => upload(key, await plain('create', key, () => bucket.createMultipartUpload(key))),
    resumeMultipartUpload: (key, id) => upload(key, bucket.resumeMultipartUpload(key, id)),
    put: (key, value) => plain('put', key, () => bucket.put(key, value)),
    head: (key) => plain('head', key, () => bucket.head(key)),
    get: async (key, options) => {
      const r = options?.range;
      const range = r ? `bytes=${r.offset}-${r.length === undefined ? '' : r.offset + r.length - 1}` : undefined;
      const { value: object, fault } = await call('get', key, () => bucket.get(key, options), range);
      return object && fault && 'dropBody' in fault ? cut(object) : object;
    },
    list: (options) => plain('list', '', () => bucket.list(options)),
    delete: (keys) => plain('delete', String(keys), () => bucket.delete(keys)),
  };
  return { bucket: wrapped, log };
}

describe('the R2 binding store, through the same policy', () => {
  let mf: Miniflare;
  let bucket: R2BucketLike;
  beforeAll(async () => {
    mf = new Miniflare({ modules: true, script: 'export default { fetch() { return new Response(null) } }', r2Buckets: ['BUCKET'], cf: false });
    bucket = (await mf.getR2Bucket('BUCKET')) as unknown as R2BucketLike;
  });
  afterAll(async () => {
    await mf?.dispose();
  });

  it('one call in five failing (rejected, stalled, body cut off): backup, restore, readFile, list, prune and delete are all exact', async () => {
    const { bucket: faulty, log } = faultyBucket(bucket, oneInFive());
    // A real call on a loaded machine (the whole suite at once) can take longer than FAST's 500 ms: a stall here is 2 s.
    const store = r2Store(faulty, { prefix: 'r2', policy: { ...FAST, requestTimeout: 2000 } });
    const plain = r2Store(bucket, { prefix: 'r2' });
    const one = await createBackup({ dir: source, store, ttl: 3600, upload: UPLOAD });
    const two = await createBackup({ dir: small, store, ttl: 60, upload: UPLOAD });
    expect(await keys(plain)).toEqual([one.key, `${one.id}.json`, two.key, `${two.id}.json`].sort());
    expect(superblockLastSha256(await readAll(plain, one.key))).toBe(one.sha256);
    const target = path.join(work, 'r2-restored');
    await restoreBackup(one.id, { store, dir: target, download: DOWNLOAD });
    expect(await compareTrees(source, target)).toEqual([]);
    const image = await openBackup(one, { store });
    expectSame(await image.readFile('/big.bin'), await fsp.readFile(path.join(source, 'big.bin')));
    expect(await listBackups({ store })).toEqual([one, two]);
    expect(await pruneExpiredBackups({ store, now: Date.parse(two.expiresAt) + 1000 })).toEqual([two]);
    await deleteBackup(one, { store });
    expect(await keys(plain)).toEqual([]);
    const faulted = new Set(log.filter((e) => e.fault).map((e) => `${e.op} ${e.fault}`));
    for (const op of ['create', 'part', 'complete', 'put', 'head', 'get:range', 'list', 'delete']) {
      expect([...faulted].some((f) => f.startsWith(`${op} `)), `no fault on ${op}: ${[...faulted].join(', ')}`).toBe(true);
    }
    expect(faulted).toContain('get:range dropBody');
    expect(faulted).toContain('get:range stall');
  }, 40_000);

  it('a call that never settles is abandoned after requestTimeout and made again', async () => {
    const plain = r2Store(bucket, { prefix: 'r2-stall' });
    await plain.put('object', new Uint8Array([1, 2, 3]));
    let heads = 0;
    const { bucket: faulty } = faultyBucket(bucket, (r) => (r.op === 'head' && ++heads === 1 ? { stall: true } : undefined));
    const started = performance.now();
    expect(await r2Store(faulty, { prefix: 'r2-stall', policy: { ...FAST, requestTimeout: 300 } }).head('object')).toEqual({ key: 'object', size: 3 });
    expect(heads).toBe(2);
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
  }, 10_000);
});
