import type { CodecRegistry } from '../codecs/codec.js';
import { defaultCodecs } from '../codecs/index.js';
import { BackupError } from '../errors.js';
import { SquashfsImage } from '../squashfs/reader/image.js';
import { concatBytes } from '../squashfs/bytes.js';
import { decodeSuperblock, SUPERBLOCK_SIZE } from '../squashfs/superblock.js';
import type { RandomAccessSource } from '../squashfs/reader/types.js';
import { StoreError, type ObjectStore } from '../uploader/store.js';
import { chainOf, resolveChain } from './chain.js';
import { ChainImage, type BackupImage } from './chain-image.js';
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
 * the stored size first. A delta is read through its chain (ChainImage):
 * the tree its layers show together, as overlayfs shows them.
 */
export async function openBackup(backup: DirectoryBackup | string, options: OpenBackupOptions): Promise<BackupImage> {
  const handle = await resolveBackup(backup, options);
  checkNotExpired(handle);
  const layers = await resolveChain(handle, options);
  const images: SquashfsImage[] = [];
  try {
    for (const layer of layers) images.push(await openLayer(layer, options));
  } catch (error) {
    await Promise.allSettled(images.map((image) => image.close()));
    throw error;
  }
  return images.length === 1 ? images[0]! : new ChainImage(images);
}

/** Tables fetched whole by `openLayer({ wholeTables })`, at most. */
const WHOLE_TABLES_MAX = 64 * 1024 * 1024;
/** An image read whole (`openLayer({ whole })`) comes in pieces of at least this size, at most this many. */
const WHOLE_PIECE = 1024 * 1024;
const WHOLE_PIECES = 6;
/** The image's start read with `wholeTables`: the superblock and the compressor options after it (each a round trip of its own otherwise). */
const HEAD_BYTES = 4096;
/** The image's end read beside its superblock, in the hope that it holds the tables (about 20 bytes an entry). */
const TABLES_GUESS = 256 * 1024;

/**
 * One stored image (a full backup, or one layer of a chain on its own),
 * read by range; its stored size checked first. With `wholeTables`, for a
 * reader that will read all its metadata (a walk), the tables are fetched
 * with the size check and the superblock in one round trip (the image's
 * end, where the tables are, read beside them), not one per table. With
 * `whole`, for a small image whose files will be read too, all of it is.
 * `sizeChecked`: the caller has checked the stored size already.
 */
export async function openLayer(
  handle: DirectoryBackup,
  options: OpenBackupOptions & { wholeTables?: boolean; whole?: boolean; sizeChecked?: boolean; codecsLoading?: Promise<CodecRegistry> },
): Promise<SquashfsImage> {
  // The reads start at once; codecs still loading (`codecsLoading`) are awaited only to decode.
  const open = async (source: RandomAccessSource) =>
    SquashfsImage.open(source, { codecs: (await options.codecsLoading) ?? options.codecs ?? defaultCodecs(), cacheBlocks: options.cacheBlocks });
  const stored = storeSource(options.store, handle.key, handle.size);
  if (options.whole) {
    // All of it, beside the size check, in a few ranged GETs at once: for a small image whose data will be read too.
    const piece = Math.max(WHOLE_PIECE, Math.ceil(handle.size / WHOLE_PIECES));
    const pieces: Promise<Uint8Array>[] = [];
    for (let at = 0; at < handle.size; at += piece) pieces.push(stored.read(at, Math.min(piece, handle.size - at), options.signal));
    const reading = Promise.all(pieces);
    reading.catch(() => undefined); // a missing image is told by the size check
    if (!options.sizeChecked) await checkStored(handle, options.store, options.signal);
    const bytes = concatBytes(await reading);
    return open({ size: handle.size, read: async (offset, length) => bytes.slice(offset, offset + length) });
  }
  if (!options.wholeTables) {
    if (!options.sizeChecked) await checkStored(handle, options.store, options.signal);
    return open(readAheadSource(stored));
  }
  // The image's start (the superblock and the compressor options), and its end, where the tables are (a
  // guess at their size: a second read when they are larger).
  const reading = stored.read(0, Math.min(handle.size, HEAD_BYTES), options.signal);
  const tailStart = Math.max(0, handle.size - TABLES_GUESS);
  const tail = stored.read(tailStart, handle.size - tailStart, options.signal);
  reading.catch(() => undefined); // a missing image is told by the size check
  tail.catch(() => undefined);
  if (!options.sizeChecked) await checkStored(handle, options.store, options.signal);
  const head = await reading;
  const { inodeTableStart, bytesUsed } = decodeSuperblock(head.subarray(0, SUPERBLOCK_SIZE));
  const end = Math.min(bytesUsed, handle.size);
  let tables: Uint8Array | undefined;
  if (inodeTableStart >= tailStart && inodeTableStart < end) tables = (await tail).subarray(inodeTableStart - tailStart, end - tailStart);
  else if (inodeTableStart < end && end - inodeTableStart <= WHOLE_TABLES_MAX) tables = await stored.read(inodeTableStart, end - inodeTableStart, options.signal);
  const ahead = readAheadSource(stored);
  return open({
    size: handle.size,
    read: async (offset, length, signal) => {
      if (offset + length <= head.length) return head.slice(offset, offset + length);
      if (tables && offset >= inodeTableStart && offset + length <= end) return tables.slice(offset - inodeTableStart, offset - inodeTableStart + length);
      return ahead.read(offset, length, signal);
    },
  });
}

/** Every backup in the store (from the metadata objects), oldest first; expired ones included. */
export async function listBackups({ store, signal }: StoreOptions): Promise<DirectoryBackup[]> {
  return (await readHandles(store, signal)).sort(oldestFirst);
}

/** The handles of the store's metadata objects but `except`'s (whose own handle may be unreadable: it is being deleted). */
async function readHandles(store: ObjectStore, signal?: AbortSignal, except?: string): Promise<DirectoryBackup[]> {
  const ids: string[] = [];
  for await (const item of store.list('', signal)) {
    const id = item.key.endsWith('.json') ? item.key.slice(0, -5) : '';
    if (isBackupId(id) && id !== except) ids.push(id);
  }
  // A few at a time: each is a round trip.
  const found: DirectoryBackup[] = new Array(ids.length);
  let next = 0;
  const reader = async () => {
    for (let i = next++; i < ids.length; i = next++) found[i] = await resolveBackup(ids[i]!, { store, signal });
  };
  await Promise.all(Array.from({ length: Math.min(HANDLES_AT_ONCE, ids.length) }, reader));
  return found;
}

/** Handles read at once when listing a store. */
const HANDLES_AT_ONCE = 8;

const oldestFirst = (a: DirectoryBackup, b: DirectoryBackup) => a.createdAt.localeCompare(b.createdAt);

/**
 * The order to delete backups in so that no listed delta is ever without
 * its base: the top layers first (a delta's chain is longer than its
 * base's), the newest first among layers of one depth.
 */
const topLayersFirst = (a: DirectoryBackup, b: DirectoryBackup) => chainOf(b).length - chainOf(a).length || oldestFirst(b, a);

/** The id of the layer a backup is over (by its chain); undefined for a full backup. */
export function baseOf(backup: DirectoryBackup): string | undefined {
  const chain = chainOf(backup);
  return chain.length > 1 ? chain[chain.length - 2] : undefined;
}

function addTo<T>(map: Map<string, T[]>, key: string, value: T): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/**
 * Backups grouped by the full backup at the bottom of their chains, the
 * groups oldest first. Within a group each backup is followed by the deltas
 * over it (oldest first, each followed by its own), so a chain reads
 * downwards. A delta whose base is not among `backups` starts its own
 * branch of the group.
 */
export function chainsOf(backups: readonly DirectoryBackup[]): DirectoryBackup[][] {
  const groups = new Map<string, DirectoryBackup[]>();
  for (const backup of [...backups].sort(oldestFirst)) addTo(groups, chainOf(backup)[0]!, backup);
  return [...groups.values()].map((members) => {
    const ids = new Set(members.map((b) => b.id));
    const over = new Map<string, DirectoryBackup[]>();
    for (const b of members) {
      const base = baseOf(b);
      if (base !== undefined && ids.has(base)) addTo(over, base, b);
    }
    const ordered: DirectoryBackup[] = [];
    const visit = (b: DirectoryBackup) => {
      ordered.push(b);
      for (const delta of over.get(b.id) ?? []) visit(delta);
    };
    for (const b of members) {
      const base = baseOf(b);
      if (base === undefined || !ids.has(base)) visit(b);
    }
    return ordered;
  });
}

/**
 * Removes one backup's objects: its metadata first (so a listed backup
 * always has its image), then the image, then its checksums when its
 * handle names them.
 */
async function removeBackup(id: string, checksums: string | undefined, store: ObjectStore, signal?: AbortSignal): Promise<void> {
  await store.delete(metadataKey(id), signal);
  await store.delete(imageKey(id), signal);
  if (checksums) await store.delete(checksums, signal);
}

export interface DeleteBackupOptions extends StoreOptions {
  /**
   * Also delete the backups that have this one in their chains (deltas
   * over it, at any depth, live or not), top layers first. Without it,
   * such backups make the delete fail with BACKUP_IN_USE.
   */
  dependants?: boolean;
}

/**
 * Removes a backup: its metadata first (so a listed backup always has its
 * image), then the image. A backup other backups are layered over is
 * deleted only with them (`dependants`), so that no delta outlives its
 * base. Resolves the ids deleted, in the order they were.
 */
export async function deleteBackup(backup: DirectoryBackup | string, { store, signal, dependants }: DeleteBackupOptions): Promise<string[]> {
  const id = typeof backup === 'string' ? backup : parseHandle(backup, 'the backup handle').id;
  if (!isBackupId(id)) throw new BackupError('INVALID_BACKUP_CONFIG', `"${id}" is not a backup id (a UUID)`);
  if (!(await store.head(metadataKey(id), signal)) && !(await store.head(imageKey(id), signal))) {
    throw new BackupError('BACKUP_NOT_FOUND', `no backup ${id} in ${store.location}`, { key: metadataKey(id) });
  }
  const over = (await readHandles(store, signal, id)).filter((b) => chainOf(b).includes(id)).sort(topLayersFirst);
  if (over.length > 0 && !dependants) {
    const now = Date.now();
    const named = over.map((b) => `${b.id} (${now > Date.parse(b.expiresAt) ? 'expired' : `live until ${b.expiresAt}`})`);
    throw new BackupError(
      'BACKUP_IN_USE',
      `backup ${id} is in the chain of ${over.length} other backup${over.length === 1 ? '' : 's'}: ${named.join(', ')}; delete ${over.length === 1 ? 'it' : 'them'} first, or pass dependants: true to delete ${over.length === 1 ? 'it' : 'them'} with it`,
      { key: metadataKey(id) },
    );
  }
  // Its own handle, for its checksums' key (a backup whose handle cannot be read is still deleted).
  const own = typeof backup === 'string' ? await resolveBackup(id, { store, signal }).catch(() => undefined) : backup;
  for (const b of over) await removeBackup(b.id, b.checksums, store, signal);
  await removeBackup(id, own?.checksums, store, signal);
  return [...over.map((b) => b.id), id];
}

export interface PruneOptions extends StoreOptions {
  /** The time to judge expiry by (ms since the epoch; default now). */
  now?: number;
  /** Called for each expired backup kept because a live backup has it in its chain, with why. */
  onKept?: (backup: DirectoryBackup, reason: string) => void;
}

/**
 * Deletes every expired backup that no live backup needs; returns those
 * deleted. An expired backup in the chain of a live one (at any depth) is
 * kept, and `onKept` says for which. Deltas are deleted before their bases.
 */
export async function pruneExpiredBackups(options: PruneOptions): Promise<DirectoryBackup[]> {
  const now = options.now ?? Date.now();
  const all = await listBackups(options);
  const expired = (b: DirectoryBackup) => now > Date.parse(b.expiresAt);
  /** For each backup a live one needs, the live one that needs it longest. */
  const neededBy = new Map<string, DirectoryBackup>();
  for (const live of all.filter((b) => !expired(b))) {
    for (const id of chainOf(live)) {
      const other = neededBy.get(id);
      if (id !== live.id && (!other || Date.parse(live.expiresAt) > Date.parse(other.expiresAt))) neededBy.set(id, live);
    }
  }
  const gone: DirectoryBackup[] = [];
  for (const backup of all.filter(expired)) {
    const live = neededBy.get(backup.id);
    if (live) options.onKept?.(backup, `base of live backup ${live.id} (expires ${live.expiresAt})`);
    else gone.push(backup);
  }
  for (const backup of [...gone].sort(topLayersFirst)) await removeBackup(backup.id, backup.checksums, options.store, options.signal);
  return gone;
}
