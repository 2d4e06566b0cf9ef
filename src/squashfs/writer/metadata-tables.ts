import { InodeType, NO_INDEX } from '../constants.js';
import { writeListing, type DirectoryEntry } from '../directory.js';
import type { IdTable } from '../id-table.js';
import { encodeInode } from '../inode/encode.js';
import { BASIC_TYPE, encodeDevice, type Inode, type InodeHeader } from '../inode/inode.js';
import { type BlockCompressor, MetadataWriter, toReference } from '../metadata.js';
import type { XattrTableBuilder } from '../xattr-table.js';
import { displayPath } from '../../source/paths.js';
import type { SourcePath } from '../../source/source.js';
import type { InodeRecord, TreeNode } from './tree.js';

export interface MetadataTablesOptions {
  compress: BlockCompressor;
  ids: IdTable;
  xattrs: XattrTableBuilder;
  /** Every owner becomes 0:0. */
  allRoot: boolean;
  /** A record's path in the source, for messages. */
  pathOf: (record: InodeRecord) => SourcePath;
}

export interface MetadataTables {
  inodeTable: { blocks: Uint8Array[]; size: number };
  directoryTable: { blocks: Uint8Array[]; size: number };
  rootRef: bigint;
  inodeCount: number;
  /** Inode references by inode number - 1 (the export table). */
  exportRefs: bigint[];
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
export function writeMetadataTables(root: TreeNode, options: MetadataTablesOptions): MetadataTables {
  const order: { node: TreeNode; parent: TreeNode | undefined }[] = [];
  let count = 0;
  const number = (node: TreeNode, parent: TreeNode | undefined): void => {
    for (const child of node.children!) if (child.children) number(child, node);
    for (const child of node.children!) {
      if (!child.children && child.record.inodeNumber === undefined) {
        child.record.inodeNumber = ++count;
        order.push({ node: child, parent: node });
      }
    }
    node.record.inodeNumber = ++count;
    order.push({ node, parent });
  };
  number(root, undefined);

  const inodes = new MetadataWriter(options.compress);
  const directories = new MetadataWriter(options.compress);
  const exportRefs: bigint[] = new Array(count);

  for (const { node, parent } of order) {
    const record = node.record;
    const header = headerOf(record, options);
    const xattrIndex = record.xattrs ? options.xattrs.add(record.xattrs, displayPath(options.pathOf(record))) ?? NO_INDEX : NO_INDEX;
    let inode: Inode;
    if (node.children) {
      const entries: DirectoryEntry[] = node.children.map((child) => ({
        name: child.name,
        inode: child.record.inodeRef!,
        inodeNumber: child.record.inodeNumber!,
        type: child.record.inodeType!,
      }));
      const listing = writeListing(directories, entries);
      const fileSize = listing.size + 3;
      const extended = xattrIndex !== NO_INDEX || fileSize > 0xffff || listing.index.length > 0;
      inode = {
        permissions: header.permissions, uidIndex: header.uidIndex, gidIndex: header.gidIndex, mtime: header.mtime, inodeNumber: header.inodeNumber,
        kind: 'directory',
        type: extended ? InodeType.EXT_DIR : InodeType.DIR,
        startBlock: listing.startBlock,
        blockOffset: listing.blockOffset,
        linkCount: 2 + node.children.filter((c) => c.children).length,
        fileSize,
        parentInode: parent ? parent.record.inodeNumber! : count + 1,
        xattrIndex,
        index: listing.index,
      };
    } else {
      inode = leafInode(record, header, xattrIndex);
    }
    record.inodeRef = inodes.position;
    record.inodeType = inode.type;
    exportRefs[record.inodeNumber! - 1] = toReference(record.inodeRef);
    inodes.write(encodeInode(inode));
  }

  const inodeTable = inodes.finish();
  const directoryTable = directories.finish();
  return {
    inodeTable: { blocks: inodeTable.blocks, size: inodeTable.size },
    directoryTable: { blocks: directoryTable.blocks, size: directoryTable.size },
    rootRef: toReference(root.record.inodeRef!),
    inodeCount: count,
    exportRefs,
  };
}

function headerOf(record: InodeRecord, options: MetadataTablesOptions): Omit<InodeHeader, 'type'> {
  const { stat } = record;
  return {
    permissions: stat.mode & 0o7777,
    uidIndex: options.ids.indexOf(options.allRoot ? 0 : stat.uid),
    gidIndex: options.ids.indexOf(options.allRoot ? 0 : stat.gid),
    mtime: Math.min(Math.max(stat.mtime, 0), U32_MAX),
    inodeNumber: record.inodeNumber!,
  };
}

function leafInode(record: InodeRecord, header: Omit<InodeHeader, 'type'>, xattrIndex: number): Inode {
  const hasXattrs = xattrIndex !== NO_INDEX;
  const basic = BASIC_TYPE[record.kind];
  const linkCount = record.links;
  switch (record.kind) {
    case 'file': {
      const layout = record.layout!;
      const fileSize = record.stat.size;
      const extended = hasXattrs || linkCount > 1 || fileSize > U32_MAX || layout.blocksStart > U32_MAX || layout.sparse > 0;
      return {
        permissions: header.permissions, uidIndex: header.uidIndex, gidIndex: header.gidIndex, mtime: header.mtime, inodeNumber: header.inodeNumber,
        kind: 'file',
        type: extended ? InodeType.EXT_FILE : InodeType.FILE,
        blocksStart: layout.blocksStart,
        fileSize,
        sparse: layout.sparse,
        linkCount,
        fragmentIndex: layout.fragmentIndex,
        fragmentOffset: layout.fragmentOffset,
        xattrIndex,
        blockSizes: layout.blockSizes,
      };
    }
    case 'symlink':
      return { permissions: header.permissions, uidIndex: header.uidIndex, gidIndex: header.gidIndex, mtime: header.mtime, inodeNumber: header.inodeNumber, kind: 'symlink', type: (hasXattrs ? basic + EXTENDED : basic) as InodeType, linkCount, target: record.target!, xattrIndex };
    case 'block-device':
    case 'char-device':
      return {
        permissions: header.permissions, uidIndex: header.uidIndex, gidIndex: header.gidIndex, mtime: header.mtime, inodeNumber: header.inodeNumber,
        kind: record.kind,
        type: (hasXattrs ? basic + EXTENDED : basic) as InodeType,
        linkCount,
        device: encodeDevice(record.stat.rdevMajor, record.stat.rdevMinor),
        xattrIndex,
      };
    case 'fifo':
    case 'socket':
      return { permissions: header.permissions, uidIndex: header.uidIndex, gidIndex: header.gidIndex, mtime: header.mtime, inodeNumber: header.inodeNumber, kind: record.kind, type: (hasXattrs ? basic + EXTENDED : basic) as InodeType, linkCount, xattrIndex };
    case 'directory':
      throw new Error('directories are written with their listing');
  }
}
