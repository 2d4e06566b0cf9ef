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

/**
 * Little-endian fields of a run of bytes, read in place: a walk decodes every
 * inode once, mostly in cold code, where a view object per inode costs more
 * than the reads.
 */
class Fields {
  constructor(private readonly b: Uint8Array) {}

  getUint16(offset: number): number {
    return this.b[offset]! | (this.b[offset + 1]! << 8);
  }

  getUint32(offset: number): number {
    return (this.getUint16(offset) | (this.getUint16(offset + 2) << 16)) >>> 0;
  }
}

const view = (bytes: Uint8Array) => new Fields(bytes);

function u64(fields: Fields, offset: number, where: number): number {
  const high = fields.getUint32(offset + 4);
  if (high > 0x1fffff) throw corrupt(`64-bit field ${(BigInt(high) << 32n) | BigInt(fields.getUint32(offset))} is beyond 2^53`, where);
  return high * 2 ** 32 + fields.getUint32(offset);
}

/** Decodes the inode at the cursor (synchronously: run it through `MetadataReader.run`). */
export function decodeInode(cursor: MetadataCursor, ctx: InodeContext): Inode {
  const h = view(cursor.take(INODE_HEADER_SIZE));
  const type = h.getUint16(0);
  // Objects are built field by field in one order (no spreads): a walk decodes every inode.
  const inodeType = type as InodeType;
  const permissions = h.getUint16(2) & 0o7777;
  const uidIndex = h.getUint16(4);
  const gidIndex = h.getUint16(6);
  const mtime = h.getUint32(8);
  const inodeNumber = h.getUint32(12);
  if (inodeNumber === 0) throw corrupt('inode number 0', ctx.where);
  switch (type) {
    case InodeType.DIR: {
      const d = view(cursor.take(16));
      return {
        type: inodeType, permissions, uidIndex, gidIndex, mtime, inodeNumber, kind: 'directory',
        startBlock: d.getUint32(0), linkCount: d.getUint32(4), fileSize: d.getUint16(8),
        blockOffset: d.getUint16(10), parentInode: d.getUint32(12), xattrIndex: NO_INDEX, index: [],
      };
    }
    case InodeType.EXT_DIR: {
      const d = view(cursor.take(24));
      const count = d.getUint16(16);
      const index: DirectoryIndexEntry[] = [];
      for (let i = 0; i < count; i++) {
        const e = view(cursor.take(12));
        const size = e.getUint32(8) + 1;
        if (size > 256) throw corrupt(`directory index name of ${size} bytes`, ctx.where);
        index.push({ index: e.getUint32(0), start: e.getUint32(4), name: cursor.take(size) });
      }
      return {
        type: inodeType, permissions, uidIndex, gidIndex, mtime, inodeNumber, kind: 'directory',
        startBlock: d.getUint32(8), linkCount: d.getUint32(0), fileSize: d.getUint32(4),
        blockOffset: d.getUint16(18), parentInode: d.getUint32(12), xattrIndex: d.getUint32(20), index,
      };
    }
    case InodeType.FILE:
    case InodeType.EXT_FILE: {
      const extended = type === InodeType.EXT_FILE;
      const d = view(cursor.take(extended ? 40 : 16));
      const blocksStart = extended ? u64(d, 0, ctx.where) : d.getUint32(0);
      const fileSize = extended ? u64(d, 8, ctx.where) : d.getUint32(12);
      const sparse = extended ? u64(d, 16, ctx.where) : 0;
      const linkCount = extended ? d.getUint32(24) : 1;
      const fragmentIndex = d.getUint32(extended ? 28 : 4);
      const fragmentOffset = d.getUint32(extended ? 32 : 8);
      const xattrIndex = extended ? d.getUint32(36) : NO_INDEX;
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
      const size = d.getUint32(4);
      if (size > 65535) throw corrupt(`symlink target of ${size} bytes`, ctx.where);
      const target = cursor.take(size);
      const xattrIndex = type === InodeType.EXT_SYMLINK ? cursor.u32() : NO_INDEX;
      return { type: inodeType, permissions, uidIndex, gidIndex, mtime, inodeNumber, kind: 'symlink', linkCount: d.getUint32(0), target, xattrIndex };
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
        linkCount: d.getUint32(0), device: d.getUint32(4), xattrIndex: extended ? d.getUint32(8) : NO_INDEX,
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
        linkCount: d.getUint32(0), xattrIndex: extended ? d.getUint32(4) : NO_INDEX,
      };
    }
    default:
      throw corrupt(`unknown inode type ${type}`, ctx.where);
  }
}
