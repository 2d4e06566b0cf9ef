/**
 * The entry for Cloudflare Workers (package.json's `workerd` and `worker`
 * conditions): the main entry, with zstd compressing out of the box. It
 * imports the package's own zstd.wasm, which Wrangler (its default
 * CompiledWasm rule for `*.wasm`) and the Cloudflare Vite plugin bundle as
 * a compiled WebAssembly.Module: workerd refuses to compile WebAssembly
 * from bytes, so the module has to arrive compiled. createBackup and
 * compactBackup here use it; nothing needs registering.
 *
 * The build keeps `./zstd.wasm` as an import of dist/workerd.js, beside
 * which it copies the file.
 */
import zstdWasm from './zstd.wasm';
import { compactBackupWith, type CompactBackupOptions } from './backup/compact.js';
import { createBackupWith, type BackupRuntime, type CreateBackupOptions } from './backup/create.js';
import type { DirectoryBackup } from './backup/handle.js';
import { webRuntime } from './backup/web.js';

export * from './index.js';

/** The Worker's runtime: as the main entry's, with zstd from the imported module. */
export const webBackupRuntime: BackupRuntime = /* @__PURE__ */ webRuntime(zstdWasm);

/** Backs up a directory of `fs` into `store` (zstd by default); returns the JSON handle. See CreateBackupOptions. */
export function createBackup(options: CreateBackupOptions): Promise<DirectoryBackup> {
  return createBackupWith(webBackupRuntime, options);
}

/** Writes one full backup equal to a delta's chain (see compactBackupWith); `store` is required here. */
export function compactBackup(backup: DirectoryBackup | string, options: CompactBackupOptions): Promise<DirectoryBackup> {
  return compactBackupWith(webBackupRuntime, backup, options);
}
