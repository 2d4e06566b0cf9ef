import { SquashfsError } from '../../errors.js';
import { InodeType, NO_INDEX } from '../constants.js';
import type { MetadataCursor } from '../reader/metadata-reader.js';
import { INODE_HEADER_SIZE, type DirectoryIndexEntry, type Inode, type InodeHeader } from './inode.js';

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

/** Decodes the inode at the cursor (header, type-specific fields, block list, index). */
export async function decodeInode(cursor: MetadataCursor, ctx: InodeContext): Promise<Inode> {
  const h = view(await cursor.take(INODE_HEADER_SIZE));
  const type = h.getUint16(0, true);
  const header: InodeHeader = {
    type: type as InodeType,
    permissions: h.getUint16(2, true) & 0o7777,
    uidIndex: h.getUint16(4, true),
    gidIndex: h.getUint16(6, true),
    mtime: h.getUint32(8, true),
    inodeNumber: h.getUint32(12, true),
  };
  if (header.inodeNumber === 0) throw corrupt('inode number 0', ctx.where);
  switch (type) {
    case InodeType.DIR: {
      const d = view(await cursor.take(16));
      return {
        ...header, kind: 'directory',
        startBlock: d.getUint32(0, true), linkCount: d.getUint32(4, true), fileSize: d.getUint16(8, true),
        blockOffset: d.getUint16(10, true), parentInode: d.getUint32(12, true), xattrIndex: NO_INDEX, index: [],
      };
    }
    case InodeType.EXT_DIR: {
      const d = view(await cursor.take(24));
      const count = d.getUint16(16, true);
      const index: DirectoryIndexEntry[] = [];
      for (let i = 0; i < count; i++) {
        const e = view(await cursor.take(12));
        const size = e.getUint32(8, true) + 1;
        if (size > 256) throw corrupt(`directory index name of ${size} bytes`, ctx.where);
        index.push({ index: e.getUint32(0, true), start: e.getUint32(4, true), name: await cursor.take(size) });
      }
      return {
        ...header, kind: 'directory',
        linkCount: d.getUint32(0, true), fileSize: d.getUint32(4, true), startBlock: d.getUint32(8, true),
        parentInode: d.getUint32(12, true), blockOffset: d.getUint16(18, true), xattrIndex: d.getUint32(20, true), index,
      };
    }
    case InodeType.FILE:
    case InodeType.EXT_FILE: {
      const extended = type === InodeType.EXT_FILE;
      const d = view(await cursor.take(extended ? 40 : 16));
      const f = extended
        ? {
            blocksStart: u64(d, 0, ctx.where), fileSize: u64(d, 8, ctx.where), sparse: u64(d, 16, ctx.where),
            linkCount: d.getUint32(24, true), fragmentIndex: d.getUint32(28, true), fragmentOffset: d.getUint32(32, true),
            xattrIndex: d.getUint32(36, true),
          }
        : {
            blocksStart: d.getUint32(0, true), fragmentIndex: d.getUint32(4, true), fragmentOffset: d.getUint32(8, true),
            fileSize: d.getUint32(12, true), sparse: 0, linkCount: 1, xattrIndex: NO_INDEX,
          };
      const count = f.fragmentIndex === NO_INDEX ? Math.ceil(f.fileSize / ctx.blockSize) : Math.floor(f.fileSize / ctx.blockSize);
      const list = await cursor.take(count * 4);
      const blockSizes = new Uint32Array(count);
      const lv = view(list);
      for (let i = 0; i < count; i++) blockSizes[i] = lv.getUint32(i * 4, true);
      return { ...header, kind: 'file', ...f, blockSizes };
    }
    case InodeType.SYMLINK:
    case InodeType.EXT_SYMLINK: {
      const d = view(await cursor.take(8));
      const size = d.getUint32(4, true);
      if (size > 65535) throw corrupt(`symlink target of ${size} bytes`, ctx.where);
      const target = await cursor.take(size);
      const xattrIndex = type === InodeType.EXT_SYMLINK ? await cursor.u32() : NO_INDEX;
      return { ...header, kind: 'symlink', linkCount: d.getUint32(0, true), target, xattrIndex };
    }
    case InodeType.BLOCK_DEV:
    case InodeType.CHAR_DEV:
    case InodeType.EXT_BLOCK_DEV:
    case InodeType.EXT_CHAR_DEV: {
      const extended = type >= InodeType.EXT_DIR;
      const d = view(await cursor.take(extended ? 12 : 8));
      const kind = type === InodeType.BLOCK_DEV || type === InodeType.EXT_BLOCK_DEV ? 'block-device' : 'char-device';
      return {
        ...header, kind, linkCount: d.getUint32(0, true), device: d.getUint32(4, true),
        xattrIndex: extended ? d.getUint32(8, true) : NO_INDEX,
      };
    }
    case InodeType.FIFO:
    case InodeType.SOCKET:
    case InodeType.EXT_FIFO:
    case InodeType.EXT_SOCKET: {
      const extended = type >= InodeType.EXT_DIR;
      const d = view(await cursor.take(extended ? 8 : 4));
      const kind = type === InodeType.FIFO || type === InodeType.EXT_FIFO ? 'fifo' : 'socket';
      return { ...header, kind, linkCount: d.getUint32(0, true), xattrIndex: extended ? d.getUint32(4, true) : NO_INDEX };
    }
    default:
      throw corrupt(`unknown inode type ${type}`, ctx.where);
  }
}
