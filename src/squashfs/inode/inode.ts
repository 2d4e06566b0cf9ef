import { InodeType, NO_INDEX } from '../constants.js';

/** The header every inode starts with (16 bytes). */
export interface InodeHeader {
  /** The inode type; extended types are basic + 7. */
  type: InodeType;
  /** The 12 permission bits of the mode (incl. setuid, setgid, sticky). */
  permissions: number;
  /** Index of the owner's uid in the id table. */
  uidIndex: number;
  /** Index of the group's gid in the id table. */
  gidIndex: number;
  /** Modification time, seconds since the epoch (u32). */
  mtime: number;
  /** The unique inode number, from 1. */
  inodeNumber: number;
}

/** One entry of an extended directory inode's index: a lookup aid for long listings. */
export interface DirectoryIndexEntry {
  /** Byte offset of a directory header from the start of this directory's listing. */
  index: number;
  /** Start of the metadata block holding that header, relative to the directory table. */
  start: number;
  /** The first name under that header. */
  name: Uint8Array;
}

export interface DirectoryInode extends InodeHeader {
  kind: 'directory';
  /** Start of the metadata block holding the listing, relative to the directory table. */
  startBlock: number;
  /** Offset of the listing in that block's payload. */
  blockOffset: number;
  /** 2 + the number of subdirectories. */
  linkCount: number;
  /** The listing size + 3. */
  fileSize: number;
  /** The inode number of the parent directory. */
  parentInode: number;
  /** Index into the xattr id table, or NO_INDEX. */
  xattrIndex: number;
  /** The directory index (extended inodes only). */
  index: DirectoryIndexEntry[];
}

export interface FileInode extends InodeHeader {
  kind: 'file';
  /** Absolute position of the file's first data block. */
  blocksStart: number;
  fileSize: number;
  /** Bytes saved by holes (extended inodes only). */
  sparse: number;
  linkCount: number;
  /** Index in the fragment table of the block holding the tail, or NO_INDEX. */
  fragmentIndex: number;
  /** Offset of the tail in the decompressed fragment block. */
  fragmentOffset: number;
  xattrIndex: number;
  /** One size word per data block: bits 0-23 length, bit 24 stored uncompressed, 0 a hole. */
  blockSizes: Uint32Array;
}

export interface SymlinkInode extends InodeHeader {
  kind: 'symlink';
  linkCount: number;
  /** The target, verbatim bytes. */
  target: Uint8Array;
  xattrIndex: number;
}

export interface DeviceInode extends InodeHeader {
  kind: 'block-device' | 'char-device';
  linkCount: number;
  /** Encoded device number: see `encodeDevice`. */
  device: number;
  xattrIndex: number;
}

export interface IpcInode extends InodeHeader {
  kind: 'fifo' | 'socket';
  linkCount: number;
  xattrIndex: number;
}

export type Inode = DirectoryInode | FileInode | SymlinkInode | DeviceInode | IpcInode;

export const INODE_HEADER_SIZE = 16;

/** Basic inode types by kind. */
export const BASIC_TYPE: Record<Inode['kind'], InodeType> = {
  directory: InodeType.DIR,
  file: InodeType.FILE,
  symlink: InodeType.SYMLINK,
  'block-device': InodeType.BLOCK_DEV,
  'char-device': InodeType.CHAR_DEV,
  fifo: InodeType.FIFO,
  socket: InodeType.SOCKET,
};

export function isExtended(type: number): boolean {
  return type >= InodeType.EXT_DIR;
}

/** (major << 8) | (minor & 0xff) | ((minor & ~0xff) << 12), as the kernel's new_encode_dev. */
export function encodeDevice(major: number, minor: number): number {
  return ((major & 0xfff) << 8 | (minor & 0xff) | ((minor & ~0xff) << 12)) >>> 0;
}

export function decodeDevice(device: number): { major: number; minor: number } {
  return { major: (device >>> 8) & 0xfff, minor: (device & 0xff) | ((device >>> 12) & 0xfff00) };
}

export { NO_INDEX };
