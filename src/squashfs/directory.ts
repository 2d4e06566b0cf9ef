import { SquashfsError } from '../errors.js';
import { decodeUtf8Lossy } from './bytes.js';
import { basicType, MAX_NAME_LENGTH } from './constants.js';
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

/** An entry as read from a listing: its inode's position in the inode table. */
export interface ListingEntry {
  name: Uint8Array;
  inode: MetadataPosition;
  inodeNumber: number;
  /** The basic type, 1..7. */
  type: number;
}

/**
 * Reads a listing of `size` bytes from the cursor, a metadata block at a
 * time, parsing each block's entries synchronously; validates every header
 * and entry. `visit` returns false to stop early.
 */
export function readListing(
  cursor: { takeSome(most: number): Uint8Array },
  size: number,
  where: number,
  visit: (entry: ListingEntry) => boolean,
): void {
  const corrupt = (message: string) => new SquashfsError('CORRUPT_IMAGE', `directory listing at ${where}: ${message}`, { offset: where });
  let buffer: Uint8Array = new Uint8Array(0);
  let at = 0;
  let fetched = 0;
  /** Makes sure `n` bytes are buffered at `at` (fields are read from `buffer` directly: a listing is read cold, once). */
  const need = (n: number): void => {
    while (buffer.length - at < n) {
      if (fetched >= size) throw corrupt('an entry runs past the listing');
      const more = cursor.takeSome(size - fetched);
      fetched += more.length;
      if (at === buffer.length) buffer = more;
      else {
        const joined = new Uint8Array(buffer.length - at + more.length);
        joined.set(buffer.subarray(at));
        joined.set(more, buffer.length - at);
        buffer = joined;
      }
      at = 0;
    }
  };
  const u16 = (o: number) => buffer[o]! | (buffer[o + 1]! << 8);
  const u32 = (o: number) => (u16(o) | (u16(o + 2) << 16)) >>> 0;
  let consumed = 0;
  while (consumed < size) {
    if (size - consumed < DIRECTORY_HEADER_SIZE) throw corrupt(`${size - consumed} stray bytes after the entries`);
    need(DIRECTORY_HEADER_SIZE);
    const count = u32(at) + 1;
    const block = u32(at + 4);
    const base = u32(at + 8);
    at += DIRECTORY_HEADER_SIZE;
    if (count > MAX_ENTRIES_PER_HEADER) throw corrupt(`a header claims ${count} entries`);
    consumed += DIRECTORY_HEADER_SIZE;
    for (let i = 0; i < count; i++) {
      if (size - consumed < DIRECTORY_ENTRY_SIZE) throw corrupt('an entry runs past the listing');
      need(DIRECTORY_ENTRY_SIZE);
      const nameLength = u16(at + 6) + 1;
      const type = u16(at + 4);
      const offset = u16(at);
      const inodeNumber = base + ((u16(at + 2) << 16) >> 16); // the delta is signed
      if (nameLength > MAX_NAME_LENGTH) throw corrupt(`a name of ${nameLength} bytes`);
      if (type < 1 || type > 7) throw corrupt(`entry type ${type}`);
      consumed += DIRECTORY_ENTRY_SIZE + nameLength;
      if (consumed > size) throw corrupt('a name runs past the listing');
      need(DIRECTORY_ENTRY_SIZE + nameLength);
      const name = buffer.slice(at + DIRECTORY_ENTRY_SIZE, at + DIRECTORY_ENTRY_SIZE + nameLength);
      at += DIRECTORY_ENTRY_SIZE + nameLength;
      if (!isValidName(name)) throw corrupt(`the name "${decodeUtf8Lossy(name)}" is not allowed`);
      if (inodeNumber < 1 || inodeNumber > 0xffffffff) throw corrupt(`inode number ${inodeNumber}`);
      if (!visit({ name, inode: { block, offset }, inodeNumber, type })) return;
    }
  }
}

/** Names may hold any byte but "/" and NUL, and are neither "." nor "..". */
export function isValidName(name: Uint8Array): boolean {
  if (name.length === 0 || name.includes(0x2f) || name.includes(0)) return false;
  return !(name[0] === 0x2e && (name.length === 1 || (name.length === 2 && name[1] === 0x2e)));
}
