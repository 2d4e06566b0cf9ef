import { codecById, type Codec, type CodecRegistry } from '../../codecs/codec.js';
import { defaultCodecs } from '../../codecs/index.js';
import { SquashfsError } from '../../errors.js';
import { compareBytes, concatBytes, decodeUtf8Lossy, encodeUtf8 } from '../bytes.js';
import { CompressorId, DATA_SIZE_MASK, DATA_UNCOMPRESSED, Flag, METADATA_SIZE, NO_INDEX } from '../constants.js';
import { readListing, type ListingEntry } from '../directory.js';
import { decodeInode } from '../inode/decode.js';
import { decodeDevice, type DirectoryInode, type FileInode, type Inode } from '../inode/inode.js';
import { decodeMetadataHeader, fromReference } from '../metadata.js';
import { decodeSuperblock, SUPERBLOCK_SIZE, type Superblock } from '../superblock.js';
import { decodeCompressorOptions, flagNames } from './info.js';
import { Lru } from './lru.js';
import { MetadataCursor, MetadataReader } from './metadata-reader.js';
import { checkRange } from './source.js';
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
/** Bytes read at once when a file's blocks follow each other. */
const MAX_RUN = 2 * 1024 * 1024;

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

/**
 * A SquashFS 4.0 image read through a random-access source. Lookups read
 * only the metadata blocks on the way (using directory indexes); file reads
 * only the file's own blocks and fragment. Every malformed structure gives
 * a `SquashfsError` (`CORRUPT_IMAGE`, `CODEC_ERROR`), never another error.
 */
export class SquashfsImage {
  private readonly metadata: MetadataReader;
  private readonly inodes = new Lru<string, Promise<Inode>>(1024);
  private readonly dataBlocks: Lru<number, Promise<Uint8Array>>;
  private readonly ids: IdLookup;
  private readonly fragments: FragmentLookup;
  private xattrTable: Promise<XattrLookup> | undefined;
  /** The inodes behind entries `walk` gave out, so reading them needs no lookup. */
  private readonly walked = new WeakMap<WalkEntry, Inode>();
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
    return this.statOf(await this.target(path));
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
    let iterator: AsyncIterator<FileChunk> | undefined;
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        iterator ??= this.readChunks(path)[Symbol.asyncIterator]();
        const { done, value } = await iterator.next();
        if (done) controller.close();
        else controller.enqueue(value.bytes ?? new Uint8Array(value.hole));
      },
      cancel: async () => {
        await iterator?.return?.();
      },
    });
  }

  /** Every entry, parents before children, children in listing order. */
  async *walk(): AsyncIterable<WalkEntry> {
    const root = await this.inodeAt(this.superblock.rootInodeRef);
    const rootEntry: WalkEntry = { path: '', names: [], stat: await this.statOf(root) };
    this.walked.set(rootEntry, root);
    yield rootEntry;
    const visited = new Set<number>([root.inodeNumber]);
    const stack: { inode: DirectoryInode; names: Uint8Array[] }[] = [{ inode: root as DirectoryInode, names: [] }];
    while (stack.length > 0) {
      const { inode, names } = stack.pop()!;
      const children: { inode: DirectoryInode; names: Uint8Array[] }[] = [];
      for (const entry of await this.entriesOf(inode)) {
        const child = await this.inodeAtPosition(entry.inode);
        this.checkEntry(entry, child);
        const childNames = [...names, entry.name];
        const walkEntry: WalkEntry = { path: childNames.map(decodeUtf8Lossy).join('/'), names: childNames, stat: await this.statOf(child) };
        this.walked.set(walkEntry, child);
        yield walkEntry;
        if (child.kind === 'directory') {
          if (visited.has(child.inodeNumber)) {
            throw new SquashfsError('CORRUPT_IMAGE', `directory inode ${child.inodeNumber} appears twice (at ${childNames.map(decodeUtf8Lossy).join('/')}): a loop`);
          }
          visited.add(child.inodeNumber);
          children.push({ inode: child, names: childNames });
        }
      }
      stack.push(...children.reverse());
    }
  }

  private async target(path: ImagePath | WalkEntry): Promise<Inode> {
    if (typeof path === 'string' || path instanceof Uint8Array) return this.resolve(path);
    return this.walked.get(path) ?? this.resolve(concatNames(path.names));
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
    const entries: ListingEntry[] = [];
    await this.listing(inode, (e) => {
      const previous = entries[entries.length - 1];
      if (previous && compareBytes(previous.name, e.name) >= 0) {
        throw new SquashfsError('CORRUPT_IMAGE', `directory #${inode.inodeNumber}: "${decodeUtf8Lossy(e.name)}" is out of order or repeated`);
      }
      entries.push(e);
      return true;
    });
    return entries;
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
    let found: ListingEntry | undefined;
    const size = inode.fileSize - 3 - skipped;
    if (size <= 0) return undefined;
    const cursor = new MetadataCursor(this.metadata, this.superblock.directoryTableStart, this.directoryEnd, block, offset);
    await readListing(cursor, size, this.superblock.directoryTableStart + block, (e) => {
      const order = compareBytes(e.name, name);
      if (order === 0) found = e;
      return order < 0;
    });
    return found;
  }

  private async listing(inode: DirectoryInode, visit: (e: ListingEntry) => boolean): Promise<void> {
    if (inode.fileSize < 3) throw new SquashfsError('CORRUPT_IMAGE', `directory #${inode.inodeNumber} has size ${inode.fileSize}, less than 3`);
    if (inode.fileSize === 3) return;
    const cursor = new MetadataCursor(this.metadata, this.superblock.directoryTableStart, this.directoryEnd, inode.startBlock, inode.blockOffset);
    await readListing(cursor, inode.fileSize - 3, this.superblock.directoryTableStart + inode.startBlock, visit);
  }

  private inodeAt(ref: bigint): Promise<Inode> {
    return this.inodeAtPosition(fromReference(ref));
  }

  private inodeAtPosition(position: { block: number; offset: number }): Promise<Inode> {
    const key = `${position.block}:${position.offset}`;
    let pending = this.inodes.get(key);
    if (!pending) {
      const sb = this.superblock;
      const where = sb.inodeTableStart + position.block;
      pending = (async () => {
        const cursor = new MetadataCursor(this.metadata, sb.inodeTableStart, sb.directoryTableStart, position.block, position.offset);
        return decodeInode(cursor, { blockSize: sb.blockSize, where });
      })();
      pending.catch(() => this.inodes.delete(key));
      this.inodes.set(key, pending);
    }
    return pending;
  }

  private async statOf(inode: Inode): Promise<EntryStat> {
    const where = this.superblock.inodeTableStart;
    const stat: EntryStat = {
      type: inode.kind,
      mode: TYPE_BITS[inode.kind] | inode.permissions,
      uid: await this.ids.get(inode.uidIndex, where),
      gid: await this.ids.get(inode.gidIndex, where),
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

  /** Reads a file's blocks in runs of adjacent blocks, then its fragment tail. */
  private async *chunksOf(inode: FileInode): AsyncIterable<FileChunk> {
    const { blockSize, bytesUsed } = this.superblock;
    const size = inode.fileSize;
    const sizes = inode.blockSizes;
    let position = inode.blocksStart;
    let i = 0;
    while (i < sizes.length) {
      const word = sizes[i]!;
      const length = Math.min(blockSize, size - i * blockSize);
      if (word === 0) {
        yield { offset: i * blockSize, hole: length };
        i++;
        continue;
      }
      // Gather the run of stored blocks that follow this one.
      let end = i;
      let runBytes = 0;
      while (end < sizes.length && sizes[end] !== 0) {
        const stored = this.storedSize(sizes[end]!, inode, end);
        if (end > i && runBytes + stored > MAX_RUN) break;
        runBytes += stored;
        end++;
      }
      checkRange(position, runBytes, bytesUsed, `file #${inode.inodeNumber} blocks ${i}..${end - 1}`);
      const run = await this.source.read(position, runBytes);
      // Decode the run's blocks concurrently where the codec can; yield in order.
      const decoded: Promise<Uint8Array>[] = [];
      let o = 0;
      for (let k = i; k < end; k++) {
        const w = sizes[k]!;
        const stored = w & DATA_SIZE_MASK;
        const expected = Math.min(blockSize, size - k * blockSize);
        // Off-thread only when there is more than one block to overlap: a thread hop costs more than a small inflate.
        const bytes = run.subarray(o, o + stored);
        const where = position + o;
        const block = end - i > 1
          ? this.decodeBlockAsync(bytes, w, expected, false, where)
          : Promise.resolve().then(() => this.decodeBlock(bytes, w, expected, false, where));
        block.catch(() => undefined); // observed below, in order
        decoded.push(block);
        o += stored;
      }
      for (let k = i; k < end; k++) yield { offset: k * blockSize, bytes: await decoded[k - i]! };
      position += runBytes;
      i = end;
    }
    if (inode.fragmentIndex !== NO_INDEX) {
      const tail = size - sizes.length * blockSize;
      if (tail <= 0 || tail >= blockSize) {
        throw new SquashfsError('CORRUPT_IMAGE', `file #${inode.inodeNumber} has a fragment but a tail of ${tail} bytes`);
      }
      const block = await this.fragmentBlock(inode.fragmentIndex);
      const start = inode.fragmentOffset;
      if (start + tail > block.length) {
        throw new SquashfsError('CORRUPT_IMAGE', `file #${inode.inodeNumber}: fragment ${inode.fragmentIndex} holds ${block.length} bytes, the tail wants ${start}..${start + tail}`);
      }
      yield { offset: sizes.length * blockSize, bytes: block.subarray(start, start + tail) };
    }
  }

  private storedSize(word: number, inode: FileInode, block: number): number {
    const stored = word & DATA_SIZE_MASK;
    if ((word & ~(DATA_SIZE_MASK | DATA_UNCOMPRESSED)) !== 0 || stored > this.superblock.blockSize) {
      throw new SquashfsError('CORRUPT_IMAGE', `file #${inode.inodeNumber} block ${block} has size word 0x${word.toString(16)}`);
    }
    return stored;
  }

  private decodeBlock(stored: Uint8Array, word: number, expected: number, atMost: boolean, where: number): Uint8Array {
    if (word & DATA_UNCOMPRESSED) {
      if (atMost ? stored.length > expected : stored.length !== expected) {
        throw new SquashfsError('CORRUPT_IMAGE', `uncompressed block at ${where} holds ${stored.length} bytes, expected ${expected}`, { offset: where });
      }
      return stored;
    }
    try {
      return this.codec.decompress(stored, expected, atMost);
    } catch (cause) {
      if (cause instanceof SquashfsError) throw new SquashfsError(cause.code, `block at ${where}: ${cause.message}`, { offset: where, cause });
      throw cause;
    }
  }

  private async decodeBlockAsync(stored: Uint8Array, word: number, expected: number, atMost: boolean, where: number): Promise<Uint8Array> {
    if (word & DATA_UNCOMPRESSED || !this.codec.decompressAsync) return this.decodeBlock(stored, word, expected, atMost, where);
    try {
      return await this.codec.decompressAsync(stored, expected, atMost);
    } catch (cause) {
      if (cause instanceof SquashfsError) throw new SquashfsError(cause.code, `block at ${where}: ${cause.message}`, { offset: where, cause });
      throw cause;
    }
  }

  private fragmentBlock(index: number): Promise<Uint8Array> {
    let pending = this.dataBlocks.get(index);
    if (!pending) {
      pending = (async () => {
        const entry = await this.fragments.get(index);
        const stored = this.storedSize(entry.size, { inodeNumber: 0 } as FileInode, index);
        if (entry.size === 0) throw new SquashfsError('CORRUPT_IMAGE', `fragment ${index} has size 0`);
        checkRange(entry.start, stored, this.superblock.bytesUsed, `fragment ${index}`);
        const bytes = await this.source.read(entry.start, stored);
        return this.decodeBlock(bytes, entry.size, this.superblock.blockSize, true, entry.start);
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
