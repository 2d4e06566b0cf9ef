import { SquashfsError } from '../errors.js';
import type { DirEntry, EntryStat, FileChunk, ImagePath, Xattr } from '../squashfs/reader/types.js';
import {
  S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK,
  type SourceFile, type SourcePath, type SourceStat, type StoredFileData, type TreeSource,
} from '../source/source.js';

/** What a tree read out of images offers (a SquashfsImage, a chain of them). */
export interface ImageTree {
  stat(path: ImagePath): Promise<EntryStat>;
  readdir(path: ImagePath): Promise<DirEntry[]>;
  readlink(path: ImagePath): Promise<Uint8Array>;
  xattrs(path: ImagePath): Promise<Xattr[]>;
  readChunks(path: ImagePath): AsyncIterable<FileChunk>;
  storedData?(path: ImagePath): Promise<StoredFileData>;
}

const TYPE_BITS: Record<EntryStat['type'], number> = {
  directory: S_IFDIR, file: S_IFREG, symlink: S_IFLNK, 'block-device': S_IFBLK, 'char-device': S_IFCHR, fifo: S_IFIFO, socket: S_IFSOCK,
};

/**
 * An image's tree (or a chain's merged tree) as a source for the writer,
 * paths taken as paths inside the image ("/" its root). Files are read in
 * order, as the writer reads them; where the tree offers its stored
 * blocks, the writer copies them verbatim.
 */
export function imageSource(tree: ImageTree): TreeSource {
  return {
    lstat: async (path): Promise<SourceStat> => {
      const st = await tree.stat(path);
      return {
        mode: TYPE_BITS[st.type] | (st.mode & 0o7777), uid: st.uid, gid: st.gid,
        size: st.type === 'file' || st.type === 'symlink' ? st.size : 0, mtime: st.mtime,
        ino: st.inode, dev: 0, nlink: st.type === 'directory' ? 1 : st.nlink,
        rdevMajor: st.rdev?.major ?? 0, rdevMinor: st.rdev?.minor ?? 0,
      };
    },
    readdir: async (path) => (await tree.readdir(path)).map((entry) => entry.nameBytes),
    readlink: (path) => tree.readlink(path),
    xattrs: async (path) => {
      const xattrs = await tree.xattrs(path);
      return xattrs.length > 0 ? xattrs : undefined;
    },
    open: async (path) => sequentialFile(tree.readChunks(path), path),
    storedData: tree.storedData ? (path) => tree.storedData!(path) : undefined,
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
