import type { Inode } from '../inode/inode.js';
import type { Xattr } from '../xattr-table.js';

/**
 * Random access to an image's bytes: a Uint8Array, a file, HTTP Range
 * requests, an R2 object. `read` returns exactly `length` bytes or throws.
 */
export interface RandomAccessSource {
  readonly size: number;
  read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array>;
  close?(): Promise<void>;
}

/** A path inside an image: "/a/b" (UTF-8) or raw bytes (names are bytes). */
export type ImagePath = string | Uint8Array;

export type EntryType = Inode['kind'];

/** What `stat` tells of an entry (never following symlinks). */
export interface EntryStat {
  type: EntryType;
  /** st_mode: type bits and the 12 permission bits. */
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch. */
  mtime: number;
  /** Bytes for files, target length for symlinks, listing size + 3 for directories, 0 otherwise. */
  size: number;
  nlink: number;
  /** The inode number (equal for hard links). */
  inode: number;
  /** Devices only. */
  rdev?: { major: number; minor: number };
  /** Regular files: bytes stored as holes. */
  sparse?: number;
  /** Whether the inode has extended attributes (read them with `xattrs`). */
  hasXattrs: boolean;
}

export interface DirEntry {
  /** The name decoded as UTF-8 (invalid bytes become U+FFFD). */
  name: string;
  /** The name's bytes as stored. */
  nameBytes: Uint8Array;
  type: EntryType;
  inode: number;
}

/** One entry of `walk()`: parents come before their children. */
export interface WalkEntry {
  /** "/"-joined path from the root ("" for the root itself), decoded for display. */
  path: string;
  /** The raw names from the root down (empty for the root). */
  names: Uint8Array[];
  stat: EntryStat;
}

/** A piece of a regular file's contents, in order: bytes, or a hole of zeros. */
export type FileChunk = { offset: number; bytes: Uint8Array; hole?: undefined } | { offset: number; hole: number; bytes?: undefined };

export interface ImageInfo {
  compression: string;
  compressionId: number;
  /** Compressor options as stored (undefined when the defaults apply). */
  compressorOptions?: Record<string, number>;
  blockSize: number;
  bytesUsed: number;
  /** The image's length as seen by the source. */
  size: number;
  inodes: number;
  fragments: number;
  ids: number;
  modificationTime: number;
  flags: string[];
  exportable: boolean;
  version: string;
}

export type { Xattr };
