import type { CodecRegistry } from '../codecs/codec.js';
import { defaultCodecs } from '../codecs/index.js';
import { BackupError } from '../errors.js';
import { SquashfsImage } from '../squashfs/reader/image.js';
import type { RandomAccessSource } from '../squashfs/reader/types.js';
import { StoreError, type ObjectStore } from '../uploader/store.js';
import { readAheadSource } from './read-ahead.js';
import { checkNotExpired, imageKey, isBackupId, metadataKey, parseHandle, type DirectoryBackup } from './handle.js';

export interface StoreOptions {
  store: ObjectStore;
  signal?: AbortSignal;
}

/** Random access to a stored object through ranged reads. */
export function storeSource(store: ObjectStore, key: string, size: number): RandomAccessSource {
  return { size, read: (offset, length, signal) => store.getRange(key, offset, length, signal) };
}

/** A handle, or an id whose metadata object is read from the store. */
export async function resolveBackup(backup: DirectoryBackup | string, { store, signal }: StoreOptions): Promise<DirectoryBackup> {
  if (typeof backup !== 'string') return parseHandle(backup, 'the backup handle');
  if (!isBackupId(backup)) throw new BackupError('INVALID_BACKUP_CONFIG', `"${backup}" is not a backup id (a UUID)`);
  const unreadable = (cause: unknown) =>
    new BackupError(
      cause instanceof StoreError && cause.status === 404 ? 'BACKUP_NOT_FOUND' : 'BACKUP_RESTORE_ERROR',
      `backup ${backup}: its metadata could not be read from ${store.location}: ${(cause as Error).message}`,
      { key: metadataKey(backup), cause },
    );
  const stream = await store.get(metadataKey(backup), signal).catch((cause: unknown) => {
    throw unreadable(cause);
  });
  if (!stream) throw new BackupError('BACKUP_NOT_FOUND', `no backup ${backup} in ${store.location}`, { key: metadataKey(backup) });
  const text = await new Response(stream).text().catch((cause: unknown) => {
    throw unreadable(cause);
  });
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new BackupError('BACKUP_NOT_FOUND', `backup ${backup}: its metadata in ${store.location} is not JSON`, { key: metadataKey(backup), cause });
  }
  return parseHandle(value, `${store.location}/${metadataKey(backup)}`);
}

/** Checks the image is there with the handle's size; BACKUP_NOT_FOUND or BACKUP_INTEGRITY_ERROR otherwise. */
export async function checkStored(backup: DirectoryBackup, store: ObjectStore, signal?: AbortSignal): Promise<void> {
  const info = await store.head(backup.key, signal).catch((cause: unknown) => {
    throw new BackupError('BACKUP_RESTORE_ERROR', `backup ${backup.id}: the image at ${store.location}/${backup.key} could not be reached: ${(cause as Error).message}`, { key: backup.key, cause });
  });
  if (!info) throw new BackupError('BACKUP_NOT_FOUND', `backup ${backup.id}: no image at ${store.location}/${backup.key}`, { key: backup.key });
  if (info.size !== backup.size) {
    throw new BackupError('BACKUP_INTEGRITY_ERROR', `backup ${backup.id}: the stored image is ${info.size} bytes, the handle says ${backup.size}`, { key: backup.key });
  }
}

export interface OpenBackupOptions extends StoreOptions {
  codecs?: CodecRegistry;
  /** Metadata blocks kept decompressed (default 256). */
  cacheBlocks?: number;
}

/**
 * The backup's image, read through ranged GETs of the stored object: only
 * the superblock, the metadata on the paths looked up, and the files'
 * own blocks, read ahead while a file is read through. Checks expiry and
 * the stored size first.
 */
export async function openBackup(backup: DirectoryBackup | string, options: OpenBackupOptions): Promise<SquashfsImage> {
  const handle = await resolveBackup(backup, options);
  checkNotExpired(handle);
  await checkStored(handle, options.store, options.signal);
  return SquashfsImage.open(readAheadSource(storeSource(options.store, handle.key, handle.size)), {
    codecs: options.codecs ?? defaultCodecs(),
    cacheBlocks: options.cacheBlocks,
  });
}

/** Every backup in the store (from the metadata objects), oldest first; expired ones included. */
export async function listBackups({ store, signal }: StoreOptions): Promise<DirectoryBackup[]> {
  const found: DirectoryBackup[] = [];
  for await (const item of store.list('', signal)) {
    const id = item.key.endsWith('.json') ? item.key.slice(0, -5) : '';
    if (!isBackupId(id)) continue;
    found.push(await resolveBackup(id, { store, signal }));
  }
  return found.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}

/** Removes a backup: its metadata first (so a listed backup always has its image), then the image. */
export async function deleteBackup(backup: DirectoryBackup | string, { store, signal }: StoreOptions): Promise<void> {
  const id = typeof backup === 'string' ? backup : parseHandle(backup, 'the backup handle').id;
  if (!isBackupId(id)) throw new BackupError('INVALID_BACKUP_CONFIG', `"${id}" is not a backup id (a UUID)`);
  if (!(await store.head(metadataKey(id), signal)) && !(await store.head(imageKey(id), signal))) {
    throw new BackupError('BACKUP_NOT_FOUND', `no backup ${id} in ${store.location}`, { key: metadataKey(id) });
  }
  await store.delete(metadataKey(id), signal);
  await store.delete(imageKey(id), signal);
}

/** Deletes every expired backup; returns those deleted. */
export async function pruneExpiredBackups(options: StoreOptions & { now?: number }): Promise<DirectoryBackup[]> {
  const now = options.now ?? Date.now();
  const expired = (await listBackups(options)).filter((b) => now > Date.parse(b.expiresAt));
  for (const backup of expired) await deleteBackup(backup.id, options);
  return expired;
}
