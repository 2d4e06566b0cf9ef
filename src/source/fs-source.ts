import { SquashfsError } from '../errors.js';
import { encodeUtf8 } from '../squashfs/bytes.js';
import { displayPath } from './paths.js';
import type { SourceFile, SourcePath, SourceStat, TreeSource } from './source.js';

/** The subset of node:fs/promises (or memfs's `promises`) the fs source uses. */
export interface FsPromisesLike {
  lstat(path: any): Promise<FsStatsLike>;
  readdir(path: any, options: { encoding: 'buffer' }): Promise<any[]>;
  readlink(path: any, options: { encoding: 'buffer' }): Promise<any>;
  open(path: any, flags: string): Promise<FsFileHandleLike>;
}

export interface FsStatsLike {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeMs: number;
  ino: number | bigint;
  dev: number | bigint;
  nlink: number;
  rdev: number;
}

export interface FsFileHandleLike {
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  close(): Promise<void>;
}

/** Maps a raw path to what the fs takes: a string, or bytes where the fs has a `toPath` for them. */
export type PathEncoder = (path: SourcePath) => unknown;

/** Splits a Linux dev_t into major and minor (glibc's gnu_dev_major / gnu_dev_minor). */
export function splitDev(rdev: number): { major: number; minor: number } {
  const high = Math.floor(rdev / 2 ** 32);
  const low = rdev >>> 0;
  return {
    major: ((low >>> 8) & 0xfff) | ((high & 0xfffff000) >>> 0),
    minor: (low & 0xff) | ((low >>> 12) & 0xfff00),
  };
}

/** Turns an fs error into a typed one naming the path. */
export function sourceError(cause: unknown, path: SourcePath, doing: string): SquashfsError {
  if (cause instanceof SquashfsError) return cause;
  const code = (cause as { code?: string })?.code;
  const where = displayPath(path);
  if (code === 'ENOENT') return new SquashfsError('SOURCE_NOT_FOUND', `${where}: no such file or directory (${doing})`, { path: where, cause });
  if (code === 'ENOTDIR') return new SquashfsError('NOT_A_DIRECTORY', `${where}: not a directory (${doing})`, { path: where, cause });
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new SquashfsError('SOURCE_UNREADABLE', `${where}: cannot ${doing}: ${reason}`, { path: where, cause });
}

const toBytes = (value: unknown): Uint8Array =>
  typeof value === 'string' ? encodeUtf8(value) : new Uint8Array((value as Uint8Array).buffer, (value as Uint8Array).byteOffset, (value as Uint8Array).byteLength);

/**
 * A tree source over anything shaped like node:fs/promises. `encodePath`
 * turns byte paths into what that fs takes (Node: a Buffer).
 */
export function fsSource(fs: FsPromisesLike, encodePath: PathEncoder = (p) => p): TreeSource {
  const run = async <T>(path: SourcePath, doing: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (cause) {
      throw sourceError(cause, path, doing);
    }
  };
  return {
    lstat: (path) =>
      run(path, 'lstat', async (): Promise<SourceStat> => {
        const st = await fs.lstat(encodePath(path));
        const { major, minor } = splitDev(Number(st.rdev));
        return {
          mode: st.mode,
          uid: st.uid,
          gid: st.gid,
          size: st.size,
          mtime: Math.floor(st.mtimeMs / 1000),
          ino: st.ino,
          dev: st.dev,
          nlink: st.nlink,
          rdevMajor: major,
          rdevMinor: minor,
        };
      }),
    readdir: (path) => run(path, 'read directory', async () => (await fs.readdir(encodePath(path), { encoding: 'buffer' })).map(toBytes)),
    readlink: (path) => run(path, 'read link', async () => toBytes(await fs.readlink(encodePath(path), { encoding: 'buffer' }))),
    open: (path) =>
      run(path, 'open', async (): Promise<SourceFile> => {
        const handle = await fs.open(encodePath(path), 'r');
        return {
          read: async (buffer, position) => {
            try {
              return (await handle.read(buffer, 0, buffer.length, position)).bytesRead;
            } catch (cause) {
              throw sourceError(cause, path, 'read');
            }
          },
          close: () => handle.close(),
        };
      }),
  };
}
