import fs from 'node:fs';
import { fsSource, sourceError, splitDev } from '../source/fs-source.js';
import type { SourceFile, SourcePath, SourceStat, SyncTreeSource, TreeSource } from '../source/source.js';

const toFsPath = (path: SourcePath): string | Buffer => (typeof path === 'string' ? path : Buffer.from(path));

const wrap = <T>(path: SourcePath, doing: string, fn: () => T): Promise<T> => {
  try {
    return Promise.resolve(fn());
  } catch (cause) {
    return Promise.reject(sourceError(cause, path, doing));
  }
};

/**
 * A directory's names as views on one buffer: the writer copies them into
 * its own table, and a buffer per name (a backing store each, freed only by
 * a full GC) would cost more than the name.
 */
function sharedNames(names: Buffer[]): Uint8Array[] {
  let total = 0;
  for (const name of names) total += name.length;
  const all = new Uint8Array(total);
  let at = 0;
  return names.map((name) => {
    all.set(name, at);
    at += name.length;
    return all.subarray(at - name.length, at);
  });
}

/** Runs a synchronous fs call, throwing a typed error naming the path. */
const typed = <T>(path: SourcePath, doing: string, fn: () => T): T => {
  try {
    return fn();
  } catch (cause) {
    throw sourceError(cause, path, doing);
  }
};

/** The real file system, answering at once (SyncTreeSource), for `of`. */
function nodeSyncSource(of: TreeSource): SyncTreeSource {
  return {
    of,
    lstat: (path) =>
      typed(path, 'lstat', (): SourceStat => {
        const st = fs.lstatSync(toFsPath(path));
        const { major, minor } = splitDev(st.rdev);
        return {
          mode: st.mode, uid: st.uid, gid: st.gid, size: st.size, mtime: Math.floor(st.mtimeMs / 1000),
          ino: st.ino, dev: st.dev, nlink: st.nlink, rdevMajor: major, rdevMinor: minor,
        };
      }),
    readdir: (path) => typed(path, 'read directory', () => sharedNames(fs.readdirSync(toFsPath(path), { encoding: 'buffer' }))),
    readlink: (path) => typed(path, 'read link', () => new Uint8Array(fs.readlinkSync(toFsPath(path), { encoding: 'buffer' }))),
    readStart: (path, buffer) => {
      const fd = typed(path, 'open', () => fs.openSync(toFsPath(path), 'r'));
      try {
        return typed(path, 'read', () => {
          let filled = 0;
          while (filled < buffer.length) {
            const n = fs.readSync(fd, buffer, filled, buffer.length - filled, filled);
            if (n === 0) break;
            filled += n;
          }
          return filled;
        });
      } finally {
        fs.closeSync(fd);
      }
    },
  };
}

/**
 * The real file system as a tree source. The calls are Node's synchronous
 * ones, also behind the async interface: for the many small operations of
 * a walk they are several times faster than a thread-pool round trip each,
 * and the writer never has anything else to do while it waits.
 */
export function nodeSource(): TreeSource {
  const source: TreeSource = {
    lstat: (path) => wrap(path, 'lstat', () => sync.lstat(path)),
    readdir: (path) => wrap(path, 'read directory', () => sync.readdir(path)),
    readlink: (path) => wrap(path, 'read link', () => sync.readlink(path)),
    open: (path) =>
      wrap(path, 'open', (): SourceFile => {
        const fd = fs.openSync(toFsPath(path), 'r');
        return {
          fd,
          read: (buffer, position) => wrap(path, 'read', () => fs.readSync(fd, buffer, 0, buffer.length, position)),
          close: () => wrap(path, 'close', () => fs.closeSync(fd)),
        };
      }),
  };
  const sync = nodeSyncSource(source);
  source.sync = sync;
  return source;
}

/** The same over node:fs/promises, for comparison and for callers that must not block. */
export function nodeAsyncSource(): TreeSource {
  return fsSource(fs.promises as never, toFsPath);
}
