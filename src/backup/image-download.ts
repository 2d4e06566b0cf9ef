import { BackupError, SquashfsError } from '../errors.js';
import type { HashFactory } from '../hash.js';
import { decodeSuperblock, SUPERBLOCK_SIZE } from '../squashfs/superblock.js';
import { downloadRanges, type DownloadedRange, type DownloadOptions } from '../uploader/download.js';
import { StoreError, type ObjectStore } from '../uploader/store.js';
import { checkIntegrity, SuperblockLastHasher, type DirectoryBackup } from './handle.js';

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
  private readonly ranges: AsyncGenerator<DownloadedRange>;
  /** The data region's bytes taken so far: [0, taken). */
  taken = 0;

  private constructor(
    readonly backup: DirectoryBackup,
    readonly store: ObjectStore,
    /** The superblock as stored. */
    readonly head: Uint8Array,
    /** Where the tables start: the data region is [0, tablesStart). */
    readonly tablesStart: number,
    /** The image from `tablesStart` to its end. */
    readonly tables: Uint8Array,
    createHash: HashFactory,
    options: DownloadOptions,
    signal?: AbortSignal,
  ) {
    this.hasher = new SuperblockLastHasher(createHash());
    this.ranges = downloadRanges(store, backup.key, 0, tablesStart, options, signal);
  }

  /** Fetches the superblock, then the tables; the data region waits for `next`. */
  static async start(backup: DirectoryBackup, store: ObjectStore, createHash: HashFactory, options: DownloadOptions = {}, signal?: AbortSignal): Promise<ImageDownload> {
    const { key, size } = backup;
    const fail = (message: string, cause?: unknown) => {
      if (cause instanceof BackupError) return cause;
      return new BackupError('BACKUP_RESTORE_ERROR', `download of ${store.location}/${key} failed: ${message}`, { key, cause });
    };
    if (size < SUPERBLOCK_SIZE) throw new BackupError('BACKUP_INTEGRITY_ERROR', `backup ${backup.id}: ${size} bytes cannot hold an image`, { key });
    const head = await store.getRange(key, 0, SUPERBLOCK_SIZE, signal).catch((cause: unknown) => {
      throw fail((cause as Error).message, cause);
    });
    let tablesStart = Number.NaN;
    try {
      tablesStart = decodeSuperblock(head).inodeTableStart;
    } catch {
      // judged just below
    }
    // A superblock that is not the one backed up shows as an integrity error, as any other changed byte would.
    if (!(tablesStart >= SUPERBLOCK_SIZE && tablesStart <= size)) {
      throw new BackupError('BACKUP_INTEGRITY_ERROR', `backup ${backup.id}: the stored image's superblock is not one this backup wrote (tables at ${tablesStart} of ${size} bytes)`, { key });
    }
    const tables = await store.getRange(key, tablesStart, size - tablesStart, signal).catch((cause: unknown) => {
      throw fail((cause as Error).message, cause);
    });
    return new ImageDownload(backup, store, head, tablesStart, tables, createHash, options, signal);
  }

  /** The next range of the data region, hashed; undefined once it is all taken. */
  async next(): Promise<DownloadedRange | undefined> {
    let result: IteratorResult<DownloadedRange>;
    try {
      result = await this.ranges.next();
    } catch (cause) {
      if (cause instanceof BackupError || (cause instanceof SquashfsError && cause.code === 'ABORTED')) throw cause;
      const message = cause instanceof StoreError ? cause.message : `${(cause as Error)?.message ?? cause}`;
      throw new BackupError('BACKUP_RESTORE_ERROR', `download of ${this.store.location}/${this.backup.key} failed: ${message}`, { key: this.backup.key, cause });
    }
    if (result.done) return undefined;
    this.hasher.update(result.value.bytes);
    this.taken = result.value.offset + result.value.bytes.length;
    return result.value;
  }

  /** Once every range is taken: hashes the tables and checks size and SHA-256 (BACKUP_INTEGRITY_ERROR). */
  verify(): void {
    if (this.taken !== this.tablesStart) throw new Error(`verify() before the data region was taken (${this.taken} of ${this.tablesStart} bytes)`);
    this.hasher.update(this.tables);
    checkIntegrity(this.backup, this.hasher);
  }

  /** Stops fetching. */
  async close(): Promise<void> {
    await this.ranges.return(undefined);
  }

  /**
   * Bytes the download already holds without the data region: the
   * superblock and the tables; undefined for anything else.
   */
  held(offset: number, length: number): Uint8Array | undefined {
    if (offset + length <= SUPERBLOCK_SIZE) return this.head.slice(offset, offset + length);
    if (offset >= this.tablesStart) return this.tables.slice(offset - this.tablesStart, offset - this.tablesStart + length);
    return undefined;
  }
}
