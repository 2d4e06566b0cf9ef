import { createRegistry, type CodecRegistry } from '../codecs/codec.js';
import { defaultCodecs } from '../codecs/index.js';
import { createZstdCodec, zstdCodec } from '../codecs/zstd.js';
import { SquashfsError } from '../errors.js';
import { sha256 } from '../hash.js';
import type { DirectoryBackup } from './handle.js';
import { compactBackupWith, type CompactBackupOptions } from './compact.js';
import { createBackupWith, type BackupRuntime, type CreateBackupOptions } from './create.js';

/**
 * A runtime for the web entries (Workers, browsers, Deno, Bun...): no
 * default store or file system (pass `store` and `fs`), SHA-256 in JS, and
 * zstd compressing with `zstdModule` (the workerd entry passes the
 * zstd.wasm it imports), else where its WASM can be loaded (Node, Bun),
 * else not at all: then a backup left at the default compression is gzip
 * and its warnings say why. The codecs are made once (one zstd instance
 * per isolate).
 */
export function webRuntime(zstdModule?: WebAssembly.Module): BackupRuntime {
  let codecs: Promise<CodecRegistry> | undefined;
  return {
    codecs: () => (codecs ??= webCodecs(zstdModule)),
    createHash: sha256,
    randomUUID: () => globalThis.crypto.randomUUID(),
  };
}

async function webCodecs(zstdModule: WebAssembly.Module | undefined): Promise<CodecRegistry> {
  try {
    return createRegistry([...defaultCodecs().values(), await createZstdCodec({ module: zstdModule })]);
  } catch (error) {
    if (zstdModule) throw error; // a module given and refused: say so, do not fall back
    // zstd still reads (pure JS); compressing says why it cannot.
    const reason = error instanceof SquashfsError ? error.message : `zstd cannot compress here: ${(error as Error).message}`;
    const readOnly = zstdCodec();
    return createRegistry([...defaultCodecs().values(), {
      ...readOnly,
      compress: () => {
        throw new SquashfsError('UNSUPPORTED_COMPRESSOR', reason, { cause: error });
      },
    }]);
  }
}

/** The main entry's runtime: zstd compresses where its WASM can be loaded (see webRuntime). */
export const webBackupRuntime: BackupRuntime = /* @__PURE__ */ webRuntime();

/** Backs up a directory of `fs` into `store`; returns the JSON handle. See CreateBackupOptions. */
export function createBackup(options: CreateBackupOptions): Promise<DirectoryBackup> {
  return createBackupWith(webBackupRuntime, options);
}

/** Writes one full backup equal to a delta's chain (see compactBackupWith); `store` is required here. */
export function compactBackup(backup: DirectoryBackup | string, options: CompactBackupOptions): Promise<DirectoryBackup> {
  return compactBackupWith(webBackupRuntime, backup, options);
}
