import { SquashfsError, throwIfAborted } from '../../errors.js';
import type { ExcludeFilter } from '../../source/exclude.js';
import { displayPath, joinPath } from '../../source/paths.js';
import {
  S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK, syncOf,
  type SourcePath, type SourceStat, type TreeSource, type XattrLookup,
} from '../../source/source.js';
import { compareBytes, decodeUtf8Lossy } from '../bytes.js';
import { NAME_MAX } from '../constants.js';
import { isValidName } from '../directory.js';
import { EventLoopTurns } from '../../source/turns.js';
import { BLOCK_DEVICE, CHAR_DEVICE, DIRECTORY, EntryTable, FIFO, FILE, NONE, SOCKET, SYMLINK } from './entries.js';

export interface WalkedTree {
  /** Every inode once, directories included, in walk order; the root is entry 0. */
  entries: EntryTable;
  /** An entry's path (where it was first found), made from its parents' names. */
  pathOf(entry: number): SourcePath;
  /** Regular files by entry, in walk order (each inode once). */
  files: Uint32Array;
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

/** An inode kind's index in `KINDS`, from st_mode; -1 for an unknown type. */
export function kindOf(mode: number): number {
  switch (mode & S_IFMT) {
    case S_IFDIR: return DIRECTORY;
    case S_IFREG: return FILE;
    case S_IFLNK: return SYMLINK;
    case S_IFBLK: return BLOCK_DEVICE;
    case S_IFCHR: return CHAR_DEVICE;
    case S_IFIFO: return FIFO;
    case S_IFSOCK: return SOCKET;
    default: return -1;
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
 * Walks the source tree in sorted order, reading metadata only, into an
 * entry table: the per-entry state the writer keeps. Extended attributes
 * are not looked up here (see `attachXattrs`): the data need none, so the
 * walk does not wait for them.
 */
export async function walkTree(source: TreeSource, rootPath: SourcePath, options: WalkOptions = {}): Promise<WalkedTree> {
  const rootStat = await source.lstat(rootPath);
  if (kindOf(rootStat.mode) !== DIRECTORY) {
    const where = displayPath(rootPath);
    throw new SquashfsError('NOT_A_DIRECTORY', `${where} is not a directory`, { path: where });
  }
  const entries = new EntryTable();
  let fileCount = 0;
  const sizeCounts = new Map<number, number>();
  const hardLinks = new Map<string, number>();
  let totalBytes = 0;

  const sync = syncOf(source);
  // A source that answers at once (sync) is walked without a turn of the event loop per call: each is awaited only when it is a promise.
  const lstat = sync ? (path: SourcePath) => sync.lstat(path) : (path: SourcePath) => source.lstat(path);
  const readdir = sync ? (path: SourcePath) => sync.readdir(path) : (path: SourcePath) => source.readdir(path);
  const readlink = sync ? (path: SourcePath) => sync.readlink(path) : (path: SourcePath) => source.readlink(path);
  const turns = new EventLoopTurns();

  const addEntry = (kind: number, stat: SourceStat, parent: number, name: Uint8Array): number => {
    const entry = entries.add(kind, stat, parent, entries.names.add(name), name.length);
    if (kind === FILE) {
      fileCount++;
      totalBytes += stat.size;
      sizeCounts.set(stat.size, (sizeCounts.get(stat.size) ?? 0) + 1);
    } else if (kind === BLOCK_DEVICE || kind === CHAR_DEVICE) {
      entries.devices.set(entry, { major: stat.rdevMajor, minor: stat.rdevMinor });
    }
    options.onEntry?.(entries.count);
    return entry;
  };

  const walkDirectory = async (directory: number, path: SourcePath, relative: string): Promise<void> => {
    throwIfAborted(options.signal);
    if (turns.due()) await turns.take();
    const listed = readdir(path);
    const names = (listed instanceof Promise ? await listed : listed).sort(compareBytes);
    // This directory's rows, made whole once its subdirectories are walked.
    const inodes: number[] = [];
    const nameAts: number[] = [];
    const nameLengths: number[] = [];
    for (const name of names) {
      checkName(name, path);
      const childPath = joinPath(path, name);
      const statted = lstat(childPath);
      const stat = statted instanceof Promise ? await statted : statted;
      const kind = kindOf(stat.mode);
      if (kind < 0) {
        const where = displayPath(childPath);
        throw new SquashfsError('SOURCE_UNREADABLE', `${where}: unknown file type (mode 0o${stat.mode.toString(8)})`, { path: where });
      }
      let childRelative = '';
      if (options.exclude) {
        // The relative path is for the exclude filter alone: without one, no string per entry.
        childRelative = relative === '' ? decodeUtf8Lossy(name) : `${relative}/${decodeUtf8Lossy(name)}`;
        const excluded = options.exclude(childRelative, kind === DIRECTORY);
        if (excluded instanceof Promise ? await excluded : excluded) continue;
      }
      let entry: number | undefined;
      let nameAt: number | undefined;
      if (kind !== DIRECTORY && stat.nlink > 1) {
        const key = `${stat.dev}:${stat.ino}`;
        entry = hardLinks.get(key);
        if (entry !== undefined) {
          // Another name of an inode already found: a row of its own; the inode keeps the name it was first found by.
          entries.links[entry]!++;
          nameAt = entries.names.add(name);
        } else {
          hardLinks.set(key, (entry = addEntry(kind, stat, directory, name)));
        }
      } else {
        entry = addEntry(kind, stat, directory, name);
      }
      if (kind === SYMLINK && !entries.targets.has(entry)) {
        const target = readlink(childPath);
        entries.targets.set(entry, target instanceof Promise ? await target : target);
      }
      inodes.push(entry);
      nameAts.push(nameAt ?? entries.nameAt[entry]!);
      nameLengths.push(name.length);
      if (kind === DIRECTORY) await walkDirectory(entry, childPath, childRelative);
    }
    entries.setRows(directory, inodes, nameAts, nameLengths);
  };

  addEntry(DIRECTORY, rootStat, NONE, new Uint8Array(0));
  await walkDirectory(0, rootPath, '');
  entries.trim();
  const files = new Uint32Array(fileCount);
  for (let i = 0, f = 0; i < entries.count; i++) if (entries.kind[i] === FILE) files[f++] = i;
  return { entries, files, totalBytes, sizeCounts, pathOf: pathMaker(entries, rootPath) };
}

/**
 * Looks up every inode's extended attributes (under the path it was first
 * found at). The writer does this once the data is written, so a lookup
 * that is slow to start (Node's one getfattr run over the tree) overlaps
 * the walk and the data instead of holding them up.
 */
export async function attachXattrs(tree: WalkedTree, lookup: XattrLookup): Promise<void> {
  for (let entry = 0; entry < tree.entries.count; entry++) {
    const found = lookup(tree.pathOf(entry));
    const xattrs = found instanceof Promise ? await found : found;
    if (xattrs && xattrs.length > 0) tree.entries.xattrs.set(entry, xattrs);
  }
}

/**
 * Paths from parents and names. Entries are asked for in walk order, so
 * the last directory's path is kept: a file's path is one join.
 */
function pathMaker(entries: EntryTable, rootPath: SourcePath): (entry: number) => SourcePath {
  let lastDirectory = 0;
  let lastPath: SourcePath = rootPath;
  const directoryPath = (directory: number): SourcePath => {
    if (directory === lastDirectory) return lastPath;
    if (directory === 0) return rootPath;
    const path = joinPath(directoryPath(entries.parent[directory]!), entries.name(directory));
    lastDirectory = directory;
    lastPath = path;
    return path;
  };
  return (entry) => (entry === 0 ? rootPath : joinPath(directoryPath(entries.parent[entry]!), entries.name(entry)));
}
