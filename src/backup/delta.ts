import { SquashfsError, throwIfAborted } from '../errors.js';
import { bytesEqual, compareBytes, decodeUtf8Lossy } from '../squashfs/bytes.js';
import type { SquashfsImage } from '../squashfs/reader/image.js';
import type { EntryStat } from '../squashfs/reader/types.js';
import type { Xattr } from '../squashfs/xattr-table.js';
import type { ExcludeFilter } from '../source/exclude.js';
import { joinPath } from '../source/paths.js';
import { EventLoopTurns } from '../source/turns.js';
import {
  S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK,
  type SourcePath, type SourceStat, type TreeSource, type XattrLookup,
} from '../source/source.js';
import type { HashFactory } from '../hash.js';
import { isOpaque, isWhiteout, OPAQUE_VALUE, OPAQUE_XATTR, OVERLAY_XATTR_PREFIX } from './chain.js';
import { hashFile, relativeKey, type Sums } from './sums.js';

/**
 * What a chain's merged tree holds at a path: what the quick check compares
 * (as rsync's: type, size, mtime, mode, owner, symlink target, device,
 * xattrs), and a directory's names.
 */
interface MergedEntry {
  /** st_mode: type and permission bits. */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  target?: Uint8Array;
  rdev?: { major: number; minor: number };
  /** The xattrs in a canonical form (sorted, overlay's own left out); '' for none. */
  xattrs: string;
  /** Directories: entries by name (the name's bytes as a latin1 string). */
  children?: Map<string, MergedEntry>;
}

const TYPE_BITS: Record<EntryStat['type'], number> = {
  directory: S_IFDIR, file: S_IFREG, symlink: S_IFLNK, 'block-device': S_IFBLK, 'char-device': S_IFCHR, fifo: S_IFIFO, socket: S_IFSOCK,
};

/** A name's bytes as a string key (one char per byte: equal keys, equal bytes). */
const nameKey = (name: Uint8Array): string => String.fromCharCode.apply(null, name as unknown as number[]); // a name is at most 256 bytes
const keyBytes = (key: string): Uint8Array => Uint8Array.from(key, (c) => c.charCodeAt(0));

/** Xattrs in a canonical form for comparison; overlayfs's own are not part of the tree. */
function canonicalXattrs(xattrs: readonly Xattr[] | undefined): string {
  if (!xattrs || xattrs.length === 0) return '';
  return xattrs
    .filter((x) => !x.name.startsWith(OVERLAY_XATTR_PREFIX))
    .map((x) => `${x.name}=${Array.from(x.value, (b) => b.toString(16).padStart(2, '0')).join('')}`)
    .sort()
    .join('\n');
}

/**
 * The merged tree of a chain's layers (full backup first), read from their
 * inode, directory and xattr tables only: a layer over a store is read by
 * range and none of its data is fetched. Whiteouts remove a name, opaque
 * directories and directories replacing non-directories start empty, as
 * overlayfs shows them.
 */
export async function mergedTree(layers: readonly SquashfsImage[], signal?: AbortSignal): Promise<MergedEntry> {
  let root: MergedEntry | undefined;
  for (const image of layers) {
    // The merged directory each of the layer's directories updates, by its name's bytes object (the walk hands a
    // directory's children its names array's elements: a child's names[n - 2] is its parent's name object).
    const parentOf = new Map<Uint8Array | undefined, MergedEntry>();
    const parentKey = (names: readonly Uint8Array[]) => names[names.length - 2];
    for await (const walked of image.walk({ signal })) {
      throwIfAborted(signal);
      const { stat } = walked;
      const xattrs = stat.hasXattrs ? await image.xattrs(walked) : [];
      const entry = (): MergedEntry => ({
        mode: TYPE_BITS[stat.type] | (stat.mode & 0o7777),
        uid: stat.uid, gid: stat.gid, size: stat.type === 'file' ? stat.size : 0, mtime: stat.mtime,
        rdev: stat.rdev, xattrs: canonicalXattrs(xattrs),
      });
      if (walked.names.length === 0) {
        const fresh = entry();
        fresh.children = root?.children ?? new Map(); // the root merges, opaque or not (as the kernel shows it)
        root = fresh;
        parentOf.set(undefined, root);
        continue;
      }
      const parent = parentOf.get(parentKey(walked.names));
      if (!parent?.children) throw new SquashfsError('CORRUPT_IMAGE', `layer entry ${walked.path} has no directory above it in the chain`);
      const name = nameKey(walked.names[walked.names.length - 1]!);
      if (isWhiteout(stat)) {
        parent.children.delete(name);
        continue;
      }
      const fresh = entry();
      if (stat.type === 'symlink') fresh.target = await image.readlink(walked);
      if (stat.type === 'directory') {
        const below = parent.children.get(name);
        fresh.children = below?.children && !isOpaque(xattrs) ? below.children : new Map();
        parentOf.set(walked.names[walked.names.length - 1], fresh);
      }
      parent.children.set(name, fresh);
    }
  }
  if (!root) throw new SquashfsError('CORRUPT_IMAGE', 'a chain with no layers');
  return root;
}

/** What a delta holds, by source path key (see `sourceKey`). */
export interface DeltaPlan {
  /** Every directory the delta holds, with the names it holds in it (sorted). */
  listings: Map<string, Uint8Array[]>;
  /** Names that are whiteouts (their full paths' keys). */
  whiteouts: Set<string>;
  /** Directories that hide what the layers below hold at their path. */
  opaque: Set<string>;
  /** Entries new or changed (a directory counted for its own metadata). */
  changed: number;
  /** Entries deleted (whiteouts). */
  deleted: number;
  /** Bytes of the regular files it holds. */
  bytes: number;
}

/** A path as a map key, equal for equal bytes whether the path is a string or bytes. */
export function sourceKey(path: SourcePath): string {
  return typeof path === 'string' ? `s${path}` : `b${nameKey(path)}`;
}

export interface PlanOptions {
  /**
   * Compare contents too: a file whose metadata match is hashed and
   * compared with the chain's recorded checksum (a file with none counts
   * as changed).
   */
  content?: { sums: Sums; createHash: HashFactory };
  xattrs?: XattrLookup;
  signal?: AbortSignal;
}

/** lstat calls in flight at once while a directory is read: each waits on the file system, not on this thread. */
const LSTATS_AT_ONCE = 16;

/** The stats of paths, in order, several asked for at once. */
async function lstatAll(source: TreeSource, paths: readonly SourcePath[]): Promise<SourceStat[]> {
  const stats: SourceStat[] = new Array(paths.length);
  let next = 0;
  const worker = async () => {
    while (next < paths.length) {
      const i = next++;
      stats[i] = await source.lstat(paths[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(LSTATS_AT_ONCE, paths.length) }, worker));
  return stats;
}

/** One directory of the tree as the planner compares it: its entries, names sorted, the exclude filter applied. */
interface LocalDirectory {
  names: Uint8Array[];
  paths: SourcePath[];
  /** Paths relative to the root, as the exclude filter saw them (with no filter, none). */
  relatives: string[];
  stats: SourceStat[];
}

/** Entries the walk may read ahead of the comparison (their stats held until compared). */
const READ_AHEAD_ENTRIES = 1 << 16;

/**
 * The tree's directories in the order the planner visits them (depth
 * first, names sorted), read ahead of it: started before the chain is
 * fetched, it fills the waits for the chain's round trips, and runs up to
 * `readAhead` entries ahead (default READ_AHEAD_ENTRIES). The exclude
 * filter is applied here, as a full backup's walk applies it.
 */
export class TreeWalk {
  private readonly ready: LocalDirectory[] = [];
  private held = 0;
  private finished = false;
  private failure: { error: unknown } | undefined;
  private stopped = false;
  private wakeReader: (() => void) | undefined;
  private wakeWalker: (() => void) | undefined;

  constructor(
    private readonly source: TreeSource,
    root: SourcePath,
    private readonly exclude: ExcludeFilter | undefined,
    private readonly signal?: AbortSignal,
    private readonly readAhead = READ_AHEAD_ENTRIES,
  ) {
    // Short slices: the chain's requests, signed and sent beside it, wait for each.
    void this.visit(root, '', new EventLoopTurns(1)).then(
      () => (this.finished = true),
      (error: unknown) => (this.failure = { error }),
    ).finally(() => this.wakeReader?.());
  }

  /** The next directory, in walk order. */
  async next(): Promise<LocalDirectory> {
    while (this.ready.length === 0) {
      if (this.failure) throw this.failure.error;
      if (this.finished) throw new Error('TreeWalk: read past the end of the walk');
      await new Promise<void>((resolve) => (this.wakeReader = resolve));
      this.wakeReader = undefined;
    }
    const directory = this.ready.shift()!;
    this.held -= directory.names.length;
    this.wakeWalker?.();
    return directory;
  }

  /** Stops the walk (the planner failed or is not needed). */
  stop(): void {
    this.stopped = true;
    this.wakeWalker?.();
  }

  private async visit(path: SourcePath, relative: string, turns: EventLoopTurns): Promise<void> {
    throwIfAborted(this.signal);
    if (this.stopped) return;
    const names = (await this.source.readdir(path)).sort(compareBytes);
    const paths = names.map((name) => joinPath(path, name));
    const stats = await lstatAll(this.source, paths);
    let directory: LocalDirectory = { names, paths, relatives: [], stats };
    if (this.exclude) {
      directory = { names: [], paths: [], relatives: [], stats: [] };
      for (const [i, name] of names.entries()) {
        const childRelative = relative === '' ? decodeUtf8Lossy(name) : `${relative}/${decodeUtf8Lossy(name)}`;
        if (await this.exclude(childRelative, (stats[i]!.mode & S_IFMT) === S_IFDIR)) continue;
        directory.names.push(name);
        directory.paths.push(paths[i]!);
        directory.relatives.push(childRelative);
        directory.stats.push(stats[i]!);
      }
    }
    this.ready.push(directory);
    this.held += directory.names.length;
    this.wakeReader?.();
    while (this.held > this.readAhead && !this.stopped) {
      await new Promise<void>((resolve) => (this.wakeWalker = resolve));
      this.wakeWalker = undefined;
    }
    await turns.pause();
    for (const [i, stat] of directory.stats.entries()) {
      if ((stat.mode & S_IFMT) === S_IFDIR) await this.visit(directory.paths[i]!, directory.relatives[i] ?? '', turns);
    }
  }
}

/**
 * Compares the tree `walk` reads at `root` with the chain's merged tree and
 * plans the delta: every new or changed entry in full, each directory on
 * the path to a change, a whiteout for each name gone, and opaque
 * directories where a directory replaces a non-directory. The delta's own
 * walk lists only what the plan holds. All names of a hard-linked inode go
 * in together, so the delta links them as the tree does. The caller stops
 * the walk when done.
 */
export async function planDelta(walk: TreeWalk, source: TreeSource, root: string, merged: MergedEntry, options: PlanOptions = {}): Promise<DeltaPlan> {
  const plan: DeltaPlan = { listings: new Map(), whiteouts: new Set(), opaque: new Set(), changed: 0, deleted: 0, bytes: 0 };
  /** Each directory walked: where it is, so a name added late can be made reachable. */
  const above = new Map<string, { parent: SourcePath; name: Uint8Array }>();
  /** Hard-linked inodes: each name's directory and name, and whether any name goes in. */
  const linked = new Map<string, { parents: SourcePath[]; names: Uint8Array[]; changed: boolean }>();

  /**
   * The quick check of one entry; at once (no turn of the event loop) when
   * nothing needs reading: a walk of an unchanged tree makes one per entry.
   */
  const sameEntry = (stat: SourceStat, earlier: MergedEntry, path: SourcePath): boolean | Promise<boolean> => {
    const type = stat.mode & S_IFMT;
    if (stat.mode !== earlier.mode || stat.uid !== earlier.uid || stat.gid !== earlier.gid) return false;
    if (Math.min(Math.max(stat.mtime, 0), 0xffffffff) !== earlier.mtime) return false;
    if (type === S_IFREG && stat.size !== earlier.size) return false;
    if ((type === S_IFBLK || type === S_IFCHR) && (stat.rdevMajor !== earlier.rdev?.major || stat.rdevMinor !== earlier.rdev?.minor)) return false;
    const xattrs = options.xattrs?.(path);
    if (type === S_IFLNK || xattrs instanceof Promise || (type === S_IFREG && options.content)) return sameContent(type, earlier, path, xattrs);
    return canonicalXattrs(xattrs) === earlier.xattrs;
  };
  /** The rest of the check: a symlink's target, xattrs still to come, a file's checksum. */
  const sameContent = async (type: number, earlier: MergedEntry, path: SourcePath, xattrs: ReturnType<XattrLookup> | undefined): Promise<boolean> => {
    if (type === S_IFLNK && !bytesEqual(await source.readlink(path), earlier.target ?? new Uint8Array(0))) return false;
    if (canonicalXattrs(await xattrs) !== earlier.xattrs) return false;
    if (type !== S_IFREG || !options.content) return true;
    const recorded = options.content.sums.get(relativeKey(root, path));
    return recorded !== undefined && recorded === (await hashFile(source, path, options.content.createHash));
  };

  /**
   * Plans a directory: `below` is what the merged tree has at its path when
   * that is a directory too (the delta holds only what differs), undefined
   * for a new one (the delta holds all of it). Returns whether the delta
   * needs anything below it.
   */
  const planDirectory = async (path: SourcePath, below: MergedEntry | undefined): Promise<boolean> => {
    throwIfAborted(options.signal);
    const { names, paths, stats } = await walk.next();
    const held: Uint8Array[] = [];
    const present = new Set<string>();
    for (const [i, name] of names.entries()) {
      const childPath = paths[i]!;
      const stat = stats[i]!;
      const isDirectory = (stat.mode & S_IFMT) === S_IFDIR;
      const key = nameKey(name);
      present.add(key);
      const earlier = below?.children!.get(key);
      const checked = earlier !== undefined && sameEntry(stat, earlier, childPath);
      const same = typeof checked === 'boolean' ? checked : await checked;
      if (!same) plan.changed++;
      let needed = !same;
      if (isDirectory) {
        above.set(sourceKey(childPath), { parent: path, name });
        // A directory over a non-directory hides it; it is held whole, as a new one is.
        if (earlier && !earlier.children) plan.opaque.add(sourceKey(childPath));
        needed = (await planDirectory(childPath, earlier?.children ? earlier : undefined)) || needed;
      } else if (stat.nlink > 1) {
        const inode = `${stat.dev}:${stat.ino}`;
        const names = linked.get(inode) ?? { parents: [], names: [], changed: false };
        names.parents.push(path);
        names.names.push(name);
        names.changed ||= needed;
        linked.set(inode, names);
      }
      if (needed) {
        held.push(name);
        if ((stat.mode & S_IFMT) === S_IFREG) plan.bytes += stat.size;
      }
    }
    for (const key of below?.children!.keys() ?? []) {
      if (present.has(key)) continue;
      const name = keyBytes(key);
      plan.whiteouts.add(sourceKey(joinPath(path, name)));
      plan.deleted++;
      held.push(name);
    }
    plan.listings.set(sourceKey(path), held.sort(compareBytes));
    return held.length > 0;
  };

  if (!(await sameEntry(await source.lstat(root), merged, root))) plan.changed++;
  await planDirectory(root, merged.children ? merged : undefined);

  // A hard-linked inode that goes in goes in under every name it has, with the directories above them.
  for (const { parents, names, changed } of linked.values()) {
    if (!changed) continue;
    parents.forEach((parent, i) => {
      let path = parent;
      let name = names[i]!;
      for (;;) {
        const listing = plan.listings.get(sourceKey(path))!;
        if (listing.some((n) => bytesEqual(n, name))) break;
        listing.push(name);
        listing.sort(compareBytes);
        const up = above.get(sourceKey(path));
        if (!up) break;
        ({ parent: path, name } = up);
      }
    });
  }
  return plan;
}

/** Mode of a whiteout: a character device with no permissions, as overlayfs makes them. */
const WHITEOUT_MODE = S_IFCHR;

/**
 * The source the writer packs for a delta: its directories list only what
 * the plan holds (whiteouts included, as character devices 0:0).
 */
export function deltaSource(source: TreeSource, plan: DeltaPlan): TreeSource {
  return {
    lstat: async (path) => {
      if (!plan.whiteouts.has(sourceKey(path))) return source.lstat(path);
      return { mode: WHITEOUT_MODE, uid: 0, gid: 0, size: 0, mtime: 0, ino: 0, dev: 0, nlink: 1, rdevMajor: 0, rdevMinor: 0 };
    },
    readdir: async (path) => plan.listings.get(sourceKey(path))?.slice() ?? [],
    readlink: (path) => source.readlink(path),
    open: (path) => source.open(path),
  };
}

/** The xattr lookup of a delta: the tree's, none for whiteouts, the opaque marker on opaque directories. */
export function deltaXattrs(
  plan: DeltaPlan,
  lookup: XattrLookup | undefined,
): XattrLookup {
  return async (path) => {
    const key = sourceKey(path);
    if (plan.whiteouts.has(key)) return undefined;
    const own = (await lookup?.(path)) ?? [];
    return plan.opaque.has(key) ? [...own, { name: OPAQUE_XATTR, value: OPAQUE_VALUE }] : own;
  };
}
