/**
 * A Worker that backs up an in-memory tree (memfs) to R2 (the binding) or
 * to any S3-compatible store through presigned URLs, restores it into a
 * fresh memfs volume, and serves single files out of a stored backup with
 * ranged reads (openBackup).
 *
 *   POST /backup?store=r2|s3&comp=zstd|gzip[&mib=N]  back up the demo tree (N MiB of data); answers the handle (JSON)
 *   POST /restore?store=r2|s3   body: a handle          restore into a new volume, compare with the demo tree (JSON)
 *   GET  /file?store=r2|s3&id=ID&path=/P              one file of a stored backup
 *   GET  /list?store=r2|s3                            the store's backups (JSON)
 *
 * store=broken-r2 is an R2 binding whose uploads fail: the backup must
 * answer BACKUP_CREATE_ERROR and leave nothing in the bucket.
 */
import { Volume } from 'memfs';
import {
  BackupError, createBackup, createRegistry, createZstdCodec, defaultCodecs, listBackups, openBackup, r2Store, restoreBackup, s3Store,
  type CodecRegistry, type DirectoryBackup, type ObjectStore, type R2BucketLike,
} from 'squashfs-ts';
// Wrangler bundles this as a CompiledWasm module: workerd never compiles WebAssembly from bytes.
import zstdWasm from 'squashfs-ts/zstd.wasm';

export interface Env {
  BACKUPS: R2BucketLike;
  /** For store=s3: an S3-compatible endpoint, bucket and credentials (wrangler secrets). */
  S3_ENDPOINT?: string;
  S3_BUCKET?: string;
  S3_REGION?: string;
  S3_ACCESS_KEY_ID?: string;
  S3_SECRET_ACCESS_KEY?: string;
}

let codecs: Promise<CodecRegistry> | undefined;
/** gzip through fflate, zstd through the imported WASM module (one instance per isolate). */
function workerCodecs(): Promise<CodecRegistry> {
  codecs ??= createZstdCodec({ module: zstdWasm }).then((zstd) => createRegistry([...defaultCodecs().values(), zstd]));
  return codecs;
}

function storeFor(env: Env, name: string | null): ObjectStore {
  if (name === 's3') {
    if (!env.S3_ENDPOINT || !env.S3_BUCKET) throw new BackupError('INVALID_BACKUP_CONFIG', 'store=s3 needs S3_ENDPOINT and S3_BUCKET');
    return s3Store({
      endpoint: env.S3_ENDPOINT, bucket: env.S3_BUCKET, region: env.S3_REGION, prefix: 'worker',
      accessKeyId: env.S3_ACCESS_KEY_ID, secretAccessKey: env.S3_SECRET_ACCESS_KEY,
    });
  }
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

const json = (value: unknown, status = 200) => Response.json(value, { status });

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    try {
      const store = storeFor(env, url.searchParams.get('store'));
      if (url.pathname === '/backup' && request.method === 'POST') {
        const mib = Number(url.searchParams.get('mib') ?? '1');
        const comp = url.searchParams.get('comp') === 'gzip' ? 'gzip' : 'zstd';
        const vol = makeVolume(mib);
        const backup = await createBackup({
          dir: '/data', name: `worker demo (${comp})`, ttl: 3600, store, compression: comp,
          fs: vol.promises as never, codecs: await workerCodecs(),
        });
        return json(backup);
      }
      if (url.pathname === '/restore' && request.method === 'POST') {
        const handle = (await request.json()) as DirectoryBackup;
        const vol = Volume.fromJSON({});
        vol.mkdirSync('/restored');
        vol.writeFileSync('/restored/old.txt', 'replaced by the restore\n');
        const result = await restoreBackup(handle, { store, fs: vol.promises as never, dir: '/restored', codecs: await workerCodecs() });
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
        const image = await openBackup(url.searchParams.get('id')!, { store: counted, codecs: await workerCodecs() });
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
