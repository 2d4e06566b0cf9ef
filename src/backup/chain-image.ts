import type { StoredFileData } from '../source/source.js';
import { SquashfsError } from '../errors.js';
import { compareBytes, concatBytes, decodeUtf8Lossy } from '../squashfs/bytes.js';
import { chunkStream, splitPath, type SquashfsImage } from '../squashfs/reader/image.js';
import type { DirEntry, EntryStat, FileChunk, ImageInfo, ImagePath, WalkEntry, Xattr } from '../squashfs/reader/types.js';
import { isOpaque, isWhiteout, OVERLAY_XATTR_PREFIX } from './chain.js';

/**
 * What reading a backup needs of its image: a full backup's SquashfsImage
 * and a chain's merged view both offer it, so listing, reading and
 * restoring need not know which they have.
 */
export interface BackupImage {
  stat(path: ImagePath | WalkEntry): Promise<EntryStat>;
  readdir(path: ImagePath | WalkEntry): Promise<DirEntry[]>;
  readlink(path: ImagePath | WalkEntry): Promise<Uint8Array>;
  xattrs(path: ImagePath | WalkEntry): Promise<Xattr[]>;
  readFile(path: ImagePath | WalkEntry): Promise<Uint8Array>;
  readChunks(path: ImagePath | WalkEntry): AsyncIterable<FileChunk>;
  createReadStream(path: ImagePath | WalkEntry): ReadableStream<Uint8Array>;
  walk(options?: { signal?: AbortSignal }): AsyncIterable<WalkEntry>;
  info(): ImageInfo;
  xattrCount(): Promise<number>;
  close(): Promise<void>;
}

/** A chain's info: its top layer's, and how many layers it has. */
export interface ChainInfo extends ImageInfo {
  layers: number;
}

/** One layer's entry at a path of the merged tree. */
interface Part {
  /** Index into the chain's layers (0: the full backup). */
  layer: number;
  /** What to hand that layer's methods: a path, or the entry its walk gave (read without a lookup). */
  at: ImagePath | WalkEntry;
  /** The raw names from the root. */
  names: Uint8Array[];
  /** As the layer has it. */
  stat: EntryStat;
}

const isPath = (path: ImagePath | WalkEntry): path is ImagePath => typeof path === 'string' || path instanceof Uint8Array;

/** As SquashfsImage shows a path in its messages. */
const showPath = (path: ImagePath | WalkEntry) =>
  typeof path === 'string' ? path : path instanceof Uint8Array ? decodeUtf8Lossy(path) : `/${path.path}`;

const joinNames = (names: Uint8Array[]): Uint8Array => concatBytes(names.flatMap((name) => [new Uint8Array([0x2f]), name]));

/** The order walks list directories in: name by name, byte-wise, a parent before its children. */
function compareNames(a: Uint8Array[], aLength: number, b: Uint8Array[], bLength = b.length): number {
  for (let i = 0; i < Math.min(aLength, bLength); i++) {
    const order = compareBytes(a[i]!, b[i]!);
    if (order !== 0) return order;
  }
  return aLength - bLength;
}

/** Entries of several layers' listings of one directory, by name, the upper layer's first. */
function byName<T>(entries: T[], name: (entry: T) => Uint8Array, layer: (entry: T) => number): T[][] {
  entries.sort((a, b) => compareBytes(name(a), name(b)) || layer(b) - layer(a));
  const groups: T[][] = [];
  for (const entry of entries) {
    const group = groups[groups.length - 1];
    if (group && compareBytes(name(group[0]!), name(entry)) === 0) group.push(entry);
    else groups.push([entry]);
  }
  return groups;
}

/** An entry the chain's `walk` gave out: it keeps the layers' entries (privately), so reading it needs no lookup. */
class ChainEntry implements WalkEntry {
  readonly #chain: ChainImage;
  readonly #parts: Part[];
  #path: string | undefined;

  constructor(readonly names: Uint8Array[], readonly stat: EntryStat, chain: ChainImage, parts: Part[]) {
    this.#chain = chain;
    this.#parts = parts;
  }

  get path(): string {
    this.#path ??= this.names.map(decodeUtf8Lossy).join('/');
    return this.#path;
  }

  static partsOf(entry: WalkEntry, chain: ChainImage): Part[] | undefined {
    return entry instanceof ChainEntry && entry.#chain === chain ? entry.#parts : undefined;
  }
}

/**
 * One layer's walk, read a directory's listing at a time. The chain's walk
 * visits directories in the order every layer's walk lists them (depth
 * first, by name), so the listings of directories the merged tree hides
 * come up first, and are passed over.
 */
class LayerWalk {
  readonly #entries: AsyncIterator<WalkEntry>;
  #head: WalkEntry | undefined;
  #done = false;
  /** The entry read last: a walk in another order would lose entries unnoticed. */
  #last: WalkEntry | undefined;

  constructor(entries: AsyncIterable<WalkEntry>) {
    this.#entries = entries[Symbol.asyncIterator]();
  }

  async #peek(): Promise<WalkEntry | undefined> {
    if (!this.#head && !this.#done) {
      const next = await this.#entries.next();
      if (next.done) this.#done = true;
      else this.#head = next.value;
    }
    return this.#head;
  }

  /** The root: a walk's first entry. */
  async root(): Promise<WalkEntry> {
    const root = await this.#peek();
    this.#head = undefined;
    this.#last = root;
    return root!;
  }

  /** The entries of the directory at `names`, in this layer. */
  async listing(names: Uint8Array[]): Promise<WalkEntry[]> {
    const entries: WalkEntry[] = [];
    for (let head = await this.#peek(); head; head = await this.#peek()) {
      const parent = head.names.length - 1;
      if (this.#last && compareNames(head.names, parent, this.#last.names, this.#last.names.length - 1) < 0) {
        throw new SquashfsError('CORRUPT_IMAGE', `a layer's walk lists /${head.path} after /${this.#last.path}: out of order`);
      }
      this.#last = head;
      const order = compareNames(head.names, parent, names);
      if (order > 0) break;
      if (order === 0) entries.push(head);
      this.#head = undefined;
    }
    return entries;
  }

  async close(): Promise<void> {
    await this.#entries.return?.();
  }
}

/**
 * A chain of images read as one: the tree overlayfs shows for
 * `lowerdir=LN:...:L1:BASE`, read from the layers as asked (nothing is
 * loaded on open; a lookup reads each layer's directories on the path, a
 * walk walks every layer once).
 *
 * What it shows of an entry is its topmost layer's, except that:
 * - inode numbers are made distinct across layers (a layer's numbers plus
 *   the inode counts of the layers below), so hard links stay links within
 *   a layer and equal numbers of different layers do not become links;
 * - overlayfs's own xattrs (`trusted.overlay.*`) are left out, of
 *   `xattrs` and of `stat().hasXattrs`;
 * - a directory's nlink is its top layer's, counting that layer's
 *   subdirectories only (the kernel says 1 for a merged directory).
 *
 * Two corners where the kernel is not consistent with itself are made
 * consistent: the root merges with the roots below even when it is
 * opaque (as the kernel does: it never reads the root's marker), and a
 * whiteout is hidden wherever it is, also in a directory only one layer
 * has, which the kernel lists but cannot look up.
 */
export class ChainImage implements BackupImage {
  /** Added to a layer's inode numbers. */
  readonly #inodeBase: number[];
  /** The names of the directories a walk has listed, until asked for (see walkedNames). */
  readonly #listed = new WeakMap<WalkEntry, Uint8Array[]>();

  /** The layers' images, the full backup first. */
  constructor(readonly layers: readonly SquashfsImage[]) {
    if (layers.length === 0) throw new SquashfsError('INVALID_OPTION', 'a chain needs at least one image');
    let base = 0;
    this.#inodeBase = layers.map((layer) => {
      const own = base;
      base += layer.superblock.inodeCount;
      return own;
    });
  }

  /** Closes every layer, even when one fails (the first failure is thrown). */
  async close(): Promise<void> {
    const closed = await Promise.allSettled(this.layers.map((layer) => layer.close()));
    const failed = closed.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed) throw failed.reason;
  }

  info(): ChainInfo {
    return { ...this.layers[this.layers.length - 1]!.info(), layers: this.layers.length };
  }

  /**
   * The distinct xattr sets of all layers together: what the images hold
   * (sets only hidden entries or overlayfs's markers use included), not a
   * count over the merged tree, which would take a walk.
   */
  async xattrCount(): Promise<number> {
    let count = 0;
    for (const layer of this.layers) count += await layer.xattrCount();
    return count;
  }

  async stat(path: ImagePath | WalkEntry): Promise<EntryStat> {
    return this.statOf((await this.find(path, false))[0]!);
  }

  /**
   * The names a walk has found in a directory it gave out, once it has
   * listed it (the walk lists a directory before it gives out the first of
   * its entries), asked for once; else undefined. What `readdir` would
   * answer, without reading every layer's listing again.
   */
  walkedNames(entry: WalkEntry): Uint8Array[] | undefined {
    const names = this.#listed.get(entry);
    this.#listed.delete(entry);
    return names;
  }

  /** The names of every layer's directory that makes this one, less whiteouts and names an upper layer has. */
  async readdir(path: ImagePath | WalkEntry): Promise<DirEntry[]> {
    const parts = await this.find(path, true);
    if (parts[0]!.stat.type !== 'directory') throw new SquashfsError('NOT_FOUND', `${showPath(path)} is not a directory`, { path: showPath(path) });
    const listed: { part: Part; entry: DirEntry }[] = [];
    for (const part of parts) for (const entry of await this.layers[part.layer]!.readdir(part.at)) listed.push({ part, entry });
    const entries: DirEntry[] = [];
    // Each name as its upper layer has it.
    for (const [{ part, entry }] of byName(listed, (e) => e.entry.nameBytes, (e) => e.part.layer)) {
      // A listing tells a device's type, not its numbers.
      if (entry.type === 'char-device' && isWhiteout(await this.layers[part.layer]!.stat(joinNames([...part.names, entry.nameBytes])))) continue;
      entries.push({ ...entry, inode: this.#inodeBase[part.layer]! + entry.inode });
    }
    return entries;
  }

  async readlink(path: ImagePath | WalkEntry): Promise<Uint8Array> {
    const [top] = await this.find(path, false);
    return this.layers[top!.layer]!.readlink(top!.at);
  }

  async xattrs(path: ImagePath | WalkEntry): Promise<Xattr[]> {
    return this.ownXattrs((await this.find(path, false))[0]!);
  }

  async readFile(path: ImagePath | WalkEntry): Promise<Uint8Array> {
    const [top] = await this.find(path, false);
    return this.layers[top!.layer]!.readFile(top!.at);
  }

  /** A file's blocks as the layer holding it stores them (see SquashfsImage.storedData), for copying them verbatim. */
  async storedData(path: ImagePath | WalkEntry): Promise<StoredFileData> {
    const [top] = await this.find(path, false);
    const data = await this.layers[top!.layer]!.storedData(top!.at);
    return { ...data, identity: `${top!.layer}/${data.identity}`, origin: String(top!.layer) };
  }

  async *readChunks(path: ImagePath | WalkEntry): AsyncIterable<FileChunk> {
    const [top] = await this.find(path, false);
    yield* this.layers[top!.layer]!.readChunks(top!.at);
  }

  createReadStream(path: ImagePath | WalkEntry): ReadableStream<Uint8Array> {
    return chunkStream(() => this.readChunks(path));
  }

  /**
   * Every entry of the merged tree, parents before children, children in
   * name order (as SquashfsImage's walk). Walks every layer alongside,
   * hidden subtrees included, holding one directory's listings at a time.
   */
  async *walk(options: { signal?: AbortSignal } = {}): AsyncIterable<WalkEntry> {
    const walks = this.layers.map((layer) => new LayerWalk(layer.walk(options)));
    try {
      const roots: Part[] = [];
      for (let layer = this.layers.length - 1; layer >= 0; layer--) {
        const entry = await walks[layer]!.root();
        roots.push({ layer, at: entry, names: [], stat: entry.stat });
      }
      const root = new ChainEntry([], await this.statOf(roots[0]!), this, roots);
      yield root;
      const stack = [{ entry: root as WalkEntry, names: root.names, parts: roots }];
      while (stack.length > 0) {
        const directory = stack.pop()!;
        const listed: Part[] = [];
        for (const { layer } of directory.parts) {
          for (const entry of await walks[layer]!.listing(directory.names)) listed.push({ layer, at: entry, names: entry.names, stat: entry.stat });
        }
        // The directory's merged entries first, so its names are known before its first entry goes out (see walkedNames).
        const entries: ChainEntry[] = [];
        for (const group of byName(listed, (part) => part.names[part.names.length - 1]!, (part) => part.layer)) {
          const parts = await this.merge(group.map((part) => part.layer), (layer) => group.find((part) => part.layer === layer), true);
          if (parts) entries.push(new ChainEntry(parts[0]!.names, await this.statOf(parts[0]!), this, parts));
        }
        this.#listed.set(directory.entry, entries.map((entry) => entry.names[entry.names.length - 1]!));
        const children: typeof stack = [];
        for (const entry of entries) {
          yield entry;
          if (entry.stat.type === 'directory') children.push({ entry, names: entry.names, parts: ChainEntry.partsOf(entry, this)! });
        }
        stack.push(...children.reverse());
      }
    } finally {
      await Promise.all(walks.map((walk) => walk.close()));
    }
  }

  /**
   * The layers' entries that make the entry at a path, top first: more
   * than one only for a directory that merges (and only when `mergeLast`
   * asks for the last name's). Looked up name by name, as overlayfs does;
   * a missing or hidden path fails as SquashfsImage's `resolve` does.
   */
  private async find(path: ImagePath | WalkEntry, mergeLast: boolean): Promise<Part[]> {
    if (!isPath(path)) {
      const walked = ChainEntry.partsOf(path, this);
      if (walked) return walked;
    }
    const names = isPath(path) ? splitPath(path) : path.names;
    const root = new Uint8Array(0);
    let parts: Part[] = [];
    for (let layer = this.layers.length - 1; layer >= 0; layer--) {
      parts.push({ layer, at: names.length === 0 ? path : root, names: [], stat: await this.layers[layer]!.stat(root) });
    }
    for (let i = 0; i < names.length; i++) {
      if (parts[0]!.stat.type !== 'directory') throw new SquashfsError('NOT_FOUND', `${showPath(path)}: a component is not a directory`, { path: showPath(path) });
      const last = i === names.length - 1;
      const prefix = names.slice(0, i + 1);
      // The caller's path for the entry itself, so a layer's errors name it as the caller did.
      const at = last ? path : joinNames(prefix);
      const found = await this.merge(parts.map((part) => part.layer), async (layer) => {
        const stat = await this.layers[layer]!.stat(at).catch((error: unknown) => {
          if (error instanceof SquashfsError && error.code === 'NOT_FOUND') return undefined;
          throw error;
        });
        return stat && { layer, at, names: prefix, stat };
      }, !last || mergeLast);
      if (!found) throw new SquashfsError('NOT_FOUND', `${showPath(path)}: no such file or directory in the image`, { path: showPath(path) });
      parts = found;
    }
    return parts;
  }

  /**
   * overlayfs's rule for a name in a merged directory, given the layers of
   * that directory (top first) and each one's entry of the name: the top
   * entry decides (a whiteout: there is none); a directory merges with the
   * directories below it, down to an opaque one and not past a whiteout or
   * a non-directory. Without `whole`, only the top entry.
   */
  private async merge(layers: number[], entryIn: (layer: number) => Part | undefined | Promise<Part | undefined>, whole: boolean): Promise<Part[] | undefined> {
    const parts: Part[] = [];
    for (const layer of layers) {
      const part = await entryIn(layer);
      if (!part) continue;
      if (isWhiteout(part.stat) || (parts.length > 0 && part.stat.type !== 'directory')) break;
      parts.push(part);
      if (part.stat.type !== 'directory' || !whole || (part.stat.hasXattrs && isOpaque(await this.layers[layer]!.xattrs(part.at)))) break;
    }
    return parts.length > 0 ? parts : undefined;
  }

  /** A layer's stat as the merged tree shows it (see the class). */
  private async statOf(part: Part): Promise<EntryStat> {
    const stat = { ...part.stat, inode: this.#inodeBase[part.layer]! + part.stat.inode };
    if (stat.hasXattrs) stat.hasXattrs = (await this.ownXattrs(part)).length > 0;
    return stat;
  }

  private async ownXattrs(part: Part): Promise<Xattr[]> {
    return (await this.layers[part.layer]!.xattrs(part.at)).filter((x) => !x.name.startsWith(OVERLAY_XATTR_PREFIX));
  }
}
