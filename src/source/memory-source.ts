import { SquashfsError } from '../errors.js';
import { decodeUtf8Strict, encodeUtf8 } from '../squashfs/bytes.js';
import type { Xattr } from '../squashfs/xattr-table.js';
import { displayPath } from './paths.js';
import { S_IFDIR, S_IFLNK, S_IFREG, type SourceFile, type SourcePath, type SourceStat, type TreeSource } from './source.js';

/** Owner, permissions, time and extended attributes any entry may carry. */
export interface MemoryMeta {
  /** Permission bits (the low 12: 0o7777); default 0o644 for files, 0o755 for directories. Type bits are ignored. */
  mode?: number;
  /** Modification time in whole seconds; default the source's `mtime`. */
  mtime?: number;
  uid?: number;
  gid?: number;
  /** Extended attributes by full name ("user.note"). */
  xattrs?: Record<string, string | Uint8Array>;
}

/** A regular file with metadata. Strings are stored as UTF-8. */
export interface MemoryFile extends MemoryMeta {
  data: string | Uint8Array;
}

/** A symbolic link (`mode` is ignored: links are 0o777). */
export interface MemorySymlink extends MemoryMeta {
  symlink: string | Uint8Array;
}

/** A directory: its entries by name. */
export interface MemoryDirectory {
  [name: string]: MemoryEntry;
}

/** A directory with metadata of its own, made by `memoryDir`. */
export interface MemoryTaggedDirectory extends MemoryMeta {
  readonly [DIRECTORY]: true;
  entries: MemoryDirectory;
}

/**
 * One entry of an in-memory tree: a string or bytes (a file with default
 * metadata), `{ data, ...meta }` (a file), `{ symlink, ...meta }` (a link),
 * a plain object of entries (a directory), or `memoryDir(entries, meta)`.
 */
export type MemoryEntry = string | Uint8Array | MemoryFile | MemorySymlink | MemoryDirectory | MemoryTaggedDirectory;

export interface MemorySourceOptions {
  /** The modification time of entries that give none (whole seconds); default: when the source was made. */
  mtime?: number;
  /** The owner of entries that give none; default 0:0. */
  uid?: number;
  gid?: number;
}

const DIRECTORY = Symbol('memoryDir');
const META_KEYS = new Set(['mode', 'mtime', 'uid', 'gid', 'xattrs']);

/**
 * A directory with its own metadata, or one whose entries would otherwise
 * read as a file or a link (a directory holding just a file named "data").
 */
export function memoryDir(entries: MemoryDirectory, meta: MemoryMeta = {}): MemoryTaggedDirectory {
  return { ...meta, entries, [DIRECTORY]: true };
}

type Node =
  | { kind: 'file'; data: Uint8Array; meta: MemoryMeta }
  | { kind: 'symlink'; target: Uint8Array; meta: MemoryMeta }
  | { kind: 'directory'; entries: MemoryDirectory; meta: MemoryMeta };

const isBytes = (value: unknown): value is Uint8Array => value instanceof Uint8Array;
const toBytes = (value: string | Uint8Array): Uint8Array => (typeof value === 'string' ? encodeUtf8(value) : value);

/** True when every key but `key` is metadata, with metadata of the right types. */
function onlyMeta(value: Record<string, unknown>, key: string): boolean {
  for (const [k, v] of Object.entries(value)) {
    if (k === key) continue;
    if (!META_KEYS.has(k)) return false;
    if (k === 'xattrs' ? typeof v !== 'object' || v === null || isBytes(v) : typeof v !== 'number' && v !== undefined) return false;
  }
  return true;
}

function classify(entry: MemoryEntry, where: string): Node {
  if (typeof entry === 'string' || isBytes(entry)) return { kind: 'file', data: toBytes(entry), meta: {} };
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    throw new SquashfsError('INVALID_OPTION', `${where}: a memory source entry must be a string, bytes, a file, a link or a directory, got ${entry === null ? 'null' : typeof entry}`, { path: where });
  }
  if ((entry as MemoryTaggedDirectory)[DIRECTORY] === true) {
    const { entries, ...meta } = entry as MemoryTaggedDirectory;
    return { kind: 'directory', entries, meta };
  }
  const record = entry as Record<string, unknown>;
  const data = record['data'];
  if ((typeof data === 'string' || isBytes(data)) && onlyMeta(record, 'data')) {
    const { data: _data, ...meta } = entry as MemoryFile;
    return { kind: 'file', data: toBytes(data), meta };
  }
  const target = record['symlink'];
  if ((typeof target === 'string' || isBytes(target)) && onlyMeta(record, 'symlink')) {
    const { symlink: _target, ...meta } = entry as MemorySymlink;
    return { kind: 'symlink', target: toBytes(target), meta };
  }
  return { kind: 'directory', entries: entry as MemoryDirectory, meta: {} };
}

/**
 * A tree source over a tree described in memory, for runtimes without a
 * file system (Cloudflare Workers) and for tests:
 *
 * ```ts
 * memorySource({
 *   'readme.txt': 'hello\n',
 *   'bin': { tool: { data: bytes, mode: 0o755 } },
 *   'latest': { symlink: 'readme.txt' },
 *   'empty-dir': {},
 * });
 * ```
 *
 * The root of the tree is the path "/" (pass "/" as the writer's root; any
 * path below it works too). Names are the object's keys, stored as UTF-8.
 * Every entry is its own inode: there are no hard links. The tree is read
 * when the writer asks, so it must not change while an image is written.
 */
export function memorySource(tree: MemoryDirectory | MemoryTaggedDirectory, options: MemorySourceOptions = {}): TreeSource {
  const defaultMtime = options.mtime ?? Math.floor(Date.now() / 1000);
  const inodes = new Map<string, number>();
  const root = classify(tree, '/');
  if (root.kind !== 'directory') throw new SquashfsError('INVALID_OPTION', 'the root of a memory source must be a directory');

  const notFound = (path: SourcePath): never => {
    const where = displayPath(path);
    throw new SquashfsError('SOURCE_NOT_FOUND', `${where}: no such file or directory`, { path: where });
  };

  /** The node at a path and its canonical key ("/a/b"). */
  const resolve = (path: SourcePath): { node: Node; key: string } => {
    const text = typeof path === 'string' ? path : decodeUtf8Strict(path);
    if (text === undefined) return notFound(path); // every name here is valid UTF-8
    let node: Node = root;
    const names: string[] = [];
    for (const name of text.split('/')) {
      if (name === '' || name === '.') continue;
      if (node.kind !== 'directory') {
        const where = displayPath(path);
        throw new SquashfsError('NOT_A_DIRECTORY', `${where}: not a directory`, { path: where });
      }
      if (name === '..' || !Object.prototype.hasOwnProperty.call(node.entries, name)) return notFound(path);
      names.push(name);
      node = classify(node.entries[name]!, `/${names.join('/')}`);
    }
    return { node, key: `/${names.join('/')}` };
  };

  const lstat = (path: SourcePath): SourceStat => {
    const { node, key } = resolve(path);
    let ino = inodes.get(key);
    if (ino === undefined) inodes.set(key, (ino = inodes.size + 1));
    const { meta } = node;
    const perms = (meta.mode ?? (node.kind === 'directory' ? 0o755 : node.kind === 'symlink' ? 0o777 : 0o644)) & 0o7777;
    let nlink = 1;
    let size = 0;
    let type = S_IFREG;
    if (node.kind === 'directory') {
      type = S_IFDIR;
      nlink = 2;
      for (const [name, child] of Object.entries(node.entries)) if (classify(child, `${key === '/' ? '' : key}/${name}`).kind === 'directory') nlink++;
    } else if (node.kind === 'symlink') {
      type = S_IFLNK;
      size = node.target.length;
    } else {
      size = node.data.length;
    }
    return {
      mode: type | (node.kind === 'symlink' ? 0o777 : perms),
      uid: meta.uid ?? options.uid ?? 0,
      gid: meta.gid ?? options.gid ?? 0,
      size,
      mtime: meta.mtime ?? defaultMtime,
      ino,
      dev: 1,
      nlink,
      rdevMajor: 0,
      rdevMinor: 0,
    };
  };

  return {
    lstat: async (path) => lstat(path),
    readdir: async (path) => {
      const { node } = resolve(path);
      if (node.kind !== 'directory') {
        const where = displayPath(path);
        throw new SquashfsError('NOT_A_DIRECTORY', `${where}: not a directory`, { path: where });
      }
      return Object.keys(node.entries).map(encodeUtf8);
    },
    readlink: async (path) => {
      const { node } = resolve(path);
      if (node.kind !== 'symlink') {
        const where = displayPath(path);
        throw new SquashfsError('SOURCE_UNREADABLE', `${where}: cannot read link: not a symbolic link`, { path: where });
      }
      return node.target;
    },
    open: async (path): Promise<SourceFile> => {
      const { node } = resolve(path);
      if (node.kind !== 'file') {
        const where = displayPath(path);
        throw new SquashfsError('SOURCE_UNREADABLE', `${where}: cannot open: not a regular file`, { path: where });
      }
      const data = node.data;
      return {
        read: async (buffer, position) => {
          if (position >= data.length) return 0;
          const n = Math.min(buffer.length, data.length - position);
          buffer.set(data.subarray(position, position + n));
          return n;
        },
        close: async () => undefined,
      };
    },
    xattrs: async (path) => {
      const attrs = resolve(path).node.meta.xattrs;
      if (!attrs) return undefined;
      return Object.entries(attrs).map(([name, value]): Xattr => ({ name, value: toBytes(value) }));
    },
  };
}
