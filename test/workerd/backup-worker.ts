/**
 * An ES module Worker for a chain of backups in real workerd, on the BUILT
 * package (dist/index.js) with an R2 binding: test/workerd.test.ts bundles
 * it with esbuild and runs it through Miniflare. It needs nodejs_compat for
 * memfs alone (the in-memory file system backed up and restored into); the
 * package itself needs none (worker.ts runs it without).
 *
 * Route:
 *   POST /chain?comp=zstd|gzip   in one request: a memfs tree under /data is
 *     backed up to R2 (full), edited, backed up again as a delta over the
 *     full backup, the delta compacted (compactBackup) into a new full
 *     backup, and both the compacted backup and the delta (through its
 *     chain) restored (the fs-shaped restoreBackup) into fresh memfs
 *     volumes. Answers the three handles and the trees as treeView lines:
 *     before and after the edit, and each restored one.
 */
import { Volume } from 'memfs';
import {
  compactBackup, createBackup, createRegistry, createZstdCodec, defaultCodecs, r2Store, restoreBackup,
  type CodecRegistry, type DirectoryBackup, type ObjectStore, type R2BucketLike,
} from '../../dist/index.js';
import { BIG_SIZE, compressibleText, noise } from './tree.js';
import { treeView, type ViewFs } from './tree-view.js';
import { loadWasmModule, ZSTD_WASM_MODULE } from './wasm-module.js';

interface Env {
  BACKUPS: R2BucketLike;
}

/** Every codec there is: gzip through fflate, zstd from the Worker's precompiled module. */
async function workerCodecs(): Promise<CodecRegistry> {
  const module = await loadWasmModule(ZSTD_WASM_MODULE);
  if (!module) throw new Error(`zstd needs the ${ZSTD_WASM_MODULE} module (a precompiled WebAssembly.Module)`);
  return createRegistry([...defaultCodecs().values(), await createZstdCodec({ module })]);
}

/** Where the test finds a backup's objects in the bucket: `${PREFIX}-${comp}/<key>`. */
const PREFIX = 'chain';

/**
 * The tree before the edit, under /data: a file of two full blocks and a
 * tail (left alone: its blocks are copied from the full backup), text,
 * incompressible bytes, a non-ASCII name, an old mtime, modes, a symlink,
 * an empty directory and a directory tree that goes.
 */
function makeVolume(): InstanceType<typeof Volume> {
  const vol = new Volume();
  vol.mkdirSync('/data/bin', { recursive: true });
  vol.mkdirSync('/data/docs');
  vol.mkdirSync('/data/old/deep', { recursive: true });
  vol.mkdirSync('/data/emptydir');
  vol.writeFileSync('/data/big.txt', compressibleText(BIG_SIZE));
  vol.writeFileSync('/data/readme.txt', 'hello from workerd\n');
  vol.chmodSync('/data/readme.txt', 0o640);
  vol.writeFileSync('/data/bin/tool.sh', '#!/bin/sh\necho hi\n');
  vol.chmodSync('/data/bin/tool.sh', 0o755);
  vol.writeFileSync('/data/bin/random.bin', noise(5000));
  vol.writeFileSync('/data/docs/héllo wörld.md', '# unicode name\n');
  vol.writeFileSync('/data/docs/old', 'from 2001\n');
  vol.utimesSync('/data/docs/old', 1_000_000_000, 1_000_000_000);
  vol.writeFileSync('/data/old/deep/gone.txt', 'soon gone\n');
  vol.symlinkSync('readme.txt', '/data/link');
  return vol;
}

/**
 * The edit the delta holds: a file changed (new size), one removed, a
 * directory tree removed, a directory replaced by a new one, an empty
 * directory replaced by a file, files added (one of a block and a tail), a
 * mode changed and a symlink retargeted. Each is seen by the quick check
 * (type, size, mode, target) within the second of the full backup.
 */
function edit(vol: InstanceType<typeof Volume>): void {
  vol.writeFileSync('/data/readme.txt', 'hello again from workerd, edited\n');
  vol.unlinkSync('/data/bin/random.bin');
  vol.rmSync('/data/old', { recursive: true });
  vol.rmSync('/data/docs', { recursive: true });
  vol.mkdirSync('/data/docs');
  vol.writeFileSync('/data/docs/fresh.md', '# a new docs directory\n');
  vol.rmdirSync('/data/emptydir');
  vol.writeFileSync('/data/emptydir', 'a file where a directory was\n');
  vol.mkdirSync('/data/new');
  vol.writeFileSync('/data/new/added.bin', noise(200_000, 0x1234567));
  vol.writeFileSync('/data/new/empty', '');
  vol.chmodSync('/data/bin/tool.sh', 0o700);
  vol.unlinkSync('/data/link');
  vol.symlinkSync('big.txt', '/data/link');
}

/** A restore of `backup` into a fresh volume's /restored, read back as treeView lines. */
async function restored(backup: DirectoryBackup, store: ObjectStore, codecs: CodecRegistry) {
  const vol = new Volume();
  const result = await restoreBackup(backup, { store, fs: vol.promises as never, dir: '/restored', codecs });
  return { result, view: await treeView(vol.promises as unknown as ViewFs, '/restored') };
}

async function chain(url: URL, env: Env): Promise<Response> {
  const comp = url.searchParams.get('comp') === 'gzip' ? 'gzip' : 'zstd';
  const store = r2Store(env.BACKUPS, { prefix: `${PREFIX}-${comp}`, name: 'r2://BACKUPS' });
  const codecs = await workerCodecs();
  const vol = makeVolume();
  const fs = vol.promises as never;
  const name = `workerd chain (${comp})`;
  const full = await createBackup({ dir: '/data', fs, store, name, ttl: 3600, compression: comp, codecs });
  const before = await treeView(vol.promises as unknown as ViewFs, '/data');
  edit(vol);
  const delta = await createBackup({ dir: '/data', fs, store, name, ttl: 3600, compression: comp, codecs, base: full });
  const after = await treeView(vol.promises as unknown as ViewFs, '/data');
  const compacted = await compactBackup(delta, { store, codecs });
  const fromCompacted = await restored(compacted, store, codecs);
  const fromDelta = await restored(delta, store, codecs);
  return Response.json({
    full, delta, compacted, before, after,
    restoredCompacted: fromCompacted.view, restoredDelta: fromDelta.view,
    results: { compacted: fromCompacted.result, delta: fromDelta.result },
  });
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    try {
      if (request.method === 'POST' && url.pathname === '/chain') return await chain(url, env);
      return Response.json({ error: `no route ${request.method} ${url.pathname}` }, { status: 404 });
    } catch (error) {
      const e = error as Error & { code?: string };
      return Response.json({ name: e.name, code: e.code, message: e.message, stack: e.stack }, { status: 500 });
    }
  },
};
