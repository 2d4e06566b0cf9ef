import { SquashfsError } from '../errors.js';
import { toHex } from '../hash.js';
import { concatBytes, decodeUtf8Strict } from '../squashfs/bytes.js';
import type { DirEntry, EntryStat, FileChunk, WalkEntry, Xattr } from '../squashfs/reader/types.js';
import { displayPath } from '../source/paths.js';
import {
  S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK,
  type SourceFile, type SourcePath, type SourceStat, type StoredFileData, type TreeSource,
} from '../source/source.js';

/** What a tree read out of images offers (a SquashfsImage, a chain of them). */
export interface ImageTree {
  walk(options?: { signal?: AbortSignal }): AsyncIterable<WalkEntry>;
  readdir(path: WalkEntry): Promise<DirEntry[]>;
  readlink(path: WalkEntry): Promise<Uint8Array>;
  xattrs(path: WalkEntry): Promise<Xattr[]>;
  readChunks(path: WalkEntry): AsyncIterable<FileChunk>;
  storedData?(path: WalkEntry): Promise<StoredFileData>;
  /** A walked directory's names once the walk has listed it, where the tree keeps them (see ChainImage). */
  walkedNames?(path: WalkEntry): Uint8Array[] | undefined;
}

const TYPE_BITS: Record<EntryStat['type'], number> = {
  directory: S_IFDIR, file: S_IFREG, symlink: S_IFLNK, 'block-device': S_IFBLK, 'char-device': S_IFCHR, fifo: S_IFIFO, socket: S_IFSOCK,
};

/**
 * A path as a map key: the path itself while it is a string (every name
 * valid UTF-8, as `joinPath` makes them), else its bytes in hex.
 */
function pathKey(path: SourcePath): string {
  return typeof path === 'string' ? path : `\0${toHex(path)}`;
}

/**
 * The key `pathKey` gives the path the writer makes for a walked entry
 * (from "/"). `texts` keeps each name's text (null: not UTF-8): an entry
 * shares its directories' name objects with the entries around it.
 */
function entryKey(names: readonly Uint8Array[], texts: WeakMap<Uint8Array, string | null>): string {
  let key = '';
  for (const name of names) {
    let text = texts.get(name);
    if (text === undefined) texts.set(name, (text = decodeUtf8Strict(name) ?? null));
    if (text === null) return pathKey(concatBytes(names.flatMap((n) => [SLASH, n])));
    key += `/${text}`;
  }
  return key === '' ? '/' : key;
}

const SLASH = new Uint8Array([0x2f]);

/**
 * An image's tree (or a chain's merged tree) as a source for the writer,
 * paths taken as paths inside the image ("/" its root). The tree is walked
 * once, as the writer asks: both go through directories depth first in
 * name order, so each entry is met when it is asked for and none is looked
 * up by its path (which would read every directory above it again). Every
 * entry read is kept, for its data and xattrs later. Files are read in
 * order, as the writer reads them; where the tree offers its stored
 * blocks, the writer copies them verbatim.
 */
export function imageSource(tree: ImageTree, signal?: AbortSignal): TreeSource {
  const walk = tree.walk({ signal })[Symbol.asyncIterator]();
  const entries = new Map<string, WalkEntry>();
  const texts = new WeakMap<Uint8Array, string | null>();
  let walked = false;
  /** The walk's next entry, kept by its path; false at its end. */
  const step = async (): Promise<boolean> => {
    const next = walked ? undefined : await walk.next();
    if (!next || next.done) {
      walked = true;
      return false;
    }
    entries.set(entryKey(next.value.names, texts), next.value);
    return true;
  };
  const entryAt = async (path: SourcePath): Promise<WalkEntry> => {
    const key = pathKey(path);
    for (;;) {
      const found = entries.get(key);
      if (found) return found;
      if (!(await step())) throw new SquashfsError('NOT_FOUND', `${displayPath(path)}: no such entry in the image`, { path: displayPath(path) });
    }
  };
  /**
   * A directory's names from the walk, where the tree keeps them. The walk
   * lists directories in the order the writer goes into them (depth first,
   * by name), so the one asked for is the next it lists, after the entries
   * of the directory above it not yet read, which the writer reads next
   * anyway. A tree without them, or a walk that ends first: its listing.
   */
  const namesIn = async (entry: WalkEntry): Promise<Uint8Array[]> => {
    if (tree.walkedNames) {
      do {
        const names = tree.walkedNames(entry);
        if (names) return names;
      } while (await step());
    }
    return (await tree.readdir(entry)).map((listed) => listed.nameBytes);
  };
  return {
    lstat: async (path): Promise<SourceStat> => {
      const st = (await entryAt(path)).stat;
      return {
        mode: TYPE_BITS[st.type] | (st.mode & 0o7777), uid: st.uid, gid: st.gid,
        size: st.type === 'file' || st.type === 'symlink' ? st.size : 0, mtime: st.mtime,
        ino: st.inode, dev: 0, nlink: st.type === 'directory' ? 1 : st.nlink,
        rdevMajor: st.rdev?.major ?? 0, rdevMinor: st.rdev?.minor ?? 0,
      };
    },
    readdir: async (path) => namesIn(await entryAt(path)),
    readlink: async (path) => tree.readlink(await entryAt(path)),
    xattrs: async (path) => {
      const xattrs = await tree.xattrs(await entryAt(path));
      return xattrs.length > 0 ? xattrs : undefined;
    },
    open: async (path) => sequentialFile(tree.readChunks(await entryAt(path)), path),
    storedData: tree.storedData ? async (path) => tree.storedData!(await entryAt(path)) : undefined,
  };
}

/**
 * A file of the image read front to back: reads must come in order (each
 * at the position where the last ended), which is how the writer reads.
 */
function sequentialFile(chunks: AsyncIterable<FileChunk>, path: SourcePath): SourceFile {
  const iterator = chunks[Symbol.asyncIterator]();
  /** The chunk being read: its bytes, or none for a hole of `length` zeros. */
  let chunk: { offset: number; length: number; bytes?: Uint8Array } | undefined;
  let at = 0;
  let ended = false;
  const next = async (): Promise<boolean> => {
    const step = await iterator.next();
    if (step.done) {
      ended = true;
      return false;
    }
    const value = step.value;
    chunk = { offset: value.offset, length: value.bytes?.length ?? value.hole!, bytes: value.bytes };
    return true;
  };
  return {
    read: async (buffer, position) => {
      if (position !== at) {
        throw new SquashfsError('SOURCE_UNREADABLE', `${String(path)}: read at ${position}, after ${at} (an image's files are read in order)`);
      }
      let filled = 0;
      while (filled < buffer.length) {
        if (!chunk || at >= chunk.offset + chunk.length) {
          if (ended || !(await next())) break;
          continue;
        }
        const from = at - chunk.offset;
        const n = Math.min(buffer.length - filled, chunk.length - from);
        if (chunk.bytes) buffer.set(chunk.bytes.subarray(from, from + n), filled);
        else buffer.fill(0, filled, filled + n);
        filled += n;
        at += n;
      }
      return filled;
    },
    close: async () => {
      await iterator.return?.();
    },
  };
}
