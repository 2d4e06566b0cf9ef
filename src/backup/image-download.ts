import { BackupError, SquashfsError } from '../errors.js';
import type { HashFactory } from '../hash.js';
import { decodeSuperblock, SUPERBLOCK_SIZE } from '../squashfs/superblock.js';
import { RangeDownload, type DownloadedRange, type DownloadOptions } from '../uploader/download.js';
import type { ObjectStore } from '../uploader/store.js';
import { checkIntegrity, SuperblockLastHasher, type DirectoryBackup } from './handle.js';
import { checkStored } from './manage.js';

/** Fetched first: the superblock and the compressor options (one metadata block) after it, which opening the image reads. */
const HEAD_BYTES = SUPERBLOCK_SIZE + 2 + 8192;

/**
 * A backup's image as it downloads, for a restore that extracts while it
 * downloads. The superblock and the tables (everything from the inode
 * table to the end: what a walk reads) come first, by range; the data
 * region before them then comes by parallel ranged GETs, taken one range
 * at a time, in order, with `next`. Every byte is hashed in image order
 * as it is taken; `verify` checks size and SHA-256 once all is taken.
 */
export class ImageDownload {
  private readonly hasher: SuperblockLastHasher;
  private readonly ranges: RangeDownload;
  /** The data region's bytes taken so far: [0, taken). */
  taken = 0;

  private constructor(
    readonly backup: DirectoryBackup,
    readonly store: ObjectStore,
    /** The image's first bytes: the superblock, and the compressor options after it. */
    readonly head: Uint8Array,
    /** Where the tables start: the data region is [0, tablesStart). */
    readonly tablesStart: number,
    /** The image from `tablesStart` to its end. */
    readonly tables: Uint8Array,
    ranges: RangeDownload,
    createHash: HashFactory,
  ) {
    this.hasher = new SuperblockLastHasher(createHash());
    this.ranges = ranges;
  }

  /**
   * Checks the image is stored with the handle's size (a HEAD, beside the
   * first GET: BACKUP_NOT_FOUND or BACKUP_INTEGRITY_ERROR first; not when
   * `sizeChecked` says the caller did), fetches the superblock, then the
   * tables and, at once beside them, the data region.
   */
  static async start(
    backup: DirectoryBackup, store: ObjectStore, createHash: HashFactory, options: DownloadOptions = {}, signal?: AbortSignal, sizeChecked = false,
  ): Promise<ImageDownload> {
    const [stored, started] = await Promise.allSettled([sizeChecked || checkStored(backup, store, signal), ImageDownload.fetch(backup, store, createHash, options, signal)]);
    if (stored.status === 'rejected') {
      if (started.status === 'fulfilled') started.value.close();
      throw stored.reason;
    }
    if (started.status === 'rejected') throw started.reason;
    return started.value;
  }

  private static async fetch(backup: DirectoryBackup, store: ObjectStore, createHash: HashFactory, options: DownloadOptions, signal?: AbortSignal): Promise<ImageDownload> {
    const { key, size } = backup;
    if (size < SUPERBLOCK_SIZE) throw new BackupError('BACKUP_INTEGRITY_ERROR', `backup ${backup.id}: ${size} bytes cannot hold an image`, { key });
    const head = await store.getRange(key, 0, Math.min(size, HEAD_BYTES), signal).catch((cause: unknown) => {
      throw downloadFailed(store, key, cause);
    });
    let tablesStart = Number.NaN;
    try {
      tablesStart = decodeSuperblock(head.subarray(0, SUPERBLOCK_SIZE)).inodeTableStart;
    } catch {
      // judged just below
    }
    // A superblock that is not the one backed up shows as an integrity error, as any other changed byte would.
    if (!(tablesStart >= SUPERBLOCK_SIZE && tablesStart <= size)) {
      throw new BackupError('BACKUP_INTEGRITY_ERROR', `backup ${backup.id}: the stored image's superblock is not one this backup wrote (tables at ${tablesStart} of ${size} bytes)`, { key });
    }
    const ranges = new RangeDownload(store, key, 0, tablesStart, options, signal);
    try {
      const tables = await store.getRange(key, tablesStart, size - tablesStart, signal);
      return new ImageDownload(backup, store, head, tablesStart, tables, ranges, createHash);
    } catch (cause) {
      ranges.close();
      throw downloadFailed(store, key, cause);
    }
  }

  /** The next range of the data region, hashed; undefined once it is all taken. */
  async next(): Promise<DownloadedRange | undefined> {
    let range: DownloadedRange | undefined;
    try {
      range = await this.ranges.next();
    } catch (cause) {
      throw downloadFailed(this.store, this.backup.key, cause);
    }
    if (!range) return undefined;
    this.hasher.update(range.bytes);
    this.taken = range.offset + range.bytes.length;
    return range;
  }

  /** Once every range is taken: hashes the tables and checks size and SHA-256 (BACKUP_INTEGRITY_ERROR). */
  verify(): void {
    if (this.taken !== this.tablesStart) throw new Error(`verify() before the data region was taken (${this.taken} of ${this.tablesStart} bytes)`);
    this.hasher.update(this.tables);
    checkIntegrity(this.backup, this.hasher);
  }

  /** Stops fetching. */
  close(): void {
    this.ranges.close();
  }

  /**
   * Bytes the download holds from the start: the head (superblock,
   * compressor options) and the tables; undefined for anything else.
   */
  held(offset: number, length: number): Uint8Array | undefined {
    if (offset + length <= this.head.length) return this.head.slice(offset, offset + length);
    if (offset >= this.tablesStart) return this.tables.slice(offset - this.tablesStart, offset - this.tablesStart + length);
    return undefined;
  }
}

/** A download's failure as the restore reports it: BACKUP_RESTORE_ERROR naming the object (backup errors and aborts as they are). */
function downloadFailed(store: ObjectStore, key: string, cause: unknown): unknown {
  if (cause instanceof BackupError || (cause instanceof SquashfsError && cause.code === 'ABORTED')) return cause;
  return new BackupError('BACKUP_RESTORE_ERROR', `download of ${store.location}/${key} failed: ${(cause as Error)?.message ?? String(cause)}`, { key, cause });
}
