import { createRegistry, type CodecRegistry } from '../codecs/codec.js';
import { defaultCodecs } from '../codecs/index.js';
import { createZstdCodec } from '../codecs/zstd.js';
import { sha256 } from '../hash.js';
import type { DirectoryBackup } from './handle.js';
import { compactBackupWith, type CompactBackupOptions } from './compact.js';
import { createBackupWith, type BackupRuntime, type CreateBackupOptions } from './create.js';

/**
 * The runtime of the main entry (Workers, browsers, Deno, Bun...): no
 * default store or file system (pass `store` and `fs`), SHA-256 in JS,
 * zstd compression where its WASM can be loaded (else pass `codecs`, e.g.
 * `createZstdCodec({ module })` with the Worker's imported zstd.wasm).
 */
export const webBackupRuntime: BackupRuntime = {
  codecs: async (): Promise<CodecRegistry> => {
    try {
      return createRegistry([...defaultCodecs().values(), await createZstdCodec()]);
    } catch {
      return defaultCodecs();
    }
  },
  createHash: sha256,
  randomUUID: () => globalThis.crypto.randomUUID(),
};

/** Backs up a directory of `fs` into `store`; returns the JSON handle. See CreateBackupOptions. */
export function createBackup(options: CreateBackupOptions): Promise<DirectoryBackup> {
  return createBackupWith(webBackupRuntime, options);
}

/** Writes one full backup equal to a delta's chain (see compactBackupWith); `store` is required here. */
export function compactBackup(backup: DirectoryBackup | string, options: CompactBackupOptions): Promise<DirectoryBackup> {
  return compactBackupWith(webBackupRuntime, backup, options);
}
