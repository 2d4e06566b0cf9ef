import { basicType } from './constants.js';
import type { DirectoryIndexEntry } from './inode/inode.js';
import type { MetadataPosition, MetadataWriter } from './metadata.js';

/** One name in a directory listing. */
export interface DirectoryEntry {
  name: Uint8Array;
  /** Where the entry's inode is in the inode table. */
  inode: MetadataPosition;
  inodeNumber: number;
  /** The inode's type (basic or extended); the listing stores the basic type. */
  type: number;
}

/** A directory header: up to 256 entries sharing an inode metadata block and a base inode number. */
export const DIRECTORY_HEADER_SIZE = 12;
/** Fixed part of an entry: offset, inode delta, type, name size. */
export const DIRECTORY_ENTRY_SIZE = 8;
export const MAX_ENTRIES_PER_HEADER = 256;

/** mksquashfs adds a directory index to listings of this many entries or bytes. */
const INDEX_MIN_ENTRIES = 257;
const INDEX_MIN_BYTES = 8192;

export interface WrittenListing {
  /** Start of the metadata block where the listing begins, relative to the directory table. */
  startBlock: number;
  /** Offset of the listing in that block. */
  blockOffset: number;
  /** Bytes of the listing (the inode's file_size is this + 3). */
  size: number;
  /** Index entries (empty for short listings). */
  index: DirectoryIndexEntry[];
}

/**
 * Writes a directory's listing to the directory table. `entries` must be
 * sorted by name bytes. A header holds at most 256 entries whose inodes share
 * one metadata block and whose inode numbers stay within an s16 of its base.
 */
export function writeListing(table: MetadataWriter, entries: readonly DirectoryEntry[]): WrittenListing {
  const start = table.position;
  const startLength = table.length;
  const headerStarts: { offset: number; uncompressed: number; name: Uint8Array }[] = [];
  let i = 0;
  while (i < entries.length) {
    const first = entries[i]!;
    let count = 1;
    while (i + count < entries.length && count < MAX_ENTRIES_PER_HEADER) {
      const next = entries[i + count]!;
      const delta = next.inodeNumber - first.inodeNumber;
      if (next.inode.block !== first.inode.block || delta < -32768 || delta > 32767) break;
      count++;
    }
    headerStarts.push({ offset: table.length - startLength, uncompressed: table.length, name: first.name });
    const header = new Uint8Array(DIRECTORY_HEADER_SIZE);
    const hv = new DataView(header.buffer);
    hv.setUint32(0, count - 1, true);
    hv.setUint32(4, first.inode.block, true);
    hv.setUint32(8, first.inodeNumber, true);
    table.write(header);
    for (let k = 0; k < count; k++) {
      const entry = entries[i + k]!;
      const bytes = new Uint8Array(DIRECTORY_ENTRY_SIZE + entry.name.length);
      const ev = new DataView(bytes.buffer);
      ev.setUint16(0, entry.inode.offset, true);
      ev.setInt16(2, entry.inodeNumber - first.inodeNumber, true);
      ev.setUint16(4, basicType(entry.type), true);
      ev.setUint16(6, entry.name.length - 1, true);
      bytes.set(entry.name, DIRECTORY_ENTRY_SIZE);
      table.write(bytes);
    }
    i += count;
  }
  const size = table.length - startLength;
  const index: DirectoryIndexEntry[] = [];
  if (entries.length >= INDEX_MIN_ENTRIES || size >= INDEX_MIN_BYTES) {
    // One entry for each header that begins in a later metadata block than the
    // last indexed one; the kernel resumes reading at (start, index + offset).
    let lastBlock = Math.floor(startLength / 8192);
    for (const header of headerStarts.slice(1)) {
      const block = Math.floor(header.uncompressed / 8192);
      if (block === lastBlock) continue;
      lastBlock = block;
      index.push({ index: header.offset, start: table.blockStartAt(header.uncompressed), name: header.name });
    }
  }
  return { startBlock: start.block, blockOffset: start.offset, size, index };
}
