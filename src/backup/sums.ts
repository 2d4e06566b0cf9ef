import { toHex, type HashFactory, type Hasher } from '../hash.js';
import { concatBytes, encodeUtf8 } from '../squashfs/bytes.js';
import { S_IFMT, S_IFREG, type SourceFile, type SourcePath, type TreeSource } from '../source/source.js';

/**
 * A backup's checksums: the SHA-256 of every regular file it holds, kept
 * beside the image as `<id>.sha256` in `sha256sum` format (paths relative to
 * the backed-up directory), so a restored tree can be checked by hand with
 * `sha256sum -c`, and an incremental backup with `compare: 'content'` can
 * find files whose contents changed while their size and time did not.
 */
export const sumsKey = (id: string) => `${id}.sha256`;

/** Checksums by path: the relative path's bytes as a string of one char per byte. */
export type Sums = Map<string, string>;

/** A path's bytes as a key (see Sums). */
export function sumsPathKey(bytes: Uint8Array): string {
  let key = '';
  for (let i = 0; i < bytes.length; i++) key += String.fromCharCode(bytes[i]!);
  return key;
}

const keyBytes = (key: string) => Uint8Array.from(key, (c) => c.charCodeAt(0));

/** The key (see Sums) of a path below `root`. */
export function relativeKey(root: string, path: SourcePath): string {
  const bytes = typeof path === 'string' ? encodeUtf8(path) : path;
  return sumsPathKey(bytes.subarray(root === '/' ? 1 : encodeUtf8(root).length + 1));
}

/** A file's SHA-256 (hex), read through the source. */
export async function hashFile(source: TreeSource, path: SourcePath, createHash: HashFactory): Promise<string> {
  const file = await source.open(path);
  try {
    const hasher = createHash();
    const buffer = new Uint8Array(1 << 20);
    for (let position = 0; ; ) {
      const n = await file.read(buffer, position);
      if (n === 0) break;
      hasher.update(buffer.subarray(0, n));
      position += n;
    }
    return toHex(hasher.digest());
  } finally {
    await file.close();
  }
}

/** `sha256sum` lines: `<hex>  <path>`; a path with a newline or backslash is escaped and its line starts with a backslash, as GNU's. */
export function encodeSums(sums: Sums): Uint8Array {
  const lines: Uint8Array[] = [];
  for (const [key, hex] of [...sums].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const escaped = /[\n\\]/.test(key);
    const path = escaped ? key.replace(/\\/g, '\\\\').replace(/\n/g, '\\n') : key;
    lines.push(encodeUtf8(`${escaped ? '\\' : ''}${hex}  `), keyBytes(path), encodeUtf8('\n'));
  }
  return concatBytes(lines);
}

export function parseSums(bytes: Uint8Array): Sums {
  const sums: Sums = new Map();
  const text = sumsPathKey(bytes);
  for (const line of text.split('\n')) {
    const match = /^(\\?)([0-9a-f]{64}) {2}(.*)$/.exec(line);
    if (!match) continue;
    const path = match[1] ? match[3]!.replace(/\\(\\|n)/g, (_, c: string) => (c === 'n' ? '\n' : '\\')) : match[3]!;
    sums.set(path, match[2]!);
  }
  return sums;
}

/**
 * A source that hashes each regular file as the writer reads it, front to
 * back, and records its SHA-256 under its path relative to `root` (and its
 * other names, for a hard-linked file) when a pass over it ended with a
 * short read (the end of the file). Empty files, which the writer never
 * opens, are recorded when they are looked at.
 */
export function hashingSource(source: TreeSource, root: string, createHash: HashFactory, sums: Sums): TreeSource {
  const relative = (path: SourcePath) => relativeKey(root, path);
  const empty = toHex(createHash().digest());
  /** Hard-linked files: every name of each inode (the writer reads an inode once, under one of them). */
  const names = new Map<string, string[]>();
  const inodeOf = new Map<string, string>();
  const record = (path: string, hex: string) => {
    const inode = inodeOf.get(path);
    for (const name of (inode && names.get(inode)) || [path]) sums.set(name, hex);
  };
  return {
    lstat: async (path) => {
      const stat = await source.lstat(path);
      if ((stat.mode & S_IFMT) !== S_IFREG) return stat;
      const rel = relative(path);
      if (stat.nlink > 1) {
        const inode = `${stat.dev}:${stat.ino}`;
        const known = names.get(inode);
        if (known) known.push(rel);
        else names.set(inode, [rel]);
        inodeOf.set(rel, inode);
      }
      if (stat.size === 0) record(rel, empty);
      return stat;
    },
    readdir: (path) => source.readdir(path),
    readlink: (path) => source.readlink(path),
    xattrs: source.xattrs?.bind(source),
    storedData: undefined,
    open: async (path) => {
      const file = await source.open(path);
      let hasher: Hasher = createHash();
      let at = 0;
      /** Whether the last read came back short: the pass read to the end (if nothing more is read). */
      let atEnd = false;
      const finishPass = () => {
        if (atEnd) record(relative(path), toHex(hasher.digest()));
        atEnd = false;
      };
      const hashed: SourceFile = {
        read: async (buffer, position) => {
          const n = await file.read(buffer, position);
          if (position === 0 && at !== 0) {
            // Read again from the start (the writer hashes a possible duplicate, then writes it).
            finishPass();
            hasher = createHash();
            at = 0;
          }
          if (position === at) {
            hasher.update(buffer.subarray(0, n));
            at += n;
            atEnd = n < buffer.length;
          }
          return n;
        },
        close: async () => {
          finishPass();
          await file.close();
        },
      };
      return hashed;
    },
  };
}
