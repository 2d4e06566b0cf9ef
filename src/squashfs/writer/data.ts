import { SquashfsError, throwIfAborted } from '../../errors.js';
import { toHex, type HashFactory, type Hasher } from '../../hash.js';
import { sourceError } from '../../source/fs-source.js';
import { displayPath } from '../../source/paths.js';
import { syncOf, type SourceFile, type SourcePath, type StoredFileData, type SyncTreeSource, type TreeSource } from '../../source/source.js';
import { EventLoopTurns } from '../../source/turns.js';
import { bytesEqual, isAllZero } from '../bytes.js';
import { DATA_SIZE_MASK, NO_INDEX } from '../constants.js';
import type { FragmentEntry } from '../fragment-table.js';
import { DigestIndex } from './digest-index.js';
import type { EntryTable } from './entries.js';
import type { OrderedOutput, StoredBlock } from './output.js';

/** How file tails are packed: mksquashfs's default, `-no-fragments`, `-always-use-fragments`. */
export type FragmentMode = 'default' | 'never' | 'always';

export interface DataWriterOptions {
  /** A file's path in the source (entries keep no path of their own). */
  pathOf: (entry: number) => SourcePath;
  blockSize: number;
  fragments: FragmentMode;
  /** Store identical files once (default true). */
  dedupe: boolean;
  /** How many files share each size: only those are hashed for duplicates. */
  sizeCounts: ReadonlyMap<number, number>;
  store: (data: Uint8Array) => Promise<StoredBlock>;
  createHash: HashFactory;
  /** Reads and stores a block from a file descriptor elsewhere (see WriterOptions.storeFileBlock). */
  storeFileBlock?: (fd: number, position: number, length: number, digest?: boolean) => Promise<StoredBlock>;
  /** Reads and hashes a block from a file descriptor elsewhere (see WriterOptions.hashFileBlock). */
  hashFileBlock?: (fd: number, position: number, length: number) => Promise<Uint8Array>;
  /** Where read buffers come from (default: new ones). */
  blockBuffer?: (length: number) => Uint8Array;
  /**
   * The compressor id of the image being written: a file whose source
   * offers its stored blocks (TreeSource.storedData) in an image with this
   * compressor and block size has them copied verbatim.
   */
  compressionId?: number;
  /**
   * A region of another image taken in whole (WriterOptions.reuse): files
   * whose data lies there point into it, and its fragment entries come
   * first in this image's fragment table. Where it lands is known only
   * once the other files are written (see shiftReused).
   */
  reuse?: { origin: string; fragments: readonly FragmentEntry[] };
  /** Small files read ahead of the one being written (default 32). */
  readAhead?: number;
  signal?: AbortSignal;
  onRead?: (bytes: number) => void;
}

/** Reads a file's bytes at given positions, from the source or from memory. */
type ReadAt = (position: number, length: number) => Promise<Uint8Array>;

/** Reads and stores a file's block at a position without it passing through here. */
type StoreAt = (position: number, length: number) => Promise<StoredBlock>;

/**
 * Where each regular file's data ended up, as columns by entry (see
 * EntryTable). Duplicates name the file whose data they share.
 */
export class FileLayouts {
  /** The file whose stored data this file's inode names: itself, or an earlier file with the same contents. */
  readonly dataOf: Uint32Array;
  readonly blocksStart: Float64Array;
  /** Where the file's block size words begin in `words`. */
  readonly firstWord: Uint32Array;
  readonly fragment: Uint32Array;
  readonly fragmentOffset: Uint32Array;
  /** Bytes stored as holes, for the files that have any. */
  readonly sparse = new Map<number, number>();
  /** Every file's block size words, one after another (room for every block of every file). */
  readonly words: Uint32Array;

  constructor(private readonly entries: EntryTable, files: Uint32Array, private readonly blockSize: number) {
    const count = entries.count;
    this.dataOf = new Uint32Array(count);
    this.blocksStart = new Float64Array(count);
    this.firstWord = new Uint32Array(count);
    this.fragment = new Uint32Array(count).fill(NO_INDEX);
    this.fragmentOffset = new Uint32Array(count);
    let blocks = 0;
    for (const file of files) {
      this.dataOf[file] = file;
      blocks += Math.ceil(entries.size[file]! / blockSize);
    }
    this.words = new Uint32Array(blocks);
  }

  /** A file's block size words (0 for a hole). */
  blockSizes(file: number): Uint32Array {
    const data = this.dataOf[file]!;
    const size = this.entries.size[data]!;
    const count = this.fragment[data] === NO_INDEX ? Math.ceil(size / this.blockSize) : Math.floor(size / this.blockSize);
    if (count === 0) return NO_BLOCKS;
    return this.words.subarray(this.firstWord[data], this.firstWord[data]! + count);
  }
}

/**
 * The data phase: writes each regular file's blocks (holes for all-zero
 * blocks) and packs tails into fragment blocks, recording every layout.
 */
export class DataWriter {
  readonly fragments: FragmentEntry[] = [];
  readonly layouts: FileLayouts;
  private fragment: Uint8Array;
  private fragmentFill = 0;
  private wordsUsed = 0;
  /** Files whose first block will land wherever the next thing queued does (see `queueStarts`). */
  private startsWaiting: number[] = [];
  private readonly seen = new DigestIndex();
  /** Files copied from another image, by what that image stores once (see StoredFileData.identity). */
  private readonly copied = new Map<string, number>();
  /** Files closed once the blocks read from their descriptors elsewhere are done. */
  private readonly closing: Promise<void>[] = [];
  private readonly turns = new EventLoopTurns();
  /** Files placeReused pointed into the reused region. */
  private placed: number[] = [];
  private slab = new Uint8Array(0);
  private slabUsed = 0;

  constructor(
    private readonly source: TreeSource,
    private readonly entries: EntryTable,
    files: Uint32Array,
    private readonly out: OrderedOutput,
    private readonly options: DataWriterOptions,
  ) {
    this.layouts = new FileLayouts(entries, files, options.blockSize);
    this.fragment = this.newFragment();
    for (const entry of options.reuse?.fragments ?? []) this.fragments.push({ start: entry.start, size: entry.size });
  }

  /**
   * Points every file whose data lies in the reused region there (nothing
   * is written for them). Returns the files left to write, how many bytes
   * of the region the placed files use (each stored run and fragment block
   * once), and the placed files' own bytes.
   */
  async placeReused(files: Uint32Array): Promise<{ rest: Uint32Array; used: number; bytes: number }> {
    const { reuse } = this.options;
    if (!reuse || !this.source.storedData) return { rest: files, used: 0, bytes: 0 };
    const rest: number[] = [];
    const fragmentsUsed = new Set<number>();
    let used = 0;
    let bytes = 0;
    for (const file of files) {
      await this.turns.pause();
      throwIfAborted(this.options.signal);
      const data = this.entries.size[file] === 0 ? undefined : await this.storedData(file);
      if (!data?.at || data.origin !== reuse.origin) {
        rest.push(file);
        continue;
      }
      if (this.place(file, data, data.at)) for (const word of data.words) used += word & DATA_SIZE_MASK;
      bytes += data.size;
      const index = data.at.fragmentIndex;
      if (index !== NO_INDEX && !fragmentsUsed.has(index) && index < reuse.fragments.length) {
        fragmentsUsed.add(index);
        used += reuse.fragments[index]!.size & DATA_SIZE_MASK;
      }
      this.placed.push(file);
    }
    return { rest: Uint32Array.from(rest), used, bytes };
  }

  /**
   * The reused region lands `shift` bytes from where its image has it: the
   * placed files' starts and the region's fragment entries move with it.
   */
  shiftReused(shift: number): void {
    for (const file of this.placed) this.layouts.blocksStart[file] += shift;
    const count = this.options.reuse?.fragments.length ?? 0;
    for (let i = 0; i < count; i++) this.fragments[i]!.start += shift;
  }

  /** Takes back what placeReused did: every file is written anew, and the region's fragment entries go. */
  unplace(): void {
    const { layouts } = this;
    for (const file of this.placed) {
      layouts.dataOf[file] = file;
      layouts.fragment[file] = NO_INDEX;
      layouts.fragmentOffset[file] = 0;
      layouts.sparse.delete(file);
    }
    this.placed = [];
    this.copied.clear();
    this.wordsUsed = 0;
    this.fragments.length = 0;
  }

  /**
   * A file's layout as its image has it (duplicates share it, as there).
   * Returns false for a duplicate of a file placed before.
   */
  private place(entry: number, data: StoredFileData, at: NonNullable<StoredFileData['at']>): boolean {
    const { layouts } = this;
    const { blockSize } = this.options;
    const earlier = this.options.dedupe ? this.copied.get(data.identity) : undefined;
    if (earlier !== undefined) {
      layouts.dataOf[entry] = earlier;
      return false;
    }
    this.copied.set(data.identity, entry);
    const firstWord = this.wordsUsed;
    this.wordsUsed += Math.ceil(data.size / blockSize);
    layouts.firstWord[entry] = firstWord;
    layouts.words.set(data.words, firstWord);
    layouts.blocksStart[entry] = at.blocksStart; // where its image has it, until shiftReused
    if (at.fragmentIndex !== NO_INDEX) {
      layouts.fragment[entry] = at.fragmentIndex;
      layouts.fragmentOffset[entry] = at.fragmentOffset;
    }
    let sparse = 0;
    data.words.forEach((word, i) => {
      if (word === 0) sparse += Math.min(blockSize, data.size - i * blockSize);
    });
    if (sparse > 0) layouts.sparse.set(entry, sparse);
    return true;
  }

  private newFragment(): Uint8Array {
    return this.options.blockBuffer?.(this.options.blockSize) ?? new Uint8Array(this.options.blockSize);
  }

  /**
   * Writes every file's data in order. Files of at most one block are read
   * whole: at once where the source answers at once (TreeSource.sync), else
   * several ahead of the one being written (bounded by `readAhead` files
   * and bytes), so small files do not wait on each other's I/O. The loop
   * lets the event loop in every few milliseconds: an upload of what it
   * wrote, or the replies of the compression workers, must not wait for the
   * whole tree.
   */
  async writeFiles(files: Uint32Array, onFile?: () => void): Promise<void> {
    const { blockSize, readAhead = 32 } = this.options;
    const sync = syncOf(this.source);
    const sizes = this.entries.size;
    const maxAheadBytes = Math.max(readAhead * blockSize / 4, 4 * blockSize);
    const ahead = new Map<number, Promise<Uint8Array>>();
    let aheadBytes = 0;
    let next = 0;
    for (let i = 0; i < files.length; i++) {
      if (this.turns.due()) await this.turns.take();
      const file = files[i]!;
      const size = sizes[file]!;
      if (sync && size > 0 && size <= blockSize) {
        const written = this.writeSmall(file, this.readWholeNow(sync, file));
        if (written) await written;
        onFile?.();
        continue;
      }
      while (!sync && next < files.length && ahead.size < readAhead && aheadBytes < maxAheadBytes) {
        const size = sizes[files[next]!]!;
        if (size > 0 && size <= blockSize) {
          const read = this.readWhole(files[next]!);
          read.catch(() => undefined); // rethrown in order, when its turn comes
          ahead.set(next, read);
          aheadBytes += size;
        }
        next++;
      }
      const read = ahead.get(i);
      if (read) {
        ahead.delete(i);
        aheadBytes -= size;
        await this.writeSmall(file, await read);
      } else {
        await this.writeFile(file);
      }
      onFile?.();
    }
  }

  /** Writes one file's data, reading it now. */
  async writeFile(file: number): Promise<void> {
    throwIfAborted(this.options.signal);
    const size = this.entries.size[file]!;
    if (size === 0) return; // no blocks, no fragment: the layout's defaults
    if (size <= this.options.blockSize) await this.writeSmall(file, await this.readWhole(file));
    else await this.writeLarge(file);
  }

  /**
   * A file of at most one block, already in memory. A promise only when
   * there is something to wait for: a block to queue (a whole block, or a
   * full fragment block first).
   */
  private writeSmall(file: number, bytes: Uint8Array): Promise<void> | undefined {
    throwIfAborted(this.options.signal);
    if (this.isCandidate(file)) {
      const hasher = this.options.createHash();
      hasher.update(bytes);
      const digest = hasher.digest();
      const earlier = this.seen.get(bytes.length, digest);
      if (earlier !== undefined) {
        this.layouts.dataOf[file] = earlier;
        return undefined;
      }
      this.seen.set(bytes.length, digest, file);
    }
    if (bytes.length < this.options.blockSize && this.options.fragments !== 'never') {
      // All of it is a tail: no block, only the fragment block (the many small files of a tree).
      this.layouts.firstWord[file] = this.wordsUsed++;
      this.startsWaiting.push(file);
      return this.addTail(file, bytes);
    }
    return this.writeData(file, async (p, n) => bytes.subarray(p, p + n));
  }

  /** A file of more than one block, streamed; hashed first when another file has its size. */
  private async writeLarge(entry: number): Promise<void> {
    const stored = await this.storedData(entry);
    if (stored) {
      await this.writeStored(entry, stored);
      return;
    }
    const size = this.entries.size[entry]!;
    const file = await this.source.open(this.options.pathOf(entry));
    const elsewhere: Promise<unknown>[] = [];
    try {
      const readAt: ReadAt = (position, length) => this.readExactly(file, entry, position, length);
      if (!this.isCandidate(entry)) {
        await this.writeData(entry, readAt, undefined, this.storeAt(file, entry, elsewhere));
        await this.expectEnd(file, entry);
        return;
      }
      const { fragments, blockSize } = this.options;
      const tailInFragment = fragments === 'always' && size % blockSize !== 0;
      if (this.options.hashFileBlock && this.options.storeFileBlock && file.fd !== undefined && !tailInFragment) {
        await this.writeCandidateElsewhere(entry, file, file.fd, elsewhere);
        return;
      }
      const hasher = this.options.createHash();
      for (let p = 0; p < size; p += this.options.blockSize) {
        await this.turns.pause();
        hasher.update(await readAt(p, Math.min(this.options.blockSize, size - p)));
      }
      await this.expectEnd(file, entry);
      const digest = hasher.digest();
      const earlier = this.seen.get(size, digest);
      if (earlier !== undefined) {
        this.layouts.dataOf[entry] = earlier;
        return;
      }
      const check = this.options.createHash();
      // The same bytes again: read once as far as progress goes.
      const reread: ReadAt = (position, length) => this.readExactly(file, entry, position, length, false);
      await this.writeData(entry, reread, check);
      if (toHex(check.digest()) !== toHex(digest)) throw this.changed(entry, 'its contents changed between two reads');
      this.seen.set(size, digest, entry);
    } finally {
      if (elsewhere.length === 0) {
        await file.close();
      } else {
        // Other threads still read through the descriptor: close it when they are done, never before (its number could be reused).
        const closed = Promise.allSettled(elsewhere).then(() => file.close());
        closed.catch(() => undefined); // awaited by finish(); after a failure nobody waits
        this.closing.push(closed);
      }
    }
  }

  /**
   * A large file another file could duplicate, read and hashed block by
   * block elsewhere (hashFileBlock): its key is the hash of its blocks'
   * digests. Unless an earlier file has that key, its blocks are stored
   * from the descriptor with their digests, each checked against the first
   * read's. Every block is whole or the last one (no tail in a fragment).
   */
  private async writeCandidateElsewhere(entry: number, file: SourceFile, fd: number, elsewhere: Promise<unknown>[]): Promise<void> {
    const { blockSize } = this.options;
    const size = this.entries.size[entry]!;
    const count = Math.ceil(size / blockSize);
    const digests: Uint8Array[] = new Array(count);
    let next = 0;
    // After a failure no lane starts another read: the descriptor is closed once the reads started are done.
    let failed = false;
    const lane = async (): Promise<void> => {
      while (next < count && !failed) {
        const i = next++;
        const length = Math.min(blockSize, size - i * blockSize);
        try {
          throwIfAborted(this.options.signal);
          const read = this.fromElsewhere(entry, this.options.hashFileBlock!(fd, i * blockSize, length));
          elsewhere.push(read);
          digests[i] = await read;
        } catch (error) {
          failed = true;
          throw error;
        }
        this.options.onRead?.(length);
      }
    };
    await Promise.all(Array.from({ length: Math.min(HASH_LANES, count) }, lane));
    await this.expectEnd(file, entry);
    const key = this.options.createHash();
    for (const digest of digests) key.update(digest);
    const digest = key.digest();
    const earlier = this.seen.get(size, digest);
    if (earlier !== undefined) {
      this.layouts.dataOf[entry] = earlier;
      return;
    }
    const storeAt: StoreAt = (position, length) => {
      const index = position / blockSize;
      const block = this.fromElsewhere(entry, this.options.storeFileBlock!(fd, position, length, true)).then((stored) => {
        if (!stored.digest || !bytesEqual(stored.digest, digests[index]!)) throw this.changed(entry, 'its contents changed between two reads');
        return stored;
      });
      elsewhere.push(block);
      return block;
    };
    await this.writeData(entry, () => Promise.reject(new Error('unreachable: no tail is read here')), undefined, storeAt);
    this.seen.set(size, digest, entry);
  }

  /** A block read elsewhere, its errors made the writer's (a read error names the file; a short file is SOURCE_CHANGED). */
  private fromElsewhere<T>(entry: number, pending: Promise<T>): Promise<T> {
    return pending.catch((error: unknown) => {
      if (!(error instanceof SquashfsError)) throw sourceError(error, this.options.pathOf(entry), 'read');
      throw error.code === 'SOURCE_CHANGED' ? this.changed(entry, `${error.message}, ${this.entries.size[entry]} were expected`) : error;
    });
  }

  /** The file's blocks as its source image stores them, when they can be copied into this image as they are. */
  private async storedData(entry: number): Promise<StoredFileData | undefined> {
    const { compressionId, blockSize } = this.options;
    if (compressionId === undefined || !this.source.storedData) return undefined;
    const data = await this.source.storedData(this.options.pathOf(entry));
    const fits = data && data.compressionId === compressionId && data.blockSize === blockSize && data.size === this.entries.size[entry];
    return fits ? data : undefined;
  }

  /**
   * A file copied from another image with the same compressor and block
   * size: its blocks go in as they are stored there (holes stay holes), only
   * its tail is handled here (into a fragment, or compressed as the last
   * block when the source kept it in a fragment). Such files are
   * deduplicated as their image deduplicated them (by what it stores once),
   * not by hashing: that would mean decompressing them.
   */
  private async writeStored(entry: number, data: StoredFileData): Promise<void> {
    const { blockSize, onRead } = this.options;
    const earlier = this.options.dedupe ? this.copied.get(data.identity) : undefined;
    if (earlier !== undefined) {
      this.layouts.dataOf[entry] = earlier;
      return;
    }
    this.copied.set(data.identity, entry);
    const storeAt: StoreAt = async (position, length) => {
      const index = position / blockSize;
      onRead?.(length);
      if (index >= data.words.length) return this.options.store(await data.tail());
      const word = data.words[index]!;
      return { bytes: word === 0 ? new Uint8Array(0) : await data.block(index), word };
    };
    const tail: ReadAt = async (_position, length) => {
      onRead?.(length);
      return data.tail();
    };
    await this.writeData(entry, tail, undefined, storeAt);
  }

  /** Blocks of this file read and stored through its descriptor elsewhere, when the options allow it. */
  private storeAt(file: SourceFile, entry: number, started: Promise<unknown>[]): StoreAt | undefined {
    const { storeFileBlock, onRead } = this.options;
    if (!storeFileBlock || file.fd === undefined) return undefined;
    const fd = file.fd;
    return (position, length) => {
      const block = this.fromElsewhere(entry, storeFileBlock(fd, position, length));
      started.push(block);
      onRead?.(length);
      return block;
    };
  }

  private isCandidate(file: number): boolean {
    return this.options.dedupe && (this.options.sizeCounts.get(this.entries.size[file]!) ?? 0) > 1;
  }

  /**
   * Reads a whole small file with one read of size + 1 bytes, which also
   * tells if it grew: getting the size and not the extra byte means it
   * ended there (a short read only continues the loop while bytes are
   * still missing), so no second read is needed to see the end.
   */
  private async readWhole(entry: number): Promise<Uint8Array> {
    const size = this.entries.size[entry]!;
    const file = await this.source.open(this.options.pathOf(entry));
    try {
      const buffer = this.smallBuffer(size + 1);
      let filled = 0;
      while (filled < size) {
        const n = await file.read(buffer.subarray(filled), filled);
        if (n === 0) break;
        filled += n;
        if (filled > size) throw this.changed(entry, `it grew beyond ${size} bytes`);
      }
      if (filled < size) throw this.changed(entry, `it ended at ${filled} bytes, ${size} were expected`);
      this.options.onRead?.(size);
      return buffer.subarray(0, size);
    } finally {
      await file.close();
    }
  }

  /** readWhole, from a source that answers at once. */
  private readWholeNow(sync: SyncTreeSource, entry: number): Uint8Array {
    const size = this.entries.size[entry]!;
    const buffer = this.smallBuffer(size + 1);
    const filled = sync.readStart(this.options.pathOf(entry), buffer);
    if (filled > size) throw this.changed(entry, `it grew beyond ${size} bytes`);
    if (filled < size) throw this.changed(entry, `it ended at ${filled} bytes, ${size} were expected`);
    this.options.onRead?.(size);
    return buffer.subarray(0, size);
  }

  /**
   * Room for one small file's bytes: a piece of a shared slab, not a buffer
   * of its own, so a tree of many small files does not leave a backing
   * store per file for the GC to find (the bytes are copied on: into the
   * fragment block, or by the compressor).
   */
  private smallBuffer(length: number): Uint8Array {
    if (this.slabUsed + length > this.slab.length) {
      this.slab = new Uint8Array(Math.max(SLAB_BYTES, length));
      this.slabUsed = 0;
    }
    this.slabUsed += length;
    return this.slab.subarray(this.slabUsed - length, this.slabUsed);
  }

  /** Flushes the last fragment block; every layout is final once the output is flushed. */
  async finish(): Promise<void> {
    await this.flushFragment();
    await this.queueStarts();
    await this.out.flush();
    await Promise.all(this.closing);
  }

  /**
   * Stores a file's data and sets its layout. `storeAt`, when given, stores
   * the whole blocks (not hashed: only for files that are not dedupe
   * candidates). The block words and the start are filled in as the output
   * places the blocks.
   */
  private async writeData(file: number, readAt: ReadAt, hasher?: Hasher, storeAt?: StoreAt): Promise<void> {
    const { blockSize, fragments } = this.options;
    const { layouts } = this;
    const size = this.entries.size[file]!;
    const tail = size % blockSize;
    const useFragment = fragments !== 'never' && tail > 0 && (size < blockSize || fragments === 'always');
    const blockCount = useFragment ? Math.floor(size / blockSize) : Math.ceil(size / blockSize);
    // Room for one more word: an all-zero tail becomes a hole after the blocks.
    const firstWord = this.wordsUsed;
    this.wordsUsed += Math.ceil(size / blockSize);
    layouts.firstWord[file] = firstWord;
    let sparse = 0;
    this.startsWaiting.push(file);
    for (let i = 0; i < blockCount; i++) {
      if (i > 0) await this.turns.pause();
      const length = Math.min(blockSize, size - i * blockSize);
      if (i === 0) await this.queueStarts();
      if (storeAt) {
        await this.out.push(storeAt(i * blockSize, length), (_offset, block) => {
          if (block!.word === 0) layouts.sparse.set(file, (layouts.sparse.get(file) ?? 0) + length); // a hole
          else layouts.words[firstWord + i] = block!.word;
        });
        continue;
      }
      const data = await readAt(i * blockSize, length);
      hasher?.update(data);
      if (isAllZero(data)) {
        sparse += length;
        continue; // a hole: size word 0, nothing stored
      }
      await this.out.push(this.options.store(data), (_offset, block) => (layouts.words[firstWord + i] = block!.word));
    }
    if (sparse > 0) layouts.sparse.set(file, (layouts.sparse.get(file) ?? 0) + sparse);
    if (useFragment) {
      const data = await readAt(blockCount * blockSize, tail);
      hasher?.update(data);
      await this.addTail(file, data);
    }
  }

  /**
   * Packs a file's tail into the fragment block; like mksquashfs, an
   * all-zero tail becomes one more hole (its word stays 0) instead. A
   * promise only when the fragment block is full and is stored first.
   */
  private addTail(file: number, data: Uint8Array): Promise<void> | undefined {
    const { layouts } = this;
    if (isAllZero(data)) {
      layouts.sparse.set(file, (layouts.sparse.get(file) ?? 0) + data.length);
      return undefined;
    }
    if (this.fragmentFill + data.length > this.options.blockSize) return this.flushFragment().then(() => this.addTail(file, data));
    layouts.fragment[file] = this.fragments.length;
    layouts.fragmentOffset[file] = this.fragmentFill;
    this.fragment.set(data, this.fragmentFill);
    this.fragmentFill += data.length;
    return undefined;
  }

  /**
   * A file starts where the next block queued after it lands (mksquashfs
   * gives a file with no whole block the position it would have had). The
   * files waiting for that position learn it from one mark, queued just
   * before the next block: a run of small files queues one mark per
   * fragment block, not one per file for the output to hold.
   */
  private async queueStarts(): Promise<void> {
    if (this.startsWaiting.length === 0) return;
    const files = this.startsWaiting;
    this.startsWaiting = [];
    const { blocksStart } = this.layouts;
    await this.out.mark((offset) => {
      for (const file of files) blocksStart[file] = offset;
    });
  }

  private async flushFragment(): Promise<void> {
    if (this.fragmentFill === 0) return;
    await this.queueStarts();
    const data = this.fragment.subarray(0, this.fragmentFill);
    this.fragment = this.newFragment();
    this.fragmentFill = 0;
    const entry: FragmentEntry = { start: 0, size: 0 };
    this.fragments.push(entry);
    await this.out.push(this.options.store(data), (offset, block) => {
      entry.start = offset;
      entry.size = block!.word;
    });
  }

  /** Reads a block of a file; `counted` false: a second read of bytes already reported (onRead). */
  private async readExactly(file: SourceFile, entry: number, position: number, length: number, counted = true): Promise<Uint8Array> {
    const buffer = this.options.blockBuffer?.(length) ?? new Uint8Array(length);
    let filled = 0;
    while (filled < length) {
      const n = await file.read(buffer.subarray(filled), position + filled);
      if (n === 0) throw this.changed(entry, `it ended at ${position + filled} bytes, ${this.entries.size[entry]} were expected`);
      filled += n;
    }
    if (counted) this.options.onRead?.(length);
    return buffer;
  }

  private async expectEnd(file: SourceFile, entry: number): Promise<void> {
    const size = this.entries.size[entry]!;
    if ((await file.read(new Uint8Array(1), size)) !== 0) throw this.changed(entry, `it grew beyond ${size} bytes`);
  }

  private changed(entry: number, why: string): SquashfsError {
    const path = displayPath(this.options.pathOf(entry));
    return new SquashfsError('SOURCE_CHANGED', `${path} changed while it was packed: ${why}`, { path });
  }
}

/** Blocks of one large file hashed elsewhere at once (hashFileBlock): enough to keep every thread of a pool busy. */
const HASH_LANES = 16;

/** Small files are read into slabs of this size. */
const SLAB_BYTES = 1 << 20;

/** The block list of every file with no whole block (most files): one shared empty array. */
const NO_BLOCKS = new Uint32Array(0);

