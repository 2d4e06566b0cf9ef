import { InodeType, NO_INDEX } from '../constants.js';
import { writeListing, type DirectoryEntry } from '../directory.js';
import type { IdTable } from '../id-table.js';
import { encodeInode } from '../inode/encode.js';
import { BASIC_TYPE, encodeDevice, type Inode, type InodeHeader } from '../inode/inode.js';
import { type BlockCompressor, type MetadataPosition, MetadataWriter } from '../metadata.js';
import type { XattrTableBuilder } from '../xattr-table.js';
import { displayPath } from '../../source/paths.js';
import type { SourcePath } from '../../source/source.js';
import type { FileLayouts } from './data.js';
import { DIRECTORY, type EntryTable, KINDS, NONE } from './entries.js';

export interface MetadataTablesOptions {
  compress: BlockCompressor;
  ids: IdTable;
  xattrs: XattrTableBuilder;
  /** Every owner becomes 0:0. */
  allRoot: boolean;
  /** An entry's path in the source, for messages. */
  pathOf: (entry: number) => SourcePath;
}

export interface MetadataTables {
  inodeTable: { blocks: Uint8Array[]; size: number };
  directoryTable: { blocks: Uint8Array[]; size: number };
  rootRef: bigint;
  inodeCount: number;
  /** Inode references (block << 16 | offset) by inode number - 1: the export table. */
  exportRefs: Float64Array;
}

const U32_MAX = 0xffffffff;
const EXTENDED = 7;

/**
 * Numbers the inodes and writes the inode and directory tables. Inodes are
 * written bottom-up: a directory's subdirectories (recursively), then its
 * other children, then its listing and its own inode, so every listing
 * refers to inodes already placed. The root comes last, with the highest
 * number.
 */
export function writeMetadataTables(entries: EntryTable, layouts: FileLayouts, options: MetadataTablesOptions): MetadataTables {
  const count = entries.count;
  const { kind, firstRow, rowCount, rowInode } = entries;
  const numbers = new Uint32Array(count);
  const order = new Uint32Array(count);
  let numbered = 0;
  const number = (directory: number): void => {
    const end = firstRow[directory]! + rowCount[directory]!;
    for (let row = firstRow[directory]!; row < end; row++) {
      if (kind[rowInode[row]!] === DIRECTORY) number(rowInode[row]!);
    }
    for (let row = firstRow[directory]!; row < end; row++) {
      const child = rowInode[row]!;
      if (kind[child] !== DIRECTORY && numbers[child] === 0) {
        order[numbered] = child;
        numbers[child] = ++numbered;
      }
    }
    order[numbered] = directory;
    numbers[directory] = ++numbered;
  };
  number(0);

  const inodes = new MetadataWriter(options.compress);
  const directories = new MetadataWriter(options.compress);
  /** Where each entry's inode is: block << 16 | offset, as stored in references. */
  const refs = new Float64Array(count);
  const types = new Uint8Array(count);
  const exportRefs = new Float64Array(count);
  const positionOf = (entry: number): MetadataPosition => ({ block: Math.floor(refs[entry]! / 0x10000), offset: refs[entry]! % 0x10000 });

  for (const entry of order) {
    const header = headerOf(entries, entry, numbers[entry]!, options);
    const xattrs = entries.xattrs.get(entry);
    const xattrIndex = xattrs ? options.xattrs.add(xattrs, displayPath(options.pathOf(entry))) ?? NO_INDEX : NO_INDEX;
    let inode: Inode;
    if (kind[entry] === DIRECTORY) {
      const rows: DirectoryEntry[] = [];
      let subdirectories = 0;
      const end = firstRow[entry]! + rowCount[entry]!;
      for (let row = firstRow[entry]!; row < end; row++) {
        const child = rowInode[row]!;
        if (kind[child] === DIRECTORY) subdirectories++;
        rows.push({ name: entries.rowName(row), inode: positionOf(child), inodeNumber: numbers[child]!, type: types[child]! });
      }
      const listing = writeListing(directories, rows);
      const fileSize = listing.size + 3;
      const extended = xattrIndex !== NO_INDEX || fileSize > 0xffff || listing.index.length > 0;
      const parent = entries.parent[entry]!;
      inode = {
        permissions: header.permissions, uidIndex: header.uidIndex, gidIndex: header.gidIndex, mtime: header.mtime, inodeNumber: header.inodeNumber,
        kind: 'directory',
        type: extended ? InodeType.EXT_DIR : InodeType.DIR,
        startBlock: listing.startBlock,
        blockOffset: listing.blockOffset,
        linkCount: 2 + subdirectories,
        fileSize,
        parentInode: parent === NONE ? count + 1 : numbers[parent]!,
        xattrIndex,
        index: listing.index,
      };
    } else {
      inode = leafInode(entries, layouts, entry, header, xattrIndex);
    }
    const position = inodes.position;
    refs[entry] = position.block * 0x10000 + position.offset;
    types[entry] = inode.type;
    exportRefs[numbers[entry]! - 1] = refs[entry]!;
    inodes.write(encodeInode(inode));
  }

  const inodeTable = inodes.finish();
  const directoryTable = directories.finish();
  return {
    inodeTable: { blocks: inodeTable.blocks, size: inodeTable.size },
    directoryTable: { blocks: directoryTable.blocks, size: directoryTable.size },
    rootRef: BigInt(refs[0]!),
    inodeCount: count,
    exportRefs,
  };
}

function headerOf(entries: EntryTable, entry: number, inodeNumber: number, options: MetadataTablesOptions): Omit<InodeHeader, 'type'> {
  return {
    permissions: entries.mode[entry]! & 0o7777,
    uidIndex: options.ids.indexOf(options.allRoot ? 0 : entries.uid[entry]!),
    gidIndex: options.ids.indexOf(options.allRoot ? 0 : entries.gid[entry]!),
    mtime: entries.mtime[entry]!,
    inodeNumber,
  };
}

function leafInode(entries: EntryTable, layouts: FileLayouts, entry: number, header: Omit<InodeHeader, 'type'>, xattrIndex: number): Inode {
  const hasXattrs = xattrIndex !== NO_INDEX;
  const kind = KINDS[entries.kind[entry]!]!;
  const basic = BASIC_TYPE[kind];
  const linkCount = entries.links[entry]!;
  switch (kind) {
    case 'file': {
      const data = layouts.dataOf[entry]!;
      const fileSize = entries.size[entry]!;
      const blocksStart = layouts.blocksStart[data]!;
      const sparse = layouts.sparse.get(data) ?? 0;
      const extended = hasXattrs || linkCount > 1 || fileSize > U32_MAX || blocksStart > U32_MAX || sparse > 0;
      return {
        permissions: header.permissions, uidIndex: header.uidIndex, gidIndex: header.gidIndex, mtime: header.mtime, inodeNumber: header.inodeNumber,
        kind: 'file',
        type: extended ? InodeType.EXT_FILE : InodeType.FILE,
        blocksStart,
        fileSize,
        sparse,
        linkCount,
        fragmentIndex: layouts.fragment[data]!,
        fragmentOffset: layouts.fragmentOffset[data]!,
        xattrIndex,
        blockSizes: layouts.blockSizes(entry),
      };
    }
    case 'symlink':
      return { permissions: header.permissions, uidIndex: header.uidIndex, gidIndex: header.gidIndex, mtime: header.mtime, inodeNumber: header.inodeNumber, kind: 'symlink', type: (hasXattrs ? basic + EXTENDED : basic) as InodeType, linkCount, target: entries.targets.get(entry)!, xattrIndex };
    case 'block-device':
    case 'char-device': {
      const device = entries.devices.get(entry);
      return {
        permissions: header.permissions, uidIndex: header.uidIndex, gidIndex: header.gidIndex, mtime: header.mtime, inodeNumber: header.inodeNumber,
        kind,
        type: (hasXattrs ? basic + EXTENDED : basic) as InodeType,
        linkCount,
        device: device ? encodeDevice(device.major, device.minor) : 0,
        xattrIndex,
      };
    }
    case 'fifo':
    case 'socket':
      return { permissions: header.permissions, uidIndex: header.uidIndex, gidIndex: header.gidIndex, mtime: header.mtime, inodeNumber: header.inodeNumber, kind, type: (hasXattrs ? basic + EXTENDED : basic) as InodeType, linkCount, xattrIndex };
    case 'directory':
      throw new Error('directories are written with their listing');
  }
}
