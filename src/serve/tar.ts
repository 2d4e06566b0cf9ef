/**
 * A directory of a backup as a tar stream (POSIX pax interchange format,
 * as GNU tar and bsdtar read it), written entry by entry as it is pulled:
 * one file's blocks in memory at a time, never the image.
 *
 * The writer is small on purpose, rather than tar-stream: names in an
 * image are raw bytes (not always UTF-8) and pass through unchanged, the
 * output is an async iterator of Uint8Array (no Node streams), and it
 * needs nothing but the ustar header and three pax records.
 */
import type { BackupImage } from '../backup/chain-image.js';
import { SquashfsError } from '../errors.js';
import { concatBytes, decodeUtf8Lossy, encodeUtf8 } from '../squashfs/bytes.js';
import type { EntryStat, ImagePath, Xattr } from '../squashfs/reader/types.js';

export const TAR_BLOCK = 512;

/** ustar typeflags. */
const TYPEFLAG = {
  file: '0', hardlink: '1', symlink: '2', 'char-device': '3', 'block-device': '4', directory: '5', fifo: '6', pax: 'x',
} as const;

/** The ustar header's fields: [offset, length]. */
const FIELD = {
  name: [0, 100], mode: [100, 8], uid: [108, 8], gid: [116, 8], size: [124, 12], mtime: [136, 12], chksum: [148, 8],
  typeflag: [156, 1], linkname: [157, 100], magic: [257, 6], version: [263, 2], uname: [265, 32], gname: [297, 32],
  devmajor: [329, 8], devminor: [337, 8], prefix: [345, 155],
} as const;

/** One archive member as the header tells it. */
export interface TarEntry {
  /** The member's path, "/"-separated raw bytes, no leading "/"; a directory's ends in "/". */
  path: Uint8Array;
  type: keyof typeof TYPEFLAG;
  /** The 12 permission bits. */
  mode: number;
  uid: number;
  gid: number;
  /** Data bytes that follow (regular files only). */
  size: number;
  /** Seconds since the epoch. */
  mtime: number;
  /** Symlink target or hard link's first path. */
  linkpath?: Uint8Array;
  device?: { major: number; minor: number };
  /** Written as SCHILY.xattr.<name> records, as GNU tar and bsdtar read them. */
  xattrs?: Xattr[];
}

const SLASH = 0x2f;

function putBytes(header: Uint8Array, [offset, length]: readonly [number, number], bytes: Uint8Array): void {
  header.set(bytes.subarray(0, length), offset);
}

/** An octal field of `length - 1` digits and a NUL; false when the value does not fit (a pax record says it instead). */
function putOctal(header: Uint8Array, field: readonly [number, number], value: number): boolean {
  const digits = field[1] - 1;
  const fits = Number.isSafeInteger(value) && value >= 0 && value < 8 ** digits;
  putBytes(header, field, encodeUtf8(`${(fits ? value : 0).toString(8).padStart(digits, '0')}\0`));
  return fits;
}

/** Where a path longer than 100 bytes splits into ustar's prefix (<= 155) and name (<= 100), at a "/"; undefined when it cannot. */
function splitAt(path: Uint8Array): number | undefined {
  for (let i = Math.min(path.length - 1, 155); i > 0; i--) {
    if (path[i] === SLASH && path.length - i - 1 <= 100 && path.length - i - 1 > 0) return i;
  }
  return undefined;
}

/** One pax record: "<length> <key>=<value>\n", the length counting itself. */
function paxRecord(key: string, value: Uint8Array): Uint8Array {
  const rest = encodeUtf8(` ${key}=`).length + value.length + 1;
  let length = rest + String(rest).length;
  if (String(length).length !== String(rest).length) length = rest + String(length).length;
  return concatBytes([encodeUtf8(`${length} ${key}=`), value, encodeUtf8('\n')]);
}

const padding = (size: number) => (TAR_BLOCK - (size % TAR_BLOCK)) % TAR_BLOCK;

/** The 512-byte ustar header of an entry, with what does not fit left out (`encodeTarHeader` adds the pax records). */
function ustarHeader(entry: TarEntry, size: number, type: string, overflow: (key: string, value: Uint8Array) => void): Uint8Array {
  const header = new Uint8Array(TAR_BLOCK);
  const { path } = entry;
  if (path.length <= 100) putBytes(header, FIELD.name, path);
  else {
    const at = splitAt(path);
    if (at === undefined) {
      overflow('path', path);
      putBytes(header, FIELD.name, path.subarray(path.length - 100));
    } else {
      putBytes(header, FIELD.prefix, path.subarray(0, at));
      putBytes(header, FIELD.name, path.subarray(at + 1));
    }
  }
  putOctal(header, FIELD.mode, entry.mode & 0o7777);
  if (!putOctal(header, FIELD.uid, entry.uid)) overflow('uid', encodeUtf8(String(entry.uid)));
  if (!putOctal(header, FIELD.gid, entry.gid)) overflow('gid', encodeUtf8(String(entry.gid)));
  if (!putOctal(header, FIELD.size, size)) overflow('size', encodeUtf8(String(size)));
  if (!putOctal(header, FIELD.mtime, entry.mtime)) overflow('mtime', encodeUtf8(String(entry.mtime)));
  header[FIELD.typeflag[0]] = type.charCodeAt(0);
  if (entry.linkpath) {
    if (entry.linkpath.length > 100) overflow('linkpath', entry.linkpath);
    putBytes(header, FIELD.linkname, entry.linkpath);
  }
  putBytes(header, FIELD.magic, encodeUtf8('ustar\0'));
  putBytes(header, FIELD.version, encodeUtf8('00'));
  putOctal(header, FIELD.devmajor, entry.device?.major ?? 0);
  putOctal(header, FIELD.devminor, entry.device?.minor ?? 0);
  // The checksum: the header's bytes summed with the checksum field as spaces; six digits, NUL, space.
  header.fill(0x20, FIELD.chksum[0], FIELD.chksum[0] + FIELD.chksum[1]);
  let sum = 0;
  for (const byte of header) sum += byte;
  putBytes(header, FIELD.chksum, encodeUtf8(`${sum.toString(8).padStart(6, '0')}\0 `));
  return header;
}

/**
 * The header block(s) of an entry: a pax extended header first when a
 * field does not fit ustar (a long path or link target, a size of 8 GiB or
 * more, ids past 2^21) or the entry has xattrs; then the ustar header.
 */
export function encodeTarHeader(entry: TarEntry): Uint8Array {
  const records: Uint8Array[] = [];
  const size = entry.type === 'file' ? entry.size : 0;
  const header = ustarHeader(entry, size, TYPEFLAG[entry.type], (key, value) => records.push(paxRecord(key, value)));
  for (const xattr of entry.xattrs ?? []) records.push(paxRecord(`SCHILY.xattr.${xattr.name}`, xattr.value));
  if (records.length === 0) return header;
  const data = concatBytes(records);
  const base = entry.path.subarray(entry.path.lastIndexOf(SLASH, entry.path.length - 2) + 1);
  const paxPath = concatBytes([encodeUtf8('PaxHeaders/'), base]).subarray(0, 100);
  const pax = ustarHeader({ path: paxPath, type: 'pax', mode: 0o644, uid: 0, gid: 0, size: data.length, mtime: entry.mtime }, data.length, TYPEFLAG.pax, () => undefined);
  return concatBytes([pax, data, new Uint8Array(padding(data.length)), header]);
}

/** The two zero blocks that end an archive. */
export const TAR_END = new Uint8Array(2 * TAR_BLOCK);

/** A directory tar gives depth first; beyond this it is taken for a loop the image hides. */
const MAX_DEPTH = 4096;

const joinPath = (parent: Uint8Array, name: Uint8Array) => (parent.length === 0 ? name : concatBytes([parent, new Uint8Array([SLASH]), name]));

/**
 * The tar archive of the directory at `names` in `image`, its members
 * under `top/` (raw bytes), as an async iterator of byte chunks pulled one
 * at a time. Regular files are read through their chunks (holes as
 * zeros); hard links within the directory become link members; sockets,
 * which tar cannot hold, are left out. A directory that contains itself
 * (a hostile image) is CORRUPT_IMAGE, thrown where it is met.
 */
export async function* tarDirectory(image: BackupImage, names: Uint8Array[], top: Uint8Array): AsyncIterable<Uint8Array> {
  const imagePath = (parts: Uint8Array[]): ImagePath => concatBytes(parts.flatMap((name) => [new Uint8Array([SLASH]), name]));
  /** Inode number of each multiply-linked file written, to its member path. */
  const linked = new Map<number, Uint8Array>();
  const ancestors = new Set<number>();

  async function* member(parts: Uint8Array[], path: Uint8Array, stat: EntryStat): AsyncIterable<Uint8Array> {
    const at = imagePath(parts);
    const xattrs = stat.hasXattrs ? await image.xattrs(at) : undefined;
    const common = { mode: stat.mode, uid: stat.uid, gid: stat.gid, mtime: stat.mtime, size: 0, xattrs };
    if (stat.type === 'directory') {
      if (ancestors.has(stat.inode) || ancestors.size >= MAX_DEPTH) {
        throw new SquashfsError('CORRUPT_IMAGE', `${decodeUtf8Lossy(path)}: directory inode ${stat.inode} contains itself (a loop)`);
      }
      yield encodeTarHeader({ ...common, type: 'directory', path: concatBytes([path, new Uint8Array([SLASH])]) });
      ancestors.add(stat.inode);
      for (const entry of await image.readdir(at)) {
        const child = [...parts, entry.nameBytes];
        yield* member(child, joinPath(path, entry.nameBytes), await image.stat(imagePath(child)));
      }
      ancestors.delete(stat.inode);
    } else if (stat.type === 'file') {
      const first = stat.nlink > 1 ? linked.get(stat.inode) : undefined;
      if (first) {
        yield encodeTarHeader({ ...common, type: 'hardlink', path, linkpath: first });
        return;
      }
      if (stat.nlink > 1) linked.set(stat.inode, path);
      yield encodeTarHeader({ ...common, type: 'file', path, size: stat.size });
      let written = 0;
      for await (const chunk of image.readChunks(at)) {
        const bytes = chunk.bytes ?? new Uint8Array(chunk.hole);
        written += bytes.length;
        if (written > stat.size) break;
        yield bytes;
      }
      if (written !== stat.size) throw new SquashfsError('CORRUPT_IMAGE', `${decodeUtf8Lossy(path)}: the file gave ${written} bytes, its inode says ${stat.size}`);
      if (padding(stat.size) > 0) yield new Uint8Array(padding(stat.size));
    } else if (stat.type === 'symlink') {
      yield encodeTarHeader({ ...common, type: 'symlink', path, linkpath: await image.readlink(at) });
    } else if (stat.type !== 'socket') {
      yield encodeTarHeader({ ...common, type: stat.type, path, device: stat.rdev });
    }
  }

  yield* member(names, top, await image.stat(imagePath(names)));
  yield TAR_END;
}
