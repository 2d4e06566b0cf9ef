import { BackupError } from '../errors.js';
import type { DirectoryBackup } from './handle.js';
import { resolveBackup, type StoreOptions } from './manage.js';

/**
 * Chains of incremental backups. A delta is an ordinary SquashFS image that
 * is an overlayfs layer over its base: it holds every new or changed entry
 * in full and each directory on the path to a change; a deleted entry is a
 * whiteout (a character device 0:0 of its name); a directory that hides
 * everything below it is opaque (`trusted.overlay.opaque` = "y"). So
 * `mount -t overlay overlay -o lowerdir=LN:...:L1:BASE merged` shows the
 * tree that was backed up, and so do restore and openBackup here.
 */

/** The xattr that makes a directory of a layer opaque, and its value. */
export const OPAQUE_XATTR = 'trusted.overlay.opaque';
export const OPAQUE_VALUE = new Uint8Array([0x79]); // "y"
/** Extended attributes overlayfs keeps for itself: never part of the merged tree. */
export const OVERLAY_XATTR_PREFIX = 'trusted.overlay.';

/** Deltas on top of a full backup, at most (createBackup's default `maxChain`). */
export const DEFAULT_MAX_CHAIN = 8;

/** Whether an entry of a layer is a whiteout: a character device 0:0. */
export function isWhiteout(stat: { type: string; rdev?: { major: number; minor: number } }): boolean {
  return stat.type === 'char-device' && (stat.rdev?.major ?? 0) === 0 && (stat.rdev?.minor ?? 0) === 0;
}

/** Whether a layer's directory, by its xattrs, is opaque. */
export function isOpaque(xattrs: readonly { name: string; value: Uint8Array }[]): boolean {
  return xattrs.some((x) => x.name === OPAQUE_XATTR && x.value.length === 1 && x.value[0] === OPAQUE_VALUE[0]);
}

/** The ids a backup's chain is made of, from the full backup to it. */
export function chainOf(backup: DirectoryBackup): string[] {
  return backup.chain ?? [backup.id];
}

/**
 * The handles of a backup's chain, from the full backup to it (one handle
 * for a full backup). Every layer's metadata must be in the store
 * (BACKUP_NOT_FOUND naming the missing layer otherwise); handles in
 * `known` (a listing just read) are not read again. Only the top's
 * expiry counts (the caller checks it): a base lives as long as a live
 * delta needs it, and prune keeps it that long.
 */
export async function resolveChain(backup: DirectoryBackup, options: StoreOptions & { known?: readonly DirectoryBackup[] }): Promise<DirectoryBackup[]> {
  const ids = chainOf(backup);
  // The handles are read at once: each is a round trip.
  const layers = await Promise.all(ids.map(async (id, i) => {
    if (id === backup.id) return backup;
    const known = options.known?.find((b) => b.id === id);
    if (known) return known;
    return resolveBackup(id, options).catch((error: unknown) => {
      if (error instanceof BackupError && error.code === 'BACKUP_NOT_FOUND') {
        throw new BackupError('BACKUP_NOT_FOUND', `backup ${backup.id}: layer ${i + 1} of its chain of ${ids.length} (${id}) is missing from ${options.store.location}`, {
          key: error.key, cause: error,
        });
      }
      throw error;
    });
  }));
  return layers;
}
