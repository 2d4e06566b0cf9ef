import { GZIP_ID } from '../codecs/gzip.js';
import { LZ4_ID } from '../codecs/lz4.js';
import { LZMA_ID } from '../codecs/lzma.js';
import { LZO_ID } from '../codecs/lzo.js';
import { XZ_ID } from '../codecs/xz.js';
import { ZSTD_ID } from '../codecs/zstd.js';

/** "hsqs" read as a little-endian u32. */
export const SQUASHFS_MAGIC = 0x73717368;

/** Uncompressed payload of one metadata block. */
export const METADATA_SIZE = 8192;
/** Bit 15 of a metadata block header: the block is stored uncompressed. */
export const METADATA_UNCOMPRESSED = 0x8000;
/** Bit 24 of a data block size word: the block is stored uncompressed. */
export const DATA_UNCOMPRESSED = 1 << 24;
/** Mask for the stored length in a data block size word. */
export const DATA_SIZE_MASK = DATA_UNCOMPRESSED - 1;

/** A file with no fragment, an inode with no xattrs. */
export const NO_INDEX = 0xffffffff;
/** A table that is absent (export, xattr). */
export const NOT_SET = 0xffff_ffff_ffff_ffffn;

export const MIN_BLOCK_SIZE = 4096;
export const MAX_BLOCK_SIZE = 1024 * 1024;
export const DEFAULT_BLOCK_SIZE = 128 * 1024;
/** The longest name a directory entry can hold. */
export const MAX_NAME_LENGTH = 256;
/** Names longer than this are refused, like Linux's NAME_MAX. */
export const NAME_MAX = 255;
/** Images are padded to a multiple of this. */
export const DEVICE_BLOCK = 4096;
/** The id table holds at most this many distinct uids and gids. */
export const MAX_IDS = 65536;

/** Superblock flags (squashfs_fs.h). */
export const Flag = {
  UNCOMPRESSED_INODES: 0x0001,
  UNCOMPRESSED_DATA: 0x0002,
  CHECK: 0x0004,
  UNCOMPRESSED_FRAGMENTS: 0x0008,
  NO_FRAGMENTS: 0x0010,
  ALWAYS_FRAGMENTS: 0x0020,
  DUPLICATES: 0x0040,
  EXPORTABLE: 0x0080,
  UNCOMPRESSED_XATTRS: 0x0100,
  NO_XATTRS: 0x0200,
  COMPRESSOR_OPTIONS: 0x0400,
  UNCOMPRESSED_IDS: 0x0800,
} as const;

/**
 * On-disk compressor ids, as each codec declares its own (the registry of
 * codecs is keyed by them): the format's names for them.
 */
export const CompressorId = {
  GZIP: GZIP_ID,
  LZMA: LZMA_ID,
  LZO: LZO_ID,
  XZ: XZ_ID,
  LZ4: LZ4_ID,
  ZSTD: ZSTD_ID,
} as const;
export type CompressorId = (typeof CompressorId)[keyof typeof CompressorId];

/** Inode types; the extended variant of a basic type is basic + 7. */
export const InodeType = {
  DIR: 1,
  FILE: 2,
  SYMLINK: 3,
  BLOCK_DEV: 4,
  CHAR_DEV: 5,
  FIFO: 6,
  SOCKET: 7,
  EXT_DIR: 8,
  EXT_FILE: 9,
  EXT_SYMLINK: 10,
  EXT_BLOCK_DEV: 11,
  EXT_CHAR_DEV: 12,
  EXT_FIFO: 13,
  EXT_SOCKET: 14,
} as const;
export type InodeType = (typeof InodeType)[keyof typeof InodeType];

/** The basic type of an inode type, as written in directory entries. */
export function basicType(type: number): number {
  return type > 7 ? type - 7 : type;
}
