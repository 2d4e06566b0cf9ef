import type { Xattr } from '../squashfs/xattr-table.js';

/**
 * A path handed to a tree source: a string where every name is valid UTF-8,
 * the raw bytes otherwise (names are bytes, not text).
 */
export type SourcePath = string | Uint8Array;

/** What the writer needs of an lstat. */
export interface SourceStat {
  /** Type and permission bits, as st_mode. */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Modification time in whole seconds since the epoch. */
  mtime: number;
  /** Inode and device numbers: equal pairs are hard links. */
  ino: number | bigint;
  dev: number | bigint;
  nlink: number;
  /** For devices: the device's major and minor numbers. */
  rdevMajor: number;
  rdevMinor: number;
}

export interface SourceFile {
  /** Reads up to `buffer.length` bytes at `position`; returns how many were read (0 at the end). */
  read(buffer: Uint8Array, position: number): Promise<number>;
  /**
   * The OS file descriptor, where the file is a real open file: other
   * threads of the process can read it too (the compression workers do).
   */
  fd?: number;
  close(): Promise<void>;
}

/**
 * The tree the writer packs. `fsSource` adapts anything shaped like
 * node:fs/promises (memfs included); other sources implement this directly.
 */
/**
 * Extended attributes per path: at once where they are at hand (a table
 * read already), else later. A walk asks for every entry's, so an answer at
 * once saves a turn of the event loop per entry.
 */
export type XattrLookup = (path: SourcePath) => readonly Xattr[] | undefined | Promise<readonly Xattr[] | undefined>;

/**
 * A tree source's calls answered at once, where the source can (Node's
 * synchronous fs calls): the walk and the reads of small files then take
 * no turn of the event loop each. Each throws what its async form rejects
 * with.
 */
export interface SyncTreeSource {
  /**
   * The source these calls answer for. A source made from another by
   * spreading it (`{ ...source, lstat }`, to change some of its calls) is
   * not that one: it is read through its own async calls (see syncOf).
   */
  readonly of: TreeSource;
  lstat(path: SourcePath): SourceStat;
  readdir(path: SourcePath): Uint8Array[];
  readlink(path: SourcePath): Uint8Array;
  /** Reads a file's first `buffer.length` bytes (fewer where it ends) into `buffer`; returns how many. */
  readStart(path: SourcePath, buffer: Uint8Array): number;
}

export interface TreeSource {
  /** The same calls, answered at once (see SyncTreeSource and syncOf). */
  sync?: SyncTreeSource;
  lstat(path: SourcePath): Promise<SourceStat>;
  /** The raw names in a directory, without "." and "..". */
  readdir(path: SourcePath): Promise<Uint8Array[]>;
  readlink(path: SourcePath): Promise<Uint8Array>;
  open(path: SourcePath): Promise<SourceFile>;
  /** Extended attributes, where the source exposes them. */
  xattrs?(path: SourcePath): Promise<readonly Xattr[] | undefined>;
  /**
   * A regular file's data as another SquashFS image stores it, where the
   * source is such an image: the writer copies its blocks verbatim when the
   * compressor and block size agree (no decompressing and recompressing).
   */
  storedData?(path: SourcePath): Promise<StoredFileData | undefined>;
}

/** A source's synchronous calls, where it has its own (not another's it was spread from). */
export function syncOf(source: TreeSource): SyncTreeSource | undefined {
  return source.sync?.of === source ? source.sync : undefined;
}

/** A file's data as stored in a SquashFS image (see TreeSource.storedData). */
export interface StoredFileData {
  /** The image's compressor id and block size: blocks are only of use to an image with the same. */
  compressionId: number;
  blockSize: number;
  size: number;
  /** Size words of the blocks the image stores for the file (0: a hole), the last one partial when its tail is not in a fragment. */
  words: Uint32Array;
  /** The stored bytes of block `index` (none for a hole). */
  block(index: number): Promise<Uint8Array>;
  /** The file's last `size % blockSize` bytes, decompressed (from its fragment or its last block). */
  tail(): Promise<Uint8Array>;
  /** Equal for two files whose data the image stores once (duplicates): the writer stores them once too. */
  identity: string;
  /**
   * Where the image keeps the data: the blocks' start, and the fragment
   * (index 0xffffffff: none) and offset in it; a writer that takes the
   * image's whole data region (WriterOptions.reuse) points there.
   */
  at?: { blocksStart: number; fragmentIndex: number; fragmentOffset: number };
  /** Which image of several the data is in (a chain's layer), where the source is made of several. */
  origin?: string;
}

export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;
