import { SquashfsError, throwIfAborted } from '../../errors.js';
import type { ExcludeFilter } from '../../source/exclude.js';
import { displayPath, joinPath } from '../../source/paths.js';
import {
  S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK,
  type SourcePath, type SourceStat, type TreeSource,
} from '../../source/source.js';
import { compareBytes, decodeUtf8Lossy } from '../bytes.js';
import { NAME_MAX } from '../constants.js';
import { isValidName } from '../directory.js';
import type { Inode } from '../inode/inode.js';
import type { MetadataPosition } from '../metadata.js';
import type { Xattr } from '../xattr-table.js';

/** Where a regular file's data ended up. */
export interface FileLayout {
  blocksStart: number;
  blockSizes: Uint32Array;
  fragmentIndex: number;
  fragmentOffset: number;
  /** Bytes stored as holes. */
  sparse: number;
}

/** One inode of the tree; hard links share a record. */
export interface InodeRecord {
  kind: Inode['kind'];
  stat: SourceStat;
  /**
   * Where it was first found: its directory's record and its name there
   * (the root has neither, and `pathOf` gives the walk's root path). No
   * path string is kept per entry; `pathOf` makes one when it is needed.
   */
  parent?: InodeRecord;
  name: Uint8Array;
  /** Names it has in the image (its nlink, for non-directories). */
  links: number;
  xattrs?: readonly Xattr[];
  /** Symlink target. */
  target?: Uint8Array;
  /** Set by the data phase for regular files. */
  layout?: FileLayout;
  /** Set by the metadata phase. */
  inodeNumber?: number;
  inodeRef?: MetadataPosition;
  inodeType?: number;
}

export interface TreeNode {
  name: Uint8Array;
  record: InodeRecord;
  /** Sorted by name bytes; directories only. */
  children?: TreeNode[];
}

export interface WalkedTree {
  root: TreeNode;
  /** A record's path (its first), made from its parents' names. */
  pathOf(record: InodeRecord): SourcePath;
  /** Every inode once, directories included, in walk order. */
  records: InodeRecord[];
  /** Regular files in walk order (each inode once). */
  files: InodeRecord[];
  /** Total bytes of regular files. */
  totalBytes: number;
  /** How many files have each size (for duplicate detection). */
  sizeCounts: Map<number, number>;
}

export interface WalkOptions {
  exclude?: ExcludeFilter;
  signal?: AbortSignal;
  onEntry?: (count: number) => void;
}

export function kindOf(mode: number): Inode['kind'] | undefined {
  switch (mode & S_IFMT) {
    case S_IFDIR: return 'directory';
    case S_IFREG: return 'file';
    case S_IFLNK: return 'symlink';
    case S_IFBLK: return 'block-device';
    case S_IFCHR: return 'char-device';
    case S_IFIFO: return 'fifo';
    case S_IFSOCK: return 'socket';
    default: return undefined;
  }
}

function checkName(name: Uint8Array, parent: SourcePath): void {
  const bad = !isValidName(name);
  if (bad || name.length > NAME_MAX) {
    const path = `${displayPath(parent)}/${decodeUtf8Lossy(name)}`;
    const why = bad ? 'is not a valid name' : `is ${name.length} bytes long, more than ${NAME_MAX}`;
    throw new SquashfsError('INVALID_NAME', `${path}: the name ${why}`, { path });
  }
}

/**
 * Walks the source tree in sorted order, reading metadata only. The result
 * holds one record per inode: the per-entry metadata the writer keeps.
 * Extended attributes are not looked up here (see `attachXattrs`): the
 * data need none, so the walk does not wait for them.
 */
export async function walkTree(source: TreeSource, rootPath: SourcePath, options: WalkOptions = {}): Promise<WalkedTree> {
  const rootStat = await source.lstat(rootPath);
  if (kindOf(rootStat.mode) !== 'directory') {
    const where = displayPath(rootPath);
    throw new SquashfsError('NOT_A_DIRECTORY', `${where} is not a directory`, { path: where });
  }
  const records: InodeRecord[] = [];
  const files: InodeRecord[] = [];
  const sizeCounts = new Map<number, number>();
  const hardLinks = new Map<string, InodeRecord>();
  let totalBytes = 0;

  const makeRecord = async (parent: InodeRecord | undefined, name: Uint8Array, path: SourcePath, full: SourceStat, kind: Inode['kind']): Promise<InodeRecord> => {
    // What the image needs of the stat, kept per entry (the inode and device numbers served the walk alone).
    const stat: SourceStat = {
      mode: full.mode, uid: full.uid, gid: full.gid, size: full.size, mtime: full.mtime, ino: 0, dev: 0, nlink: full.nlink,
      rdevMajor: full.rdevMajor, rdevMinor: full.rdevMinor,
    };
    const record: InodeRecord = { kind, stat, parent, name, links: 1 };
    if (kind === 'symlink') record.target = await source.readlink(path);
    records.push(record);
    if (kind === 'file') {
      files.push(record);
      totalBytes += stat.size;
      sizeCounts.set(stat.size, (sizeCounts.get(stat.size) ?? 0) + 1);
    }
    options.onEntry?.(records.length);
    return record;
  };

  const walkDirectory = async (node: TreeNode, path: SourcePath, relative: string): Promise<void> => {
    const parent = node.record;
    throwIfAborted(options.signal);
    const names = (await source.readdir(path)).sort(compareBytes);
    const children: TreeNode[] = [];
    for (const name of names) {
      checkName(name, path);
      const childPath = joinPath(path, name);
      // The relative path is for the exclude filter alone: without one, no string per entry.
      const childRelative = !options.exclude ? '' : relative === '' ? decodeUtf8Lossy(name) : `${relative}/${decodeUtf8Lossy(name)}`;
      const stat = await source.lstat(childPath);
      const kind = kindOf(stat.mode);
      if (kind === undefined) {
        const where = displayPath(childPath);
        throw new SquashfsError('SOURCE_UNREADABLE', `${where}: unknown file type (mode 0o${stat.mode.toString(8)})`, { path: where });
      }
      if (await options.exclude?.(childRelative, kind === 'directory')) continue;
      let record: InodeRecord | undefined;
      if (kind !== 'directory' && stat.nlink > 1) {
        const key = `${stat.dev}:${stat.ino}`;
        record = hardLinks.get(key);
        if (record) record.links++;
        else hardLinks.set(key, (record = await makeRecord(parent, name, childPath, stat, kind)));
      } else {
        record = await makeRecord(parent, name, childPath, stat, kind);
      }
      const child: TreeNode = { name, record };
      children.push(child);
      if (kind === 'directory') await walkDirectory(child, childPath, childRelative);
    }
    node.children = children;
  };

  const rootName = new Uint8Array(0);
  const root: TreeNode = { name: rootName, record: await makeRecord(undefined, rootName, rootPath, rootStat, 'directory') };
  await walkDirectory(root, rootPath, '');
  return { root, records, files, totalBytes, sizeCounts, pathOf: pathMaker(root.record, rootPath) };
}

/**
 * Looks up every inode's extended attributes (under the path it was first
 * found at). The writer does this once the data is written, so a lookup
 * that is slow to start (Node's one getfattr run over the tree) overlaps
 * the walk and the data instead of holding them up.
 */
export async function attachXattrs(tree: WalkedTree, lookup: (path: SourcePath) => Promise<readonly Xattr[] | undefined>): Promise<void> {
  for (const record of tree.records) {
    const xattrs = await lookup(tree.pathOf(record));
    if (xattrs && xattrs.length > 0) record.xattrs = xattrs;
  }
}

/**
 * Paths from parents and names. Records are asked for in walk order, so
 * the last directory's path is kept: a file's path is one join.
 */
function pathMaker(root: InodeRecord, rootPath: SourcePath): (record: InodeRecord) => SourcePath {
  let lastDirectory: InodeRecord | undefined;
  let lastPath: SourcePath = rootPath;
  const directoryPath = (directory: InodeRecord): SourcePath => {
    if (directory === root) return rootPath;
    if (directory === lastDirectory) return lastPath;
    const path = joinPath(directoryPath(directory.parent!), directory.name);
    lastDirectory = directory;
    lastPath = path;
    return path;
  };
  return (record) => (record === root ? rootPath : joinPath(directoryPath(record.parent!), record.name));
}
