import { BackupError } from '../errors.js';
import { toHex, type Hasher } from '../hash.js';

/**
 * The handle of a stored backup: plain JSON, to keep in KV or a database
 * and restore anywhere. The store also keeps it, as `<id>.json` beside the
 * image `<id>.sqfs`, so a backup can be found by id alone.
 */
export interface DirectoryBackup {
  format: 'squashfs-4.0';
  /** A UUID. */
  id: string;
  name: string;
  /** The directory that was backed up (the default restore target). */
  dir: string;
  /** The image's key in the store. */
  key: string;
  /** Image bytes. */
  size: number;
  /**
   * SHA-256 (hex) of the image with its 96-byte superblock hashed last:
   * bytes 96..end, then bytes 0..95. The superblock is known only when the
   * rest has streamed away, so this is what a one-pass upload can hash;
   * `(tail -c +97 image; head -c 96 image) | sha256sum` checks it by hand.
   */
  sha256: string;
  compression: 'zstd' | 'gzip' | 'lz4' | 'xz';
  level: number;
  blockSize: number;
  /** ISO 8601 times. */
  createdAt: string;
  expiresAt: string;
  /** Regular files in the backup. */
  files: number;
  /**
   * Bytes of those files (each hard-linked file once): what a restore
   * writes, holes included. Absent in handles made before it was recorded.
   */
  bytes?: number;
  /** Entries of every kind. */
  entries: number;
  /** What the backup noticed but did not refuse (e.g. symlinks pointing outside `dir`). */
  warnings: string[];
  /**
   * A delta (an incremental backup): the id of the backup it is a layer
   * over. Absent for a full backup.
   */
  base?: string;
  /** Ids from the full backup at the bottom of the chain to this one (this one last); `[id]` for a full backup. */
  chain?: string[];
  /** The key of its checksums (`<id>.sha256`, sha256sum format), when it was made with them. */
  checksums?: string;
}

export const SUPERBLOCK_BYTES = 96;
export const DEFAULT_TTL = 3 * 24 * 60 * 60;

export const imageKey = (id: string) => `${id}.sqfs`;
export const metadataKey = (id: string) => `${id}.json`;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isBackupId(id: string): boolean {
  return UUID.test(id);
}

/** Checks a handle read from JSON (a user's, or the store's metadata object). */
export function parseHandle(value: unknown, where: string): DirectoryBackup {
  const h = value as Partial<DirectoryBackup> | null;
  const fields: [keyof DirectoryBackup, string][] = [
    ['id', 'string'], ['key', 'string'], ['size', 'number'], ['sha256', 'string'], ['createdAt', 'string'], ['expiresAt', 'string'], ['dir', 'string'],
  ];
  const badChain =
    !!h && typeof h === 'object' &&
    ((h.base !== undefined && (typeof h.base !== 'string' || !isBackupId(h.base))) ||
      (h.chain !== undefined && (!Array.isArray(h.chain) || h.chain.length === 0 || !h.chain.every((id) => typeof id === 'string' && isBackupId(id)) || h.chain[h.chain.length - 1] !== h.id)) ||
      (h.chain !== undefined && h.chain.length > 1) !== (h.base !== undefined) ||
      (h.base !== undefined && h.chain![h.chain!.length - 2] !== h.base));
  const bad = !h || typeof h !== 'object' || h.format !== 'squashfs-4.0' || fields.some(([k, t]) => typeof h[k] !== t) || !isBackupId(h.id!) || badChain;
  if (bad) throw new BackupError('INVALID_BACKUP_CONFIG', `${where} is not a backup handle (format squashfs-4.0 with id, key, size, sha256, dir, createdAt, expiresAt; a delta's base and chain ending in base, id)`);
  return h as DirectoryBackup;
}

/** Throws BACKUP_EXPIRED when the handle's time is up. */
export function checkNotExpired(backup: DirectoryBackup, now = Date.now()): void {
  if (now > Date.parse(backup.expiresAt)) {
    throw new BackupError('BACKUP_EXPIRED', `backup ${backup.id}${backup.name ? ` ("${backup.name}")` : ''} expired at ${backup.expiresAt}`, { key: backup.key });
  }
}

/** Throws BACKUP_INTEGRITY_ERROR unless a downloaded image (hashed with SuperblockLastHasher) is the one backed up. */
export function checkIntegrity(backup: DirectoryBackup, hasher: SuperblockLastHasher): void {
  const sha256 = toHex(hasher.digest());
  if (hasher.size !== backup.size || sha256 !== backup.sha256) {
    throw new BackupError(
      'BACKUP_INTEGRITY_ERROR',
      `backup ${backup.id}: the stored image (${hasher.size} bytes, sha256 ${sha256}) is not the one backed up (${backup.size} bytes, sha256 ${backup.sha256})`,
      { key: backup.key },
    );
  }
}

/**
 * Hashes an image as it streams by, superblock last (see
 * DirectoryBackup.sha256): the first 96 bytes are held back and hashed
 * after everything else, or replaced by `head` when one is given.
 */
export class SuperblockLastHasher {
  private held = new Uint8Array(SUPERBLOCK_BYTES);
  private heldBytes = 0;
  size = 0;

  constructor(private readonly hasher: Hasher) {}

  update(chunk: Uint8Array): void {
    this.size += chunk.length;
    let at = 0;
    if (this.heldBytes < SUPERBLOCK_BYTES) {
      at = Math.min(chunk.length, SUPERBLOCK_BYTES - this.heldBytes);
      this.held.set(chunk.subarray(0, at), this.heldBytes);
      this.heldBytes += at;
    }
    if (at < chunk.length) this.hasher.update(chunk.subarray(at));
  }

  /** The digest; `head` replaces the held-back start (the superblock patched in at the end). */
  digest(head?: Uint8Array): Uint8Array {
    const start = this.held.subarray(0, this.heldBytes).slice();
    if (head) start.set(head.subarray(0, start.length), 0);
    this.hasher.update(start);
    return this.hasher.digest();
  }
}
