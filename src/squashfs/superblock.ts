import { SquashfsError } from '../errors.js';
import { getU64, setU64 } from './bytes.js';
import { MAX_BLOCK_SIZE, MIN_BLOCK_SIZE, SQUASHFS_MAGIC } from './constants.js';

export const SUPERBLOCK_SIZE = 96;

/** The 96-byte superblock at offset 0 of every image. */
export interface Superblock {
  /** Number of inodes stored in the inode table. */
  inodeCount: number;
  /** Last modification time of the archive, seconds since the epoch. */
  modificationTime: number;
  /** The size of a data block in bytes; a power of two from 4 KiB to 1 MiB. */
  blockSize: number;
  /** The number of entries in the fragment table. */
  fragmentEntryCount: number;
  /** The compressor id used for data and metadata blocks. */
  compressionId: number;
  /** log2 of block_size; must agree with it. */
  blockLog: number;
  /** Superblock flags (see `Flag`). */
  flags: number;
  /** The number of entries in the id lookup table. */
  idCount: number;
  versionMajor: number;
  versionMinor: number;
  /** Reference to the root directory inode. */
  rootInodeRef: bigint;
  /** Bytes used by the archive, excluding the padding to the device block. */
  bytesUsed: number;
  idTableStart: number;
  /** Start of the xattr id table header, or `undefined` when absent (all ones on disk). */
  xattrIdTableStart: number | undefined;
  inodeTableStart: number;
  directoryTableStart: number;
  fragmentTableStart: number;
  /** Start of the export (lookup) table index, or `undefined` when absent. */
  exportTableStart: number | undefined;
}

/** Where each field lies in the 96-byte superblock. */
export const SUPERBLOCK_FIELDS = {
  magic: 0,
  inodeCount: 4,
  modificationTime: 8,
  blockSize: 12,
  fragmentEntryCount: 16,
  compressionId: 20,
  blockLog: 22,
  flags: 24,
  idCount: 26,
  versionMajor: 28,
  versionMinor: 30,
  rootInodeRef: 32,
  bytesUsed: 40,
  idTableStart: 48,
  xattrIdTableStart: 56,
  inodeTableStart: 64,
  directoryTableStart: 72,
  fragmentTableStart: 80,
  exportTableStart: 88,
} as const;
const O = SUPERBLOCK_FIELDS;

const ALL_ONES = 0xffff_ffff_ffff_ffffn;

export function encodeSuperblock(sb: Superblock): Uint8Array {
  const bytes = new Uint8Array(SUPERBLOCK_SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint32(O.magic, SQUASHFS_MAGIC, true);
  view.setUint32(O.inodeCount, sb.inodeCount, true);
  view.setUint32(O.modificationTime, sb.modificationTime, true);
  view.setUint32(O.blockSize, sb.blockSize, true);
  view.setUint32(O.fragmentEntryCount, sb.fragmentEntryCount, true);
  view.setUint16(O.compressionId, sb.compressionId, true);
  view.setUint16(O.blockLog, sb.blockLog, true);
  view.setUint16(O.flags, sb.flags, true);
  view.setUint16(O.idCount, sb.idCount, true);
  view.setUint16(O.versionMajor, sb.versionMajor, true);
  view.setUint16(O.versionMinor, sb.versionMinor, true);
  view.setBigUint64(O.rootInodeRef, sb.rootInodeRef, true);
  setU64(view, O.bytesUsed, sb.bytesUsed);
  setU64(view, O.idTableStart, sb.idTableStart);
  if (sb.xattrIdTableStart === undefined) view.setBigUint64(O.xattrIdTableStart, ALL_ONES, true);
  else setU64(view, O.xattrIdTableStart, sb.xattrIdTableStart);
  setU64(view, O.inodeTableStart, sb.inodeTableStart);
  setU64(view, O.directoryTableStart, sb.directoryTableStart);
  setU64(view, O.fragmentTableStart, sb.fragmentTableStart);
  if (sb.exportTableStart === undefined) view.setBigUint64(O.exportTableStart, ALL_ONES, true);
  else setU64(view, O.exportTableStart, sb.exportTableStart);
  return bytes;
}

/** Decodes and sanity-checks a superblock; throws `CORRUPT_IMAGE` on anything off. */
export function decodeSuperblock(bytes: Uint8Array): Superblock {
  if (bytes.length < SUPERBLOCK_SIZE) {
    throw new SquashfsError('CORRUPT_IMAGE', `image is ${bytes.length} bytes, smaller than a superblock`, { offset: 0 });
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, SUPERBLOCK_SIZE);
  const magic = view.getUint32(O.magic, true);
  if (magic !== SQUASHFS_MAGIC) {
    throw new SquashfsError('CORRUPT_IMAGE', `bad magic 0x${magic.toString(16)} at offset 0, expected 0x${SQUASHFS_MAGIC.toString(16)}`, { offset: 0 });
  }
  const optional = (offset: number): number | undefined =>
    view.getBigUint64(offset, true) === ALL_ONES ? undefined : getU64(view, offset);
  const sb: Superblock = {
    inodeCount: view.getUint32(O.inodeCount, true),
    modificationTime: view.getUint32(O.modificationTime, true),
    blockSize: view.getUint32(O.blockSize, true),
    fragmentEntryCount: view.getUint32(O.fragmentEntryCount, true),
    compressionId: view.getUint16(O.compressionId, true),
    blockLog: view.getUint16(O.blockLog, true),
    flags: view.getUint16(O.flags, true),
    idCount: view.getUint16(O.idCount, true),
    versionMajor: view.getUint16(O.versionMajor, true),
    versionMinor: view.getUint16(O.versionMinor, true),
    rootInodeRef: view.getBigUint64(O.rootInodeRef, true),
    bytesUsed: getU64(view, O.bytesUsed),
    idTableStart: getU64(view, O.idTableStart),
    xattrIdTableStart: optional(O.xattrIdTableStart),
    inodeTableStart: getU64(view, O.inodeTableStart),
    directoryTableStart: getU64(view, O.directoryTableStart),
    fragmentTableStart: getU64(view, O.fragmentTableStart),
    exportTableStart: optional(O.exportTableStart),
  };
  if (sb.versionMajor !== 4 || sb.versionMinor !== 0) {
    throw new SquashfsError('CORRUPT_IMAGE', `unsupported SquashFS version ${sb.versionMajor}.${sb.versionMinor}, expected 4.0`, { offset: O.versionMajor });
  }
  if (sb.blockSize < MIN_BLOCK_SIZE || sb.blockSize > MAX_BLOCK_SIZE || 1 << sb.blockLog !== sb.blockSize) {
    throw new SquashfsError('CORRUPT_IMAGE', `block size ${sb.blockSize} with block_log ${sb.blockLog} is invalid`, { offset: O.blockSize });
  }
  return sb;
}
