import { randomUUID } from 'node:crypto';
import { compactBackupWith, type CompactBackupOptions } from '../backup/compact.js';
import { createBackupWith, type BackupRuntime, type CreateBackupOptions } from '../backup/create.js';
import type { DirectoryBackup } from '../backup/handle.js';
import { loadNodeCodecs, nodeSha256 } from './codecs.js';
import { CompressPool, sharedModules } from './compress-pool.js';
import { defaultStoreDirectory, localStore } from './local-store.js';
import { nodeSource } from './source.js';
import { treeXattrs } from './xattrs.js';

export const nodeBackupRuntime: BackupRuntime = {
  defaultStore: async () => localStore(defaultStoreDirectory()),
  defaultSource: () => nodeSource(),
  codecs: () => loadNodeCodecs(),
  createHash: nodeSha256,
  compressor: async (compression, blockSize) => {
    if (!CompressPool.available()) return undefined;
    const pool = new CompressPool(compression, { blockSize, ...(await sharedModules(compression)) });
    return { ...pool.writerOptions(), close: () => pool.close() };
  },
  xattrs: async (dir) => treeXattrs(dir),
  randomUUID: () => randomUUID(),
};

/**
 * Backs up a directory into a store (default: a local directory store) and
 * returns the JSON handle. See CreateBackupOptions.
 */
export function createBackup(options: CreateBackupOptions): Promise<DirectoryBackup> {
  return createBackupWith(nodeBackupRuntime, options);
}

/**
 * Writes one full backup equal to a delta's chain, copying the layers'
 * blocks where they can be (see compactBackupWith); the chain stays.
 */
export function compactBackup(backup: DirectoryBackup | string, options: CompactBackupOptions = {}): Promise<DirectoryBackup> {
  return compactBackupWith(nodeBackupRuntime, backup, options);
}

export { defaultStoreDirectory } from './local-store.js';
export { restoreBackup, type RestoreBackupOptions, type RestoreResult } from './restore.js';
