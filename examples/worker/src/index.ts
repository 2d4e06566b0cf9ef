/**
 * The reference product's whole flow in one Worker: the Worker holds the
 * bucket's keys, a sandbox's container holds a capability token and backs
 * up and restores through presigned URLs the Worker makes for it, and the
 * Worker lists a sandbox's backups through its R2 binding.
 *
 *   POST /sandboxes/ID/token[?ttl=S]   a token for the keys under sandboxes/ID/ (write, read), and what a container needs with it (JSON)
 *   POST /presign                      presignService's handle: a token and { method, key, query } in, { url, expiresAt, expiresIn } out
 *   GET  /sandboxes/ID/backups         the sandbox's backups, listed through the R2 binding (JSON)
 *
 * The container's side is container.mjs (Node, no bucket credentials).
 * The token and listing routes answer anyone who can reach them: in a
 * real deployment they sit behind the operator's own auth (see the README).
 *
 * The demo routes back up an in-memory tree (memfs) inside the Worker, to
 * R2 (the binding) or to the same bucket through its S3 API and presigned
 * URLs, restore it into a fresh memfs volume, and serve single files out
 * of a stored backup with ranged reads (openBackup):
 *
 *   POST /backup?store=r2|s3[&comp=zstd|gzip][&mib=N]  back up the demo tree (N MiB of data); answers the handle (JSON)
 *                                                    (no comp: createBackup with only dir, fs and store: zstd, the default)
 *   POST /restore?store=r2|s3   body: a handle          restore into a new volume, compare with the demo tree (JSON)
 *   GET  /file?store=r2|s3&id=ID&path=/P              one file of a stored backup
 *   GET  /list?store=r2|s3                            the store's backups (JSON)
 *
 * store=broken-r2 is an R2 binding whose uploads fail: the backup must
 * answer BACKUP_CREATE_ERROR and leave nothing in the bucket.
 */
import { Volume } from 'memfs';
// The package's Workers entry: zstd compresses with no setup (it imports its own zstd.wasm, which
// Wrangler bundles as a compiled module: workerd never compiles WebAssembly from bytes).
import {
  BackupError, createBackup, listBackups, openBackup, presignService, r2Store, restoreBackup, s3Store,
  type DirectoryBackup, type ObjectStore, type PresignService, type R2BucketLike,
} from 'squashfs-ts';

/** What wrangler.toml (vars) and `wrangler secret put` (secrets) give the Worker. */
export interface Env {
  /** The bucket, bound: listing a sandbox's backups, and the demo's store=r2. */
  BACKUPS: R2BucketLike;
  /** The same bucket's S3 API is https://<CLOUDFLARE_ACCOUNT_ID>.r2.cloudflarestorage.com ... */
  CLOUDFLARE_ACCOUNT_ID?: string;
  /** ... or this endpoint instead (another S3-compatible service; a local one in tests). */
  R2_ENDPOINT?: string;
  /** The bucket's name (the one bound as BACKUPS). */
  BACKUP_BUCKET_NAME?: string;
  /** Default 'auto' (R2); another S3 service wants its bucket's region. */
  S3_REGION?: string;
  /** Secrets: an R2 API token's S3 credentials. Only the Worker ever sees them. */
  R2_ACCESS_KEY_ID?: string;
  R2_SECRET_ACCESS_KEY?: string;
  /** Secret: the key capability tokens are signed with (at least 32 bytes). */
  PRESIGN_SIGNING_KEY?: string;
}

/** The bucket through its S3 API, with the Worker's credentials; INVALID_BACKUP_CONFIG naming what is missing. */
function bucketApi(env: Env) {
  const endpoint = env.R2_ENDPOINT || (env.CLOUDFLARE_ACCOUNT_ID ? `https://${env.CLOUDFLARE_ACCOUNT_ID}.r2.cloudflarestorage.com` : '');
  const missing = [
    ...(endpoint ? [] : ['CLOUDFLARE_ACCOUNT_ID (or R2_ENDPOINT)']),
    ...(['BACKUP_BUCKET_NAME', 'R2_ACCESS_KEY_ID', 'R2_SECRET_ACCESS_KEY'] as const).filter((name) => !env[name]),
  ];
  if (missing.length > 0) throw new BackupError('INVALID_BACKUP_CONFIG', `the bucket's S3 API needs ${missing.join(', ')} (vars in wrangler.toml, secrets through wrangler secret put)`);
  return {
    endpoint, bucket: env.BACKUP_BUCKET_NAME!, region: env.S3_REGION || 'auto',
    accessKeyId: env.R2_ACCESS_KEY_ID!, secretAccessKey: env.R2_SECRET_ACCESS_KEY!,
  };
}

/** One presign service per environment (its HMAC key is imported once). */
const services = new WeakMap<Env, PresignService>();
function presignerFor(env: Env): PresignService {
  let service = services.get(env);
  if (!service) {
    if (!env.PRESIGN_SIGNING_KEY) throw new BackupError('INVALID_BACKUP_CONFIG', 'the presign service needs the PRESIGN_SIGNING_KEY secret');
    service = presignService({ ...bucketApi(env), signingKey: env.PRESIGN_SIGNING_KEY });
    services.set(env, service);
  }
  return service;
}

const json = (value: unknown, status = 200) => Response.json(value, { status });

/** A sandbox's keys are sandboxes/<id>/...; an id is a plain name, so no "/", "." or ".." reaches a prefix. */
const SANDBOX_ROUTE = /^\/sandboxes\/([A-Za-z0-9_-]{1,64})\/(token|backups)$/;
/** Seconds a token lives unless ?ttl= says otherwise. */
const TOKEN_TTL = 3600;

/**
 * POST /sandboxes/ID/token and GET /sandboxes/ID/backups.
 *
 * Whoever can call these acts for the sandbox: the token route hands out
 * write and read access to its keys, the listing shows its handles. In a
 * real deployment both sit behind the operator's own auth (an Access
 * policy, a service binding from the orchestrator, a check of the
 * orchestrator's own credential here); the example leaves them open.
 */
async function sandboxRoute(request: Request, env: Env, id: string, what: string): Promise<Response> {
  const prefix = `sandboxes/${id}/`;
  if (what === 'token') {
    if (request.method !== 'POST') return new Response('POST a token request\n', { status: 405, headers: { allow: 'POST' } });
    const service = presignerFor(env);
    const ttl = Number(new URL(request.url).searchParams.get('ttl') ?? TOKEN_TTL);
    // Write and read: the container backs up, restores and lists its own backups. Deleting stays with the Worker.
    const token = await service.issueToken({ prefix, operations: ['write', 'read'], ttl });
    const claims = (await service.verifyToken(token))!;
    const { endpoint, bucket } = bucketApi(env);
    // Everything a container needs besides the token is public: the presign route, the bucket's endpoint and name, the prefix.
    return json({
      token, expiresAt: new Date(claims.expiresAt).toISOString(), prefix, operations: claims.operations,
      presignUrl: new URL('/presign', request.url).href, endpoint, bucket,
    });
  }
  if (request.method !== 'GET') return new Response('GET the list\n', { status: 405, headers: { allow: 'GET' } });
  // The binding and the S3 API are one bucket: what the container wrote through presigned URLs is listed here.
  return json(await listBackups({ store: r2Store(env.BACKUPS, { prefix, name: 'r2://BACKUPS' }) }));
}

function storeFor(env: Env, name: string | null): ObjectStore {
  // The Worker has the keys, so it signs its own URLs (awsPresigner).
  if (name === 's3') return s3Store({ ...bucketApi(env), prefix: 'worker' });
  if (name === 'broken-r2') {
    const refuse = async (): Promise<never> => {
      throw new Error('injected: this bucket refuses uploads');
    };
    const bucket = env.BACKUPS;
    const failing: R2BucketLike = {
      createMultipartUpload: refuse,
      put: refuse,
      resumeMultipartUpload: (key, id) => bucket.resumeMultipartUpload(key, id),
      head: (key) => bucket.head(key),
      get: (key, options) => bucket.get(key, options),
      list: (options) => bucket.list(options),
      delete: (keys) => bucket.delete(keys),
    };
    return r2Store(failing, { prefix: 'worker', name: 'r2://broken' });
  }
  return r2Store(env.BACKUPS, { prefix: 'worker', name: 'r2://BACKUPS' });
}

/** The demo tree: text, a binary blob of `mib` MiB, a symlink, an empty dir, modes and times. */
export function demoTree(mib: number): Record<string, string | Uint8Array> {
  const blob = new Uint8Array(mib * 1024 * 1024);
  let x = 12345;
  for (let i = 0; i < blob.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    // Half noise, half text-like: compresses somewhat, as real data does.
    blob[i] = i & 4096 ? x >>> 24 : 97 + (i % 26);
  }
  return {
    '/data/readme.txt': 'hello from a Worker\n',
    '/data/analysis.json': JSON.stringify({ result: 42, items: Array.from({ length: 200 }, (_, i) => i) }),
    '/data/deep/er/still/file.txt': 'deep\n',
    '/data/blob.bin': blob,
  };
}

function makeVolume(mib: number) {
  const vol = Volume.fromJSON({});
  for (const [path, content] of Object.entries(demoTree(mib))) {
    vol.mkdirSync(path.slice(0, path.lastIndexOf('/')), { recursive: true });
    vol.writeFileSync(path, content);
  }
  vol.mkdirSync('/data/empty');
  vol.symlinkSync('readme.txt', '/data/link');
  vol.chmodSync('/data/readme.txt', 0o640);
  vol.utimesSync('/data/analysis.json', 1_700_000_000, 1_700_000_000);
  return vol;
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    try {
      if (url.pathname === '/presign') return await presignerFor(env).handle(request);
      const sandbox = SANDBOX_ROUTE.exec(url.pathname);
      if (sandbox) return await sandboxRoute(request, env, sandbox[1]!, sandbox[2]!);
      const store = storeFor(env, url.searchParams.get('store'));
      if (url.pathname === '/backup' && request.method === 'POST') {
        const mib = Number(url.searchParams.get('mib') ?? '1');
        const comp = url.searchParams.get('comp');
        const vol = makeVolume(mib);
        const fs = vol.promises as never;
        const backup = comp === 'zstd' || comp === 'gzip'
          ? await createBackup({ dir: '/data', name: `worker demo (${comp})`, ttl: 3600, store, fs, compression: comp })
          : await createBackup({ dir: '/data', fs, store }); // the defaults: zstd, 3 days
        return json(backup);
      }
      if (url.pathname === '/restore' && request.method === 'POST') {
        const handle = (await request.json()) as DirectoryBackup;
        const vol = Volume.fromJSON({});
        vol.mkdirSync('/restored');
        vol.writeFileSync('/restored/old.txt', 'replaced by the restore\n');
        const result = await restoreBackup(handle, { store, fs: vol.promises as never, dir: '/restored' });
        const original = makeVolume(Number(url.searchParams.get('mib') ?? '1'));
        const differences: string[] = [];
        for (const path of Object.keys(demoTree(0))) {
          const a = original.readFileSync(path) as Uint8Array;
          const b = vol.readFileSync(path.replace('/data', '/restored')) as Uint8Array;
          if (a.length !== b.length || a.some((v, i) => v !== b[i])) differences.push(path);
        }
        if (vol.readlinkSync('/restored/link') !== 'readme.txt') differences.push('/data/link');
        if ((vol.statSync('/restored/readme.txt').mode & 0o7777) !== 0o640) differences.push('/data/readme.txt mode');
        if (vol.statSync('/restored/analysis.json').mtimeMs !== 1_700_000_000_000) differences.push('/data/analysis.json mtime');
        if (vol.existsSync('/restored/old.txt')) differences.push('old contents left');
        return json({ ...result, differences });
      }
      if (url.pathname === '/file') {
        let requests = 0;
        const counted: ObjectStore = { ...store, location: store.location, getRange: (...args) => (requests++, store.getRange(...args)) };
        const image = await openBackup(url.searchParams.get('id')!, { store: counted });
        const bytes = await image.readFile(url.searchParams.get('path') ?? '/readme.txt');
        return new Response(bytes as Uint8Array<ArrayBuffer>, { headers: { 'x-ranged-requests': String(requests) } });
      }
      if (url.pathname === '/list') return json(await listBackups({ store }));
      return new Response('not found\n', { status: 404 });
    } catch (error) {
      const e = error as Error & { code?: string };
      return json({ code: e.code, name: e.name, message: e.message }, e instanceof BackupError ? 422 : 500);
    }
  },
};
