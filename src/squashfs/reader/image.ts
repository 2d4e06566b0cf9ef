import { codecById, type Codec, type CodecRegistry } from '../../codecs/codec.js';
import { defaultCodecs } from '../../codecs/index.js';
import { SquashfsError } from '../../errors.js';
import { compareBytes, concatBytes, decodeUtf8Lossy, encodeUtf8 } from '../bytes.js';
import { CompressorId, Flag, METADATA_SIZE, NO_INDEX } from '../constants.js';
import { readListing, type ListingEntry } from '../directory.js';
import { decodeInode } from '../inode/decode.js';
import { decodeDevice, type DirectoryInode, type FileInode, type Inode } from '../inode/inode.js';
import { decodeMetadataHeader, fromReference, type MetadataPosition } from '../metadata.js';
import { decodeSuperblock, SUPERBLOCK_SIZE, type Superblock } from '../superblock.js';
import { decodeCompressorOptions, flagNames } from './info.js';
import { Lru } from './lru.js';
import { MetadataCursor, MetadataReader, type HeldBlocks } from './metadata-reader.js';
import { decodeDataBlock, decodeDataBlockAsync, fragmentTail, layoutOf, MAX_RUN_BYTES, planRuns, storedLength, tailOf, type FileLayout } from './data.js';
import { checkRange } from './source.js';
import type { StoredFileData } from '../../source/source.js';
import type { FragmentEntry } from '../fragment-table.js';
import { FragmentLookup, IdLookup, LookupTable, XattrLookup } from './tables.js';
import type {
  DirEntry, EntryStat, EntryType, FileChunk, ImageInfo, ImagePath, RandomAccessSource, WalkEntry, Xattr,
} from './types.js';

export interface OpenOptions {
  codecs?: CodecRegistry;
  /** Metadata blocks kept decompressed (default 256, 2 MiB). */
  cacheBlocks?: number;
  /** Data and fragment blocks kept decompressed (default 8). */
  cacheDataBlocks?: number;
}

const TYPE_BITS: Record<EntryType, number> = {
  directory: 0o040000,
  file: 0o100000,
  symlink: 0o120000,
  'block-device': 0o060000,
  'char-device': 0o020000,
  fifo: 0o010000,
  socket: 0o140000,
};
const KIND_BY_BASIC_TYPE: EntryType[] = ['directory', 'directory', 'file', 'symlink', 'block-device', 'char-device', 'fifo', 'socket'];
/** Decompressed inode and directory tables a walk keeps at most. */
const PRELOAD_BUDGET = 64 * 1024 * 1024;

/** Splits an image path into raw names. */
export function splitPath(path: ImagePath): Uint8Array[] {
  const bytes = typeof path === 'string' ? encodeUtf8(path) : path;
  const names: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i === bytes.length || bytes[i] === 0x2f) {
      if (i > start) names.push(bytes.subarray(start, i));
      start = i + 1;
    }
  }
  return names;
}

const showPath = (path: ImagePath | WalkEntry) =>
  typeof path === 'string' ? path : path instanceof Uint8Array ? decodeUtf8Lossy(path) : `/${path.path}`;

function concatNames(names: Uint8Array[]): Uint8Array {
  return concatBytes(names.flatMap((name) => [new Uint8Array([0x2f]), name]));
}

/** A file's chunks as a stream of bytes (holes as zeros), read as it is pulled. */
export function chunkStream(chunks: () => AsyncIterable<FileChunk>): ReadableStream<Uint8Array> {
  let iterator: AsyncIterator<FileChunk> | undefined;
  return new ReadableStream<Uint8Array>({
    pull: async (controller) => {
      iterator ??= chunks()[Symbol.asyncIterator]();
      const { done, value } = await iterator.next();
      if (done) controller.close();
      else controller.enqueue(value.bytes ?? new Uint8Array(value.hole));
    },
    cancel: async () => {
      await iterator?.return?.();
    },
  });
}

/** An entry `walk` gave out: it keeps its inode (privately), so reading it needs no lookup. */
class WalkedEntry implements WalkEntry {
  readonly #image: SquashfsImage;
  readonly #inode: Inode;
  #path: string | undefined;

  constructor(readonly names: Uint8Array[], readonly stat: EntryStat, image: SquashfsImage, inode: Inode) {
    this.#image = image;
    this.#inode = inode;
  }

  /** Made when first asked for: an unpack never asks. */
  get path(): string {
    this.#path ??= this.names.map(decodeUtf8Lossy).join('/');
    return this.#path;
  }

  static inodeOf(entry: WalkEntry, image: SquashfsImage): Inode | undefined {
    return entry instanceof WalkedEntry && entry.#image === image ? entry.#inode : undefined;
  }
}

/**
 * A SquashFS 4.0 image read through a random-access source. Lookups read
 * only the metadata blocks on the way (using directory indexes); file reads
 * only the file's own blocks and fragment. Every malformed structure gives
 * a `SquashfsError` (`CORRUPT_IMAGE`, `CODEC_ERROR`), never another error.
 */
export class SquashfsImage {
  private readonly metadata: MetadataReader;
  private readonly inodes = new Lru<number, Inode>(1024);
  private readonly dataBlocks: Lru<number, Promise<Uint8Array>>;
  private readonly ids: IdLookup;
  private readonly fragments: FragmentLookup;
  private xattrTable: Promise<XattrLookup> | undefined;
  private readonly directoryEnd: number;

  private constructor(
    readonly source: RandomAccessSource,
    readonly superblock: Superblock,
    readonly codec: Codec,
    private readonly compressorOptions: Uint8Array | undefined,
    options: OpenOptions,
  ) {
    const sb = superblock;
    this.metadata = new MetadataReader(source, codec, options.cacheBlocks ?? 256);
    this.dataBlocks = new Lru(options.cacheDataBlocks ?? 8);
    this.ids = new IdLookup(new LookupTable(source, this.metadata, 'id', sb.idTableStart, sb.idCount, 4, sb.bytesUsed), sb.idCount);
    this.fragments = new FragmentLookup(
      new LookupTable(source, this.metadata, 'fragment', sb.fragmentTableStart, sb.fragmentEntryCount, 16, sb.bytesUsed),
    );
    // The directory table ends where the next table begins.
    const later = [sb.fragmentTableStart, sb.exportTableStart, sb.idTableStart, sb.xattrIdTableStart, sb.bytesUsed];
    this.directoryEnd = Math.min(...later.filter((x): x is number => x !== undefined && x > sb.directoryTableStart), sb.bytesUsed);
  }

  static async open(source: RandomAccessSource, options: OpenOptions = {}): Promise<SquashfsImage> {
    if (source.size < SUPERBLOCK_SIZE) {
      throw new SquashfsError('CORRUPT_IMAGE', `image of ${source.size} bytes is smaller than a superblock`, { offset: 0 });
    }
    const sb = decodeSuperblock(await source.read(0, SUPERBLOCK_SIZE));
    if (sb.bytesUsed > source.size) {
      throw new SquashfsError('CORRUPT_IMAGE', `superblock says ${sb.bytesUsed} bytes are used, the image has ${source.size}: truncated?`, { offset: 40 });
    }
    const order = [sb.inodeTableStart, sb.directoryTableStart];
    if (!(SUPERBLOCK_SIZE <= sb.inodeTableStart && sb.inodeTableStart < sb.directoryTableStart && sb.directoryTableStart <= sb.bytesUsed) ||
        [sb.idTableStart, sb.fragmentTableStart].some((t) => t > sb.bytesUsed || t < order[1]!)) {
      throw new SquashfsError('CORRUPT_IMAGE', `table positions are out of order (inodes ${sb.inodeTableStart}, directories ${sb.directoryTableStart}, ids ${sb.idTableStart}, fragments ${sb.fragmentTableStart}, used ${sb.bytesUsed})`, { offset: 48 });
    }
    const codec = codecById(options.codecs ?? defaultCodecs(), sb.compressionId);
    let compressorOptions: Uint8Array | undefined;
    if (sb.flags & Flag.COMPRESSOR_OPTIONS) {
      checkRange(SUPERBLOCK_SIZE, 2, sb.inodeTableStart, 'compressor options');
      const h = await source.read(SUPERBLOCK_SIZE, 2);
      const { storedLength, compressed } = decodeMetadataHeader(h[0]! | (h[1]! << 8), SUPERBLOCK_SIZE);
      checkRange(SUPERBLOCK_SIZE + 2, storedLength, sb.inodeTableStart, 'compressor options');
      const stored = await source.read(SUPERBLOCK_SIZE + 2, storedLength);
      compressorOptions = compressed ? codec.decompress(stored, METADATA_SIZE, true) : stored;
    }
    const image = new SquashfsImage(source, sb, codec, compressorOptions, options);
    const root = await image.inodeAt(sb.rootInodeRef);
    if (root.kind !== 'directory') throw new SquashfsError('CORRUPT_IMAGE', `the root inode is a ${root.kind}, not a directory`, { offset: 32 });
    return image;
  }

  async close(): Promise<void> {
    await this.source.close?.();
  }

  info(): ImageInfo {
    const sb = this.superblock;
    const name = Object.entries(CompressorId).find(([, id]) => id === sb.compressionId)?.[0].toLowerCase() ?? `id ${sb.compressionId}`;
    return {
      compression: name === 'gzip' ? 'gzip' : name,
      compressionId: sb.compressionId,
      compressorOptions: this.compressorOptions ? decodeCompressorOptions(sb.compressionId, this.compressorOptions) : undefined,
      blockSize: sb.blockSize,
      bytesUsed: sb.bytesUsed,
      size: this.source.size,
      inodes: sb.inodeCount,
      fragments: sb.fragmentEntryCount,
      ids: sb.idCount,
      modificationTime: sb.modificationTime,
      flags: flagNames(sb.flags),
      exportable: sb.exportTableStart !== undefined,
      version: `${sb.versionMajor}.${sb.versionMinor}`,
    };
  }

  /** The number of distinct xattr sets (reads the xattr table header). */
  async xattrCount(): Promise<number> {
    return (await this.xattrLookup())?.count ?? 0;
  }

  async stat(path: ImagePath | WalkEntry): Promise<EntryStat> {
    const inode = await this.target(path);
    await this.ids.load();
    return this.statOf(inode);
  }

  async readdir(path: ImagePath | WalkEntry): Promise<DirEntry[]> {
    const inode = await this.target(path);
    if (inode.kind !== 'directory') throw this.notA('directory', path);
    return (await this.entriesOf(inode)).map((e) => ({
      name: decodeUtf8Lossy(e.name), nameBytes: e.name, type: KIND_BY_BASIC_TYPE[e.type]!, inode: e.inodeNumber,
    }));
  }

  async readlink(path: ImagePath | WalkEntry): Promise<Uint8Array> {
    const inode = await this.target(path);
    if (inode.kind !== 'symlink') throw this.notA('symlink', path);
    return inode.target;
  }

  async xattrs(path: ImagePath | WalkEntry): Promise<Xattr[]> {
    return this.xattrsOf(await this.target(path));
  }

  async readFile(path: ImagePath | WalkEntry): Promise<Uint8Array> {
    const inode = await this.target(path);
    if (inode.kind !== 'file') throw this.notA('regular file', path);
    const out = new Uint8Array(this.checkedFileSize(inode));
    for await (const chunk of this.chunksOf(inode)) if (chunk.bytes) out.set(chunk.bytes, chunk.offset);
    return out;
  }

  /** A file's contents in order, holes as holes. */
  async *readChunks(path: ImagePath | WalkEntry): AsyncIterable<FileChunk> {
    const inode = await this.target(path);
    if (inode.kind !== 'file') throw this.notA('regular file', path);
    yield* this.chunksOf(inode);
  }

  createReadStream(path: ImagePath | WalkEntry): ReadableStream<Uint8Array> {
    return chunkStream(() => this.readChunks(path));
  }

  /**
   * Every entry, parents before children, children in listing order. A
   * walk reads every inode and listing, so it first loads the inode and
   * directory tables whole (a few large reads rather than many small ones).
   */
  async *walk(options: { signal?: AbortSignal } = {}): AsyncIterable<WalkEntry> {
    await this.preloadMetadata(options.signal);
    const root = await this.inodeAt(this.superblock.rootInodeRef);
    yield new WalkedEntry([], this.statOf(root), this, root);
    const visited = new Set<number>([root.inodeNumber]);
    type Pending = { inode: DirectoryInode; names: Uint8Array[] };
    const stack: Pending[] = [{ inode: root as DirectoryInode, names: [] }];
    while (stack.length > 0) {
      const { inode, names } = stack.pop()!;
      const children: Pending[] = [];
      // The tables are loaded by now (unless larger than the preload budget): decode without waiting where they are.
      for (const entry of this.loadedEntries(inode) ?? (await this.entriesOf(inode))) {
        const child = this.loadedInode(entry.inode) ?? (await this.inodeAtPosition(entry.inode, false));
        this.checkEntry(entry, child);
        const walked = new WalkedEntry([...names, entry.name], this.statOf(child), this, child);
        yield walked;
        if (child.kind === 'directory') {
          if (visited.has(child.inodeNumber)) {
            throw new SquashfsError('CORRUPT_IMAGE', `directory inode ${child.inodeNumber} appears twice (at ${walked.path}): a loop`);
          }
          visited.add(child.inodeNumber);
          children.push({ inode: child, names: walked.names });
        }
      }
      stack.push(...children.reverse());
    }
  }

  /** Loads the inode and directory tables whole (up to 64 MiB decompressed), and the id table. */
  private async preloadMetadata(signal?: AbortSignal): Promise<void> {
    const sb = this.superblock;
    await this.metadata.preload(sb.inodeTableStart, sb.directoryTableStart, PRELOAD_BUDGET, signal);
    await this.metadata.preload(sb.directoryTableStart, this.directoryEnd, PRELOAD_BUDGET, signal);
    await this.ids.load();
  }

  private async target(path: ImagePath | WalkEntry): Promise<Inode> {
    if (typeof path === 'string' || path instanceof Uint8Array) return this.resolve(path);
    return WalkedEntry.inodeOf(path, this) ?? this.resolve(concatNames(path.names));
  }

  /** Reads the inode a path names (without following symlinks). */
  async resolve(path: ImagePath): Promise<Inode> {
    let inode = await this.inodeAt(this.superblock.rootInodeRef);
    for (const name of splitPath(path)) {
      if (inode.kind !== 'directory') throw new SquashfsError('NOT_FOUND', `${showPath(path)}: a component is not a directory`, { path: showPath(path) });
      const entry = await this.lookup(inode, name);
      if (!entry) throw new SquashfsError('NOT_FOUND', `${showPath(path)}: no such file or directory in the image`, { path: showPath(path) });
      const child = await this.inodeAtPosition(entry.inode);
      this.checkEntry(entry, child);
      inode = child;
    }
    return inode;
  }

  private checkEntry(entry: ListingEntry, inode: Inode): void {
    if (KIND_BY_BASIC_TYPE[entry.type] !== inode.kind || entry.inodeNumber !== inode.inodeNumber) {
      throw new SquashfsError('CORRUPT_IMAGE', `entry "${decodeUtf8Lossy(entry.name)}" says ${KIND_BY_BASIC_TYPE[entry.type]} #${entry.inodeNumber}, its inode is ${inode.kind} #${inode.inodeNumber}`);
    }
  }

  /** All entries of a directory, validated: sorted, no duplicates. */
  private async entriesOf(inode: DirectoryInode): Promise<ListingEntry[]> {
    if (!this.checkListingSize(inode)) return [];
    return this.metadata.run(this.decodeEntries(inode));
  }

  /** As `entriesOf`, when every block of the listing is loaded already; else undefined. */
  private loadedEntries(inode: DirectoryInode): ListingEntry[] | undefined {
    if (!this.checkListingSize(inode)) return [];
    return this.metadata.runLoaded(this.decodeEntries(inode));
  }

  private decodeEntries(inode: DirectoryInode): (held: HeldBlocks) => ListingEntry[] {
    const { directoryTableStart } = this.superblock;
    return (held) => {
      const entries: ListingEntry[] = [];
      const cursor = new MetadataCursor(this.metadata, held, directoryTableStart, this.directoryEnd, inode.startBlock, inode.blockOffset);
      readListing(cursor, inode.fileSize - 3, directoryTableStart + inode.startBlock, (e) => {
        const previous = entries[entries.length - 1];
        if (previous && compareBytes(previous.name, e.name) >= 0) {
          throw new SquashfsError('CORRUPT_IMAGE', `directory #${inode.inodeNumber}: "${decodeUtf8Lossy(e.name)}" is out of order or repeated`);
        }
        entries.push(e);
        return true;
      });
      return entries;
    };
  }

  /** False for an empty directory (size 3: its listing has no bytes). */
  private checkListingSize(inode: DirectoryInode): boolean {
    if (inode.fileSize < 3) throw new SquashfsError('CORRUPT_IMAGE', `directory #${inode.inodeNumber} has size ${inode.fileSize}, less than 3`);
    return inode.fileSize > 3;
  }

  private async lookup(inode: DirectoryInode, name: Uint8Array): Promise<ListingEntry | undefined> {
    // Start at the last index entry whose name is not after the one wanted.
    let block = inode.startBlock;
    let offset = inode.blockOffset;
    let skipped = 0;
    for (const entry of inode.index) {
      if (compareBytes(entry.name, name) > 0) break;
      if (entry.index >= inode.fileSize) break;
      block = entry.start;
      offset = (inode.blockOffset + entry.index) % METADATA_SIZE;
      skipped = entry.index;
    }
    const size = inode.fileSize - 3 - skipped;
    if (size <= 0) return undefined;
    const { directoryTableStart } = this.superblock;
    return this.metadata.run((held) => {
      let found: ListingEntry | undefined;
      const cursor = new MetadataCursor(this.metadata, held, directoryTableStart, this.directoryEnd, block, offset);
      readListing(cursor, size, directoryTableStart + block, (e) => {
        const order = compareBytes(e.name, name);
        if (order === 0) found = e;
        return order < 0;
      });
      return found;
    });
  }

  private inodeAt(ref: bigint): Promise<Inode> {
    return this.inodeAtPosition(fromReference(ref));
  }

  /** The inode at a position; `cache` false for a walk, which meets each inode once. */
  private async inodeAtPosition(position: MetadataPosition, cache = true): Promise<Inode> {
    const key = position.block * METADATA_SIZE + position.offset;
    const cached = this.inodes.get(key);
    if (cached) return cached;
    const inode = await this.metadata.run(this.decodeInodeAt(position));
    if (cache) this.inodes.set(key, inode);
    return inode;
  }

  /** The inode at a position when its blocks are loaded already (for a walk: not cached); else undefined. */
  private loadedInode(position: MetadataPosition): Inode | undefined {
    return this.metadata.runLoaded(this.decodeInodeAt(position));
  }

  private decodeInodeAt(position: MetadataPosition): (held: HeldBlocks) => Inode {
    const sb = this.superblock;
    const where = sb.inodeTableStart + position.block;
    return (held) => {
      const cursor = new MetadataCursor(this.metadata, held, sb.inodeTableStart, sb.directoryTableStart, position.block, position.offset);
      return decodeInode(cursor, { blockSize: sb.blockSize, where });
    };
  }

  /** Needs the id table loaded (`ids.load()`). */
  private statOf(inode: Inode): EntryStat {
    const where = this.superblock.inodeTableStart;
    const stat: EntryStat = {
      type: inode.kind,
      mode: TYPE_BITS[inode.kind] | inode.permissions,
      uid: this.ids.get(inode.uidIndex, where),
      gid: this.ids.get(inode.gidIndex, where),
      mtime: inode.mtime,
      size: 0,
      nlink: inode.linkCount,
      inode: inode.inodeNumber,
      hasXattrs: inode.xattrIndex !== NO_INDEX,
    };
    if (inode.kind === 'file') {
      stat.size = inode.fileSize;
      stat.sparse = inode.sparse;
    } else if (inode.kind === 'directory') stat.size = inode.fileSize;
    else if (inode.kind === 'symlink') stat.size = inode.target.length;
    else if (inode.kind === 'block-device' || inode.kind === 'char-device') stat.rdev = decodeDevice(inode.device);
    return stat;
  }

  private xattrLookup(): Promise<XattrLookup | undefined> {
    const start = this.superblock.xattrIdTableStart;
    if (start === undefined) return Promise.resolve(undefined);
    this.xattrTable ??= XattrLookup.open(this.source, this.metadata, start, this.superblock.bytesUsed);
    return this.xattrTable;
  }

  private async xattrsOf(inode: Inode): Promise<Xattr[]> {
    if (inode.xattrIndex === NO_INDEX) return [];
    const table = await this.xattrLookup();
    if (!table) throw new SquashfsError('CORRUPT_IMAGE', `inode #${inode.inodeNumber} has xattrs but the image has no xattr table`);
    return table.get(inode.xattrIndex);
  }

  private checkedFileSize(inode: FileInode): number {
    // A sparse file may exceed the image, but not what one ArrayBuffer holds.
    if (inode.fileSize > 2 ** 32) {
      throw new SquashfsError('TOO_LARGE', `file #${inode.inodeNumber} is ${inode.fileSize} bytes; read it with readChunks`);
    }
    return inode.fileSize;
  }

  /**
   * Where a file's contents lie (its fragment entry read), as plain data:
   * for extractors that read and decode blocks elsewhere, e.g. on other threads.
   */
  async fileLayout(path: ImagePath | WalkEntry): Promise<FileLayout> {
    const inode = await this.target(path);
    if (inode.kind !== 'file') throw this.notA('regular file', path);
    if (inode.fragmentIndex === NO_INDEX) return layoutOf(inode);
    const entry = await this.fragments.get(inode.fragmentIndex);
    return layoutOf(inode, { start: entry.start, word: entry.size });
  }

  /**
   * A file's blocks as stored (for a writer that copies them into another
   * image verbatim), and its tail decompressed. See StoredFileData.
   */
  async storedData(path: ImagePath | WalkEntry): Promise<StoredFileData> {
    const inode = await this.target(path);
    if (inode.kind !== 'file') throw this.notA('regular file', path);
    const { blockSize, bytesUsed, compressionId } = this.superblock;
    const layout = layoutOf(inode);
    const words = inode.blockSizes;
    const starts: number[] = [];
    let position = inode.blocksStart;
    for (const [i, word] of words.entries()) {
      starts.push(position);
      position += storedLength(word, blockSize, `file #${inode.inodeNumber} block ${i}`);
    }
    const read = async (index: number): Promise<Uint8Array> => {
      const stored = storedLength(words[index]!, blockSize, `file #${inode.inodeNumber} block ${index}`);
      checkRange(starts[index]!, stored, bytesUsed, `file #${inode.inodeNumber} block ${index}`);
      return stored === 0 ? new Uint8Array(0) : this.source.read(starts[index]!, stored);
    };
    const tailLength = inode.fileSize % blockSize;
    return {
      compressionId, blockSize, size: inode.fileSize, words, block: read,
      identity: `${inode.blocksStart}:${inode.fileSize}:${inode.fragmentIndex}:${inode.fragmentOffset}`,
      at: { blocksStart: inode.blocksStart, fragmentIndex: inode.fragmentIndex, fragmentOffset: inode.fragmentOffset },
      tail: async () => {
        if (tailLength === 0) return new Uint8Array(0);
        if (inode.fragmentIndex !== NO_INDEX) {
          const tail = fragmentTail(layout, blockSize);
          return tailOf(await this.fragmentBlock(inode.fragmentIndex), inode.fragmentOffset, tail.length, inode.inodeNumber, inode.fragmentIndex);
        }
        const last = words.length - 1;
        if (words[last] === 0) return new Uint8Array(tailLength); // a hole
        return decodeDataBlock(this.codec, await read(last), words[last]!, tailLength, false, starts[last]!);
      },
    };
  }

  /**
   * Where the data and fragment blocks lie: from the end of the superblock
   * and compressor options to the inode table.
   */
  async dataRegion(): Promise<{ offset: number; length: number }> {
    const sb = this.superblock;
    let offset = SUPERBLOCK_SIZE;
    if (sb.flags & Flag.COMPRESSOR_OPTIONS) {
      const h = await this.source.read(SUPERBLOCK_SIZE, 2);
      offset += 2 + decodeMetadataHeader(h[0]! | (h[1]! << 8), SUPERBLOCK_SIZE).storedLength;
    }
    return { offset, length: sb.inodeTableStart - offset };
  }

  /** Every entry of the fragment table, in order. */
  async fragmentEntries(): Promise<FragmentEntry[]> {
    const entries: FragmentEntry[] = [];
    for (let i = 0; i < this.superblock.fragmentEntryCount; i++) entries.push(await this.fragments.get(i));
    return entries;
  }

  /** Reads a file's blocks in runs of adjacent blocks, then its fragment tail. */
  private async *chunksOf(inode: FileInode): AsyncIterable<FileChunk> {
    const { blockSize, bytesUsed } = this.superblock;
    const layout = layoutOf(inode);
    for (const run of planRuns(layout, blockSize, bytesUsed, MAX_RUN_BYTES)) {
      if (run.kind === 'hole') {
        yield { offset: run.offset, hole: run.length };
        continue;
      }
      const bytes = await this.source.read(run.position, run.length);
      // Decode the run's blocks concurrently where the codec can; yield in order.
      // Off-thread only when there is more than one block to overlap: a thread hop costs more than a small inflate.
      let o = 0;
      const decoded = run.blocks.map((block) => {
        const stored = bytes.subarray(o, o + block.stored);
        const where = run.position + o;
        o += block.stored;
        const pending = run.blocks.length > 1
          ? decodeDataBlockAsync(this.codec, stored, block.word, block.expected, false, where)
          : Promise.resolve().then(() => decodeDataBlock(this.codec, stored, block.word, block.expected, false, where));
        pending.catch(() => undefined); // observed below, in order
        return pending;
      });
      for (let k = 0; k < run.blocks.length; k++) yield { offset: run.blocks[k]!.offset, bytes: await decoded[k]! };
    }
    if (inode.fragmentIndex !== NO_INDEX) {
      const tail = fragmentTail(layout, blockSize);
      const block = await this.fragmentBlock(inode.fragmentIndex);
      yield { offset: tail.offset, bytes: tailOf(block, inode.fragmentOffset, tail.length, inode.inodeNumber, inode.fragmentIndex) };
    }
  }

  private fragmentBlock(index: number): Promise<Uint8Array> {
    let pending = this.dataBlocks.get(index);
    if (!pending) {
      pending = (async () => {
        const entry = await this.fragments.get(index);
        const stored = storedLength(entry.size, this.superblock.blockSize, `fragment ${index}`);
        if (entry.size === 0) throw new SquashfsError('CORRUPT_IMAGE', `fragment ${index} has size 0`);
        checkRange(entry.start, stored, this.superblock.bytesUsed, `fragment ${index}`);
        const bytes = await this.source.read(entry.start, stored);
        return decodeDataBlock(this.codec, bytes, entry.size, this.superblock.blockSize, true, entry.start);
      })();
      pending.catch(() => this.dataBlocks.delete(index));
      this.dataBlocks.set(index, pending);
    }
    return pending;
  }

  private notA(what: string, path: ImagePath | WalkEntry): SquashfsError {
    return new SquashfsError('NOT_FOUND', `${showPath(path)} is not a ${what}`, { path: showPath(path) });
  }
}
