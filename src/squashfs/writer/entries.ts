import { SquashfsError } from '../../errors.js';
import type { Inode } from '../inode/inode.js';
import type { Xattr } from '../xattr-table.js';

/** Inode kinds as stored in the table: an index into `KINDS`. */
export const KINDS: readonly Inode['kind'][] = ['directory', 'file', 'symlink', 'block-device', 'char-device', 'fifo', 'socket'];
export const DIRECTORY = 0;
export const FILE = 1;
export const SYMLINK = 2;
export const BLOCK_DEVICE = 3;
export const CHAR_DEVICE = 4;
export const FIFO = 5;
export const SOCKET = 6;

/** No parent (the root), no entry. */
export const NONE = 0xffffffff;

/** What the table keeps of an lstat. */
export interface EntryStat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds; kept as the image stores it (clamped to an unsigned 32-bit value). */
  mtime: number;
}

const U32_MAX = 0xffffffff;
const FIRST_CAPACITY = 1024;

type Column = Uint8Array | Uint16Array | Uint32Array | Float64Array;

/** A copy of `column` with room for `capacity` values (or only `capacity` of them). */
function resized<T extends Column>(column: T, capacity: number): T {
  const next = new (column.constructor as new (length: number) => T)(capacity);
  next.set(column.subarray(0, Math.min(column.length, capacity)) as never);
  return next;
}

const NAME_CHUNK = 1 << 20;
/** Offsets are kept as u32. */
const MAX_NAME_CHUNKS = 2 ** 32 / NAME_CHUNK;

/**
 * Every name of the tree, copied into shared 1 MiB chunks: a name is its
 * offset in the whole and its length, not an object of its own. A name
 * never spans two chunks.
 */
export class NamePool {
  private readonly chunks: Uint8Array[] = [];
  private used = 0;

  /** Copies a name in; returns its offset. */
  add(name: Uint8Array): number {
    if (this.chunks.length === 0 || this.used + name.length > NAME_CHUNK) {
      if (this.chunks.length === MAX_NAME_CHUNKS) throw new SquashfsError('TOO_LARGE', `the tree's names take more than ${2 ** 32} bytes`);
      this.chunks.push(new Uint8Array(NAME_CHUNK));
      this.used = 0;
    }
    const chunk = this.chunks.length - 1;
    this.chunks[chunk]!.set(name, this.used);
    this.used += name.length;
    return chunk * NAME_CHUNK + this.used - name.length;
  }

  /** A view of a name (valid as long as the pool). */
  get(offset: number, length: number): Uint8Array {
    if (length === 0) return new Uint8Array(0);
    const within = offset % NAME_CHUNK;
    return this.chunks[(offset - within) / NAME_CHUNK]!.subarray(within, within + length);
  }
}

/**
 * The walked tree as columns: one row per inode (a hard-linked inode once),
 * in walk order, and one row per name in a directory. Numbers live in
 * typed arrays and names in one pool, so an entry costs tens of bytes and
 * no objects: a tree of a million files fits in a few tens of megabytes.
 * The rare parts (symlink targets, device numbers, xattrs) are kept in maps.
 */
export class EntryTable {
  readonly names = new NamePool();
  /** Inodes so far. */
  count = 0;
  kind = new Uint8Array(FIRST_CAPACITY);
  mode = new Uint16Array(FIRST_CAPACITY);
  uid = new Uint32Array(FIRST_CAPACITY);
  gid = new Uint32Array(FIRST_CAPACITY);
  size = new Float64Array(FIRST_CAPACITY);
  mtime = new Uint32Array(FIRST_CAPACITY);
  /** Names the inode has in the image (its nlink, for non-directories). */
  links = new Uint32Array(FIRST_CAPACITY);
  /** The directory where the inode was first found (`NONE` for the root), and its name there. */
  parent = new Uint32Array(FIRST_CAPACITY);
  nameAt = new Uint32Array(FIRST_CAPACITY);
  nameLength = new Uint16Array(FIRST_CAPACITY);
  /** Directories: their names are rows `firstRow` to `firstRow + rowCount - 1`, sorted. */
  firstRow = new Uint32Array(FIRST_CAPACITY);
  rowCount = new Uint32Array(FIRST_CAPACITY);

  /** Rows: a name in a directory and the inode it names. */
  rows = 0;
  rowInode = new Uint32Array(FIRST_CAPACITY);
  rowNameAt = new Uint32Array(FIRST_CAPACITY);
  rowNameLength = new Uint16Array(FIRST_CAPACITY);

  readonly targets = new Map<number, Uint8Array>();
  readonly devices = new Map<number, { major: number; minor: number }>();
  readonly xattrs = new Map<number, readonly Xattr[]>();

  /** Adds an inode; returns its index. `nameAt` is the name's offset in `names`. */
  add(kind: number, stat: EntryStat, parent: number, nameAt: number, nameLength: number): number {
    if (this.count === this.kind.length) this.resizeInodes(this.count * 2);
    const i = this.count++;
    this.kind[i] = kind;
    this.mode[i] = stat.mode;
    this.uid[i] = stat.uid;
    this.gid[i] = stat.gid;
    this.size[i] = stat.size;
    this.mtime[i] = Math.min(Math.max(stat.mtime, 0), U32_MAX);
    this.links[i] = 1;
    this.parent[i] = parent;
    this.nameAt[i] = nameAt;
    this.nameLength[i] = nameLength;
    return i;
  }

  /** Records a directory's names (sorted), each with the inode it names. */
  setRows(directory: number, inodes: readonly number[], nameAts: readonly number[], nameLengths: readonly number[]): void {
    const need = this.rows + inodes.length;
    if (need > this.rowInode.length) this.resizeRows(Math.max(need, this.rowInode.length * 2));
    this.firstRow[directory] = this.rows;
    this.rowCount[directory] = inodes.length;
    for (let k = 0; k < inodes.length; k++) {
      this.rowInode[this.rows] = inodes[k]!;
      this.rowNameAt[this.rows] = nameAts[k]!;
      this.rowNameLength[this.rows] = nameLengths[k]!;
      this.rows++;
    }
  }

  name(inode: number): Uint8Array {
    return this.names.get(this.nameAt[inode]!, this.nameLength[inode]!);
  }

  rowName(row: number): Uint8Array {
    return this.names.get(this.rowNameAt[row]!, this.rowNameLength[row]!);
  }

  /** Drops the room left for growth, once the walk is done. */
  trim(): void {
    this.resizeInodes(this.count);
    this.resizeRows(this.rows);
  }

  private resizeInodes(capacity: number): void {
    this.kind = resized(this.kind, capacity);
    this.mode = resized(this.mode, capacity);
    this.uid = resized(this.uid, capacity);
    this.gid = resized(this.gid, capacity);
    this.size = resized(this.size, capacity);
    this.mtime = resized(this.mtime, capacity);
    this.links = resized(this.links, capacity);
    this.parent = resized(this.parent, capacity);
    this.nameAt = resized(this.nameAt, capacity);
    this.nameLength = resized(this.nameLength, capacity);
    this.firstRow = resized(this.firstRow, capacity);
    this.rowCount = resized(this.rowCount, capacity);
  }

  private resizeRows(capacity: number): void {
    this.rowInode = resized(this.rowInode, capacity);
    this.rowNameAt = resized(this.rowNameAt, capacity);
    this.rowNameLength = resized(this.rowNameLength, capacity);
  }
}
