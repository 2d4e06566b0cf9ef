import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import os from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { createBackupWith, type BackupRuntime, type CreateBackupOptions } from '../backup/create.js';
import { checkIntegrity, checkNotExpired, SuperblockLastHasher, type DirectoryBackup } from '../backup/handle.js';
import { checkStored, resolveBackup } from '../backup/manage.js';
import { BackupError, SquashfsError } from '../errors.js';
import type { ObjectStore } from '../uploader/store.js';
import { loadNodeCodecs, nodeSha256 } from './codecs.js';
import { CompressPool, sharedZstdModule } from './compress-pool.js';
import { openImage } from './file-source.js';
import { localStore } from './local-store.js';
import { nodeSource } from './source.js';
import { unpackImage, type UnpackResult } from './unpack.js';
import { treeXattrs } from './xattrs.js';

/** The local store used when none is given: $SQFS_STORE_DIR, else <data dir>/squashfs-ts/backups. */
export function defaultStoreDirectory(): string {
  if (process.env.SQFS_STORE_DIR) return resolve(process.env.SQFS_STORE_DIR);
  const data = process.env.XDG_DATA_HOME || join(os.homedir(), '.local', 'share');
  return join(data, 'squashfs-ts', 'backups');
}

export const nodeBackupRuntime: BackupRuntime = {
  defaultStore: async () => localStore(defaultStoreDirectory()),
  defaultSource: () => nodeSource(),
  codecs: () => loadNodeCodecs(),
  createHash: nodeSha256,
  compressor: async (compression, blockSize) => {
    if (!CompressPool.available()) return undefined;
    const pool = new CompressPool(compression, { blockSize, zstdModule: await sharedZstdModule(compression) });
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

export interface RestoreBackupOptions {
  /** Default: the local store `createBackup` uses by default. */
  store?: ObjectStore;
  /** Where to restore (absolute; default the directory that was backed up). Its contents are replaced. */
  dir?: string;
  signal?: AbortSignal;
  onProgress?: (progress: { phase: 'download' | 'extract'; bytes: number; total: number; entries?: number }) => void;
  onWarning?: (message: string) => void;
}

export interface RestoreResult extends UnpackResult {
  dir: string;
}

/**
 * Restores a backup (handle or id) into a directory: checks expiry, streams
 * the image into a temporary file beside the target while hashing it,
 * checks size and SHA-256 (BACKUP_INTEGRITY_ERROR, nothing written), then
 * extracts it into a sibling directory and swaps that in with a rename. A
 * failure at any point leaves the target as it was.
 */
export async function restoreBackup(backup: DirectoryBackup | string, options: RestoreBackupOptions = {}): Promise<RestoreResult> {
  const store = options.store ?? localStore(defaultStoreDirectory());
  const handle = await resolveBackup(backup, { store, signal: options.signal });
  checkNotExpired(handle);
  const target = options.dir ?? handle.dir;
  if (!isAbsolute(target)) throw new BackupError('INVALID_BACKUP_CONFIG', `dir must be an absolute path, not ${JSON.stringify(target)}`);
  await checkStored(handle, store, options.signal);
  await mkdir(dirname(target), { recursive: true }).catch((cause: Error) => {
    throw new BackupError('BACKUP_RESTORE_ERROR', `cannot create ${dirname(target)}: ${cause.message}`, { path: target, cause });
  });
  const temp = join(dirname(target), `.${basename(target)}.restore-${handle.id}-${process.pid}.sqfs`);
  try {
    await download(handle, store, temp, options);
    const image = await openImage(temp);
    try {
      const result = await unpackImage(image, target, {
        force: true,
        signal: options.signal,
        onWarning: options.onWarning,
        onProgress: (p) => options.onProgress?.({ phase: 'extract', bytes: p.bytes, total: handle.size, entries: p.entries }),
      });
      return { ...result, dir: target };
    } finally {
      await image.close();
    }
  } catch (error) {
    if (error instanceof BackupError) throw error;
    const what = error instanceof SquashfsError && error.code === 'ABORTED' ? 'the restore was aborted' : (error as Error).message;
    throw new BackupError('BACKUP_RESTORE_ERROR', `restore of backup ${handle.id} into ${target} failed: ${what}`, { path: target, key: handle.key, cause: error });
  } finally {
    await rm(temp, { force: true });
  }
}

/** Streams the image into `path`, hashing it; throws BACKUP_INTEGRITY_ERROR when size or hash differ. */
async function download(handle: DirectoryBackup, store: ObjectStore, path: string, options: RestoreBackupOptions): Promise<void> {
  const stream = await store.get(handle.key, options.signal);
  if (!stream) throw new BackupError('BACKUP_NOT_FOUND', `backup ${handle.id}: no image at ${store.location}/${handle.key}`, { key: handle.key });
  const hasher = new SuperblockLastHasher(nodeSha256());
  const fd = fs.openSync(path, 'wx', 0o600);
  try {
    const reader = stream.getReader();
    for (;;) {
      if (options.signal?.aborted) {
        await reader.cancel();
        throw new SquashfsError('ABORTED', 'the operation was aborted', { cause: options.signal.reason });
      }
      const { done, value } = await reader.read();
      if (done) break;
      hasher.update(value);
      let at = 0;
      while (at < value.length) at += fs.writeSync(fd, value, at, value.length - at);
      options.onProgress?.({ phase: 'download', bytes: hasher.size, total: handle.size });
      if (hasher.size > handle.size) break;
    }
  } catch (error) {
    if (error instanceof BackupError || error instanceof SquashfsError) throw error;
    throw new BackupError('BACKUP_RESTORE_ERROR', `download of ${store.location}/${handle.key} failed: ${(error as Error).message}`, { key: handle.key, cause: error });
  } finally {
    fs.closeSync(fd);
  }
  checkIntegrity(handle, hasher);
}
