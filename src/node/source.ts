import fs from 'node:fs';
import { fsSource, sourceError, splitDev } from '../source/fs-source.js';
import type { SourceFile, SourcePath, SourceStat, TreeSource } from '../source/source.js';

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

/**
 * The real file system as a tree source. The calls are Node's synchronous
 * ones behind the async interface: for the many small operations of a walk
 * they are several times faster than a thread-pool round trip each, and
 * the writer never has anything else to do while it waits.
 */
export function nodeSource(): TreeSource {
  return {
    lstat: (path) =>
      wrap(path, 'lstat', (): SourceStat => {
        const st = fs.lstatSync(toFsPath(path));
        const { major, minor } = splitDev(st.rdev);
        return {
          mode: st.mode, uid: st.uid, gid: st.gid, size: st.size, mtime: Math.floor(st.mtimeMs / 1000),
          ino: st.ino, dev: st.dev, nlink: st.nlink, rdevMajor: major, rdevMinor: minor,
        };
      }),
    readdir: (path) => wrap(path, 'read directory', () => sharedNames(fs.readdirSync(toFsPath(path), { encoding: 'buffer' }))),
    readlink: (path) => wrap(path, 'read link', () => new Uint8Array(fs.readlinkSync(toFsPath(path), { encoding: 'buffer' }))),
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
}

/** The same over node:fs/promises, for comparison and for callers that must not block. */
export function nodeAsyncSource(): TreeSource {
  return fsSource(fs.promises as never, toFsPath);
}
