import { isExtended, INODE_HEADER_SIZE, type Inode, type InodeHeader } from './inode.js';

function writeHeader(view: DataView, inode: InodeHeader): void {
  view.setUint16(0, inode.type, true);
  view.setUint16(2, inode.permissions & 0o7777, true);
  view.setUint16(4, inode.uidIndex, true);
  view.setUint16(6, inode.gidIndex, true);
  view.setUint32(8, inode.mtime, true);
  view.setUint32(12, inode.inodeNumber, true);
}

/** Encodes an inode in its basic or extended layout, as its `type` says. */
export function encodeInode(inode: Inode): Uint8Array {
  const extended = isExtended(inode.type);
  let size = INODE_HEADER_SIZE;
  switch (inode.kind) {
    case 'directory':
      size += extended ? 24 + inode.index.reduce((n, e) => n + 12 + e.name.length, 0) : 16;
      break;
    case 'file':
      size += (extended ? 40 : 16) + inode.blockSizes.length * 4;
      break;
    case 'symlink':
      size += 8 + inode.target.length + (extended ? 4 : 0);
      break;
    case 'block-device':
    case 'char-device':
      size += extended ? 12 : 8;
      break;
    case 'fifo':
    case 'socket':
      size += extended ? 8 : 4;
      break;
  }
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  writeHeader(view, inode);
  let o = INODE_HEADER_SIZE;
  const u16 = (v: number) => { view.setUint16(o, v, true); o += 2; };
  const u32 = (v: number) => { view.setUint32(o, v, true); o += 4; };
  const u64 = (v: number) => { view.setBigUint64(o, BigInt(v), true); o += 8; };
  switch (inode.kind) {
    case 'directory':
      if (extended) {
        u32(inode.linkCount);
        u32(inode.fileSize);
        u32(inode.startBlock);
        u32(inode.parentInode);
        u16(inode.index.length);
        u16(inode.blockOffset);
        u32(inode.xattrIndex);
        for (const entry of inode.index) {
          u32(entry.index);
          u32(entry.start);
          u32(entry.name.length - 1);
          bytes.set(entry.name, o);
          o += entry.name.length;
        }
      } else {
        u32(inode.startBlock);
        u32(inode.linkCount);
        u16(inode.fileSize);
        u16(inode.blockOffset);
        u32(inode.parentInode);
      }
      break;
    case 'file':
      if (extended) {
        u64(inode.blocksStart);
        u64(inode.fileSize);
        u64(inode.sparse);
        u32(inode.linkCount);
        u32(inode.fragmentIndex);
        u32(inode.fragmentOffset);
        u32(inode.xattrIndex);
      } else {
        u32(inode.blocksStart);
        u32(inode.fragmentIndex);
        u32(inode.fragmentOffset);
        u32(inode.fileSize);
      }
      for (const word of inode.blockSizes) u32(word);
      break;
    case 'symlink':
      u32(inode.linkCount);
      u32(inode.target.length);
      bytes.set(inode.target, o);
      o += inode.target.length;
      if (extended) u32(inode.xattrIndex);
      break;
    case 'block-device':
    case 'char-device':
      u32(inode.linkCount);
      u32(inode.device);
      if (extended) u32(inode.xattrIndex);
      break;
    case 'fifo':
    case 'socket':
      u32(inode.linkCount);
      if (extended) u32(inode.xattrIndex);
      break;
  }
  return bytes;
}
