import { SquashfsError } from '../../errors.js';
import { InodeType, NO_INDEX } from '../constants.js';
import type { MetadataCursor } from '../reader/metadata-reader.js';
import { INODE_HEADER_SIZE, type DirectoryIndexEntry, type Inode } from './inode.js';

/** What decoding needs to know of the image. */
export interface InodeContext {
  blockSize: number;
  /** For messages. */
  where: number;
}

function corrupt(message: string, where: number): SquashfsError {
  return new SquashfsError('CORRUPT_IMAGE', `inode at ${where}: ${message}`, { offset: where });
}

const view = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

function u64(dv: DataView, offset: number, where: number): number {
  const value = dv.getBigUint64(offset, true);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(`64-bit field ${value} is beyond 2^53`, where);
  return Number(value);
}

/** Decodes the inode at the cursor (synchronously: run it through `MetadataReader.run`). */
export function decodeInode(cursor: MetadataCursor, ctx: InodeContext): Inode {
  const h = view(cursor.take(INODE_HEADER_SIZE));
  const type = h.getUint16(0, true);
  // Objects are built field by field in one order (no spreads): a walk decodes every inode.
  const inodeType = type as InodeType;
  const permissions = h.getUint16(2, true) & 0o7777;
  const uidIndex = h.getUint16(4, true);
  const gidIndex = h.getUint16(6, true);
  const mtime = h.getUint32(8, true);
  const inodeNumber = h.getUint32(12, true);
  if (inodeNumber === 0) throw corrupt('inode number 0', ctx.where);
  switch (type) {
    case InodeType.DIR: {
      const d = view(cursor.take(16));
      return {
        type: inodeType, permissions, uidIndex, gidIndex, mtime, inodeNumber, kind: 'directory',
        startBlock: d.getUint32(0, true), linkCount: d.getUint32(4, true), fileSize: d.getUint16(8, true),
        blockOffset: d.getUint16(10, true), parentInode: d.getUint32(12, true), xattrIndex: NO_INDEX, index: [],
      };
    }
    case InodeType.EXT_DIR: {
      const d = view(cursor.take(24));
      const count = d.getUint16(16, true);
      const index: DirectoryIndexEntry[] = [];
      for (let i = 0; i < count; i++) {
        const e = view(cursor.take(12));
        const size = e.getUint32(8, true) + 1;
        if (size > 256) throw corrupt(`directory index name of ${size} bytes`, ctx.where);
        index.push({ index: e.getUint32(0, true), start: e.getUint32(4, true), name: cursor.take(size) });
      }
      return {
        type: inodeType, permissions, uidIndex, gidIndex, mtime, inodeNumber, kind: 'directory',
        startBlock: d.getUint32(8, true), linkCount: d.getUint32(0, true), fileSize: d.getUint32(4, true),
        blockOffset: d.getUint16(18, true), parentInode: d.getUint32(12, true), xattrIndex: d.getUint32(20, true), index,
      };
    }
    case InodeType.FILE:
    case InodeType.EXT_FILE: {
      const extended = type === InodeType.EXT_FILE;
      const d = view(cursor.take(extended ? 40 : 16));
      const blocksStart = extended ? u64(d, 0, ctx.where) : d.getUint32(0, true);
      const fileSize = extended ? u64(d, 8, ctx.where) : d.getUint32(12, true);
      const sparse = extended ? u64(d, 16, ctx.where) : 0;
      const linkCount = extended ? d.getUint32(24, true) : 1;
      const fragmentIndex = d.getUint32(extended ? 28 : 4, true);
      const fragmentOffset = d.getUint32(extended ? 32 : 8, true);
      const xattrIndex = extended ? d.getUint32(36, true) : NO_INDEX;
      const count = fragmentIndex === NO_INDEX ? Math.ceil(fileSize / ctx.blockSize) : Math.floor(fileSize / ctx.blockSize);
      const list = cursor.take(count * 4);
      const blockSizes = new Uint32Array(count);
      for (let i = 0, o = 0; i < count; i++, o += 4) {
        blockSizes[i] = (list[o]! | (list[o + 1]! << 8) | (list[o + 2]! << 16) | (list[o + 3]! << 24)) >>> 0;
      }
      return {
        type: inodeType, permissions, uidIndex, gidIndex, mtime, inodeNumber, kind: 'file',
        blocksStart, fileSize, sparse, linkCount, fragmentIndex, fragmentOffset, xattrIndex, blockSizes,
      };
    }
    case InodeType.SYMLINK:
    case InodeType.EXT_SYMLINK: {
      const d = view(cursor.take(8));
      const size = d.getUint32(4, true);
      if (size > 65535) throw corrupt(`symlink target of ${size} bytes`, ctx.where);
      const target = cursor.take(size);
      const xattrIndex = type === InodeType.EXT_SYMLINK ? cursor.u32() : NO_INDEX;
      return { type: inodeType, permissions, uidIndex, gidIndex, mtime, inodeNumber, kind: 'symlink', linkCount: d.getUint32(0, true), target, xattrIndex };
    }
    case InodeType.BLOCK_DEV:
    case InodeType.CHAR_DEV:
    case InodeType.EXT_BLOCK_DEV:
    case InodeType.EXT_CHAR_DEV: {
      const extended = type >= InodeType.EXT_DIR;
      const d = view(cursor.take(extended ? 12 : 8));
      const kind = type === InodeType.BLOCK_DEV || type === InodeType.EXT_BLOCK_DEV ? 'block-device' : 'char-device';
      return {
        type: inodeType, permissions, uidIndex, gidIndex, mtime, inodeNumber, kind,
        linkCount: d.getUint32(0, true), device: d.getUint32(4, true), xattrIndex: extended ? d.getUint32(8, true) : NO_INDEX,
      };
    }
    case InodeType.FIFO:
    case InodeType.SOCKET:
    case InodeType.EXT_FIFO:
    case InodeType.EXT_SOCKET: {
      const extended = type >= InodeType.EXT_DIR;
      const d = view(cursor.take(extended ? 8 : 4));
      const kind = type === InodeType.FIFO || type === InodeType.EXT_FIFO ? 'fifo' : 'socket';
      return {
        type: inodeType, permissions, uidIndex, gidIndex, mtime, inodeNumber, kind,
        linkCount: d.getUint32(0, true), xattrIndex: extended ? d.getUint32(4, true) : NO_INDEX,
      };
    }
    default:
      throw corrupt(`unknown inode type ${type}`, ctx.where);
  }
}
