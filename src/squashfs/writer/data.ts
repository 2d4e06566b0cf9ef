import { SquashfsError, throwIfAborted } from '../../errors.js';
import { toHex, type HashFactory, type Hasher } from '../../hash.js';
import { sourceError } from '../../source/fs-source.js';
import { displayPath } from '../../source/paths.js';
import type { SourceFile, SourcePath, TreeSource } from '../../source/source.js';
import { isAllZero } from '../bytes.js';
import { NO_INDEX } from '../constants.js';
import type { FragmentEntry } from '../fragment-table.js';
import type { OrderedOutput, StoredBlock } from './output.js';
import type { FileLayout, InodeRecord } from './tree.js';

/** How file tails are packed: mksquashfs's default, `-no-fragments`, `-always-use-fragments`. */
export type FragmentMode = 'default' | 'never' | 'always';

export interface DataWriterOptions {
  /** A file's path in the source (records keep no path of their own). */
  pathOf: (record: InodeRecord) => SourcePath;
  blockSize: number;
  fragments: FragmentMode;
  /** Store identical files once (default true). */
  dedupe: boolean;
  /** How many files share each size: only those are hashed for duplicates. */
  sizeCounts: ReadonlyMap<number, number>;
  store: (data: Uint8Array) => Promise<StoredBlock>;
  createHash: HashFactory;
  /** Reads and stores a block from a file descriptor elsewhere (see WriterOptions.storeFileBlock). */
  storeFileBlock?: (fd: number, position: number, length: number) => Promise<StoredBlock>;
  /** Where read buffers come from (default: new ones). */
  blockBuffer?: (length: number) => Uint8Array;
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
 * The data phase: writes each regular file's blocks (holes for all-zero
 * blocks) and packs tails into fragment blocks, recording every layout.
 */
export class DataWriter {
  readonly fragments: FragmentEntry[] = [];
  private fragment: Uint8Array;
  private fragmentFill = 0;
  private readonly seen = new Map<string, FileLayout>();
  /** Files closed once the blocks read from their descriptors elsewhere are done. */
  private readonly closing: Promise<void>[] = [];
  private readonly turns = new EventLoopTurns();
  private slab = new Uint8Array(0);
  private slabUsed = 0;

  constructor(
    private readonly source: TreeSource,
    private readonly out: OrderedOutput,
    private readonly options: DataWriterOptions,
  ) {
    this.fragment = this.newFragment();
  }

  private newFragment(): Uint8Array {
    return this.options.blockBuffer?.(this.options.blockSize) ?? new Uint8Array(this.options.blockSize);
  }

  /**
   * Writes every file's data in order. Files of at most one block are read
   * whole, several ahead of the one being written (bounded by `readAhead`
   * files and bytes), so small files do not wait on each other's I/O.
   */
  /**
   * Writes every file's data in order, reading small files ahead. Reads
   * may complete at once (synchronous sources), so the loop lets the event
   * loop in every few milliseconds: an upload of what it wrote, or the
   * replies of the compression workers, must not wait for the whole tree.
   */
  async writeFiles(files: readonly InodeRecord[], onFile?: (record: InodeRecord) => void): Promise<void> {
    const { blockSize, readAhead = 32 } = this.options;
    const maxAheadBytes = Math.max(readAhead * blockSize / 4, 4 * blockSize);
    const ahead = new Map<number, Promise<Uint8Array>>();
    let aheadBytes = 0;
    let next = 0;
    for (let i = 0; i < files.length; i++) {
      await this.turns.pause();
      while (next < files.length && ahead.size < readAhead && aheadBytes < maxAheadBytes) {
        const size = files[next]!.stat.size;
        if (size > 0 && size <= blockSize) {
          const read = this.readWhole(files[next]!);
          read.catch(() => undefined); // rethrown in order, when its turn comes
          ahead.set(next, read);
          aheadBytes += size;
        }
        next++;
      }
      const record = files[i]!;
      const read = ahead.get(i);
      if (read) {
        ahead.delete(i);
        aheadBytes -= record.stat.size;
        await this.writeSmall(record, await read);
      } else {
        await this.writeFile(record);
      }
      onFile?.(record);
    }
  }

  /** Writes one file's data, reading it now. */
  async writeFile(record: InodeRecord): Promise<void> {
    throwIfAborted(this.options.signal);
    const size = record.stat.size;
    if (size === 0) {
      record.layout = { blocksStart: 0, blockSizes: NO_BLOCKS, fragmentIndex: NO_INDEX, fragmentOffset: 0, sparse: 0 };
    } else if (size <= this.options.blockSize) {
      await this.writeSmall(record, await this.readWhole(record));
    } else {
      await this.writeLarge(record);
    }
  }

  /** A file of at most one block, already in memory. */
  private async writeSmall(record: InodeRecord, bytes: Uint8Array): Promise<void> {
    throwIfAborted(this.options.signal);
    const fromMemory: ReadAt = async (p, n) => bytes.subarray(p, p + n);
    if (!this.isCandidate(record)) {
      record.layout = await this.writeData(record, fromMemory);
      return;
    }
    const hasher = this.options.createHash();
    hasher.update(bytes);
    const key = dedupeKey(bytes.length, hasher.digest());
    const earlier = this.seen.get(key);
    if (earlier) record.layout = earlier;
    else this.seen.set(key, (record.layout = await this.writeData(record, fromMemory)));
  }

  /** A file of more than one block, streamed; hashed first when another file has its size. */
  private async writeLarge(record: InodeRecord): Promise<void> {
    const size = record.stat.size;
    const file = await this.source.open(this.options.pathOf(record));
    const elsewhere: Promise<unknown>[] = [];
    try {
      const readAt: ReadAt = (position, length) => this.readExactly(file, record, position, length);
      if (!this.isCandidate(record)) {
        record.layout = await this.writeData(record, readAt, undefined, this.storeAt(file, record, elsewhere));
        await this.expectEnd(file, record);
        return;
      }
      const hasher = this.options.createHash();
      for (let p = 0; p < size; p += this.options.blockSize) {
        await this.turns.pause();
        hasher.update(await readAt(p, Math.min(this.options.blockSize, size - p)));
      }
      await this.expectEnd(file, record);
      const digestBytes = hasher.digest();
      const digest = toHex(digestBytes);
      const key = dedupeKey(size, digestBytes);
      const earlier = this.seen.get(key);
      if (earlier) {
        record.layout = earlier;
        return;
      }
      const check = this.options.createHash();
      record.layout = await this.writeData(record, readAt, check);
      if (toHex(check.digest()) !== digest) throw this.changed(record, 'its contents changed between two reads');
      this.seen.set(key, record.layout);
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

  /** Blocks of this file read and stored through its descriptor elsewhere, when the options allow it. */
  private storeAt(file: SourceFile, record: InodeRecord, started: Promise<unknown>[]): StoreAt | undefined {
    const { storeFileBlock, onRead } = this.options;
    if (!storeFileBlock || file.fd === undefined) return undefined;
    const fd = file.fd;
    return (position, length) => {
      const block = storeFileBlock(fd, position, length).catch((error: unknown) => {
        if (!(error instanceof SquashfsError)) throw sourceError(error, this.options.pathOf(record), 'read');
        throw error.code === 'SOURCE_CHANGED' ? this.changed(record, `${error.message}, ${record.stat.size} were expected`) : error;
      });
      started.push(block);
      onRead?.(length);
      return block;
    };
  }

  private isCandidate(record: InodeRecord): boolean {
    return this.options.dedupe && (this.options.sizeCounts.get(record.stat.size) ?? 0) > 1;
  }

  /**
   * Reads a whole small file with one read of size + 1 bytes, which also
   * tells if it grew: getting the size and not the extra byte means it
   * ended there (a short read only continues the loop while bytes are
   * still missing), so no second read is needed to see the end.
   */
  private async readWhole(record: InodeRecord): Promise<Uint8Array> {
    const size = record.stat.size;
    const file = await this.source.open(this.options.pathOf(record));
    try {
      const buffer = this.smallBuffer(size + 1);
      let filled = 0;
      while (filled < size) {
        const n = await file.read(buffer.subarray(filled), filled);
        if (n === 0) break;
        filled += n;
        if (filled > size) throw this.changed(record, `it grew beyond ${size} bytes`);
      }
      if (filled < size) throw this.changed(record, `it ended at ${filled} bytes, ${size} were expected`);
      this.options.onRead?.(size);
      return buffer.subarray(0, size);
    } finally {
      await file.close();
    }
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
    await this.out.flush();
    await Promise.all(this.closing);
  }

  /** `storeAt`, when given, stores the whole blocks (not hashed: only for files that are not dedupe candidates). */
  private async writeData(record: InodeRecord, readAt: ReadAt, hasher?: Hasher, storeAt?: StoreAt): Promise<FileLayout> {
    const { blockSize, fragments } = this.options;
    const size = record.stat.size;
    const tail = size % blockSize;
    const useFragment = fragments !== 'never' && tail > 0 && (size < blockSize || fragments === 'always');
    const blockCount = useFragment ? Math.floor(size / blockSize) : Math.ceil(size / blockSize);
    const layout: FileLayout = {
      blocksStart: 0,
      blockSizes: blockCount === 0 ? NO_BLOCKS : new Uint32Array(blockCount),
      fragmentIndex: NO_INDEX,
      fragmentOffset: 0,
      sparse: 0,
    };
    await this.out.mark((offset) => (layout.blocksStart = offset));
    for (let i = 0; i < blockCount; i++) {
      if (i > 0) await this.turns.pause();
      const length = Math.min(blockSize, size - i * blockSize);
      if (storeAt) {
        await this.out.push(storeAt(i * blockSize, length), (_offset, block) => {
          if (block!.word === 0) layout.sparse += length; // a hole
          else layout.blockSizes[i] = block!.word;
        });
        continue;
      }
      const data = await readAt(i * blockSize, length);
      hasher?.update(data);
      if (isAllZero(data)) {
        layout.sparse += length;
        continue; // a hole: size word 0, nothing stored
      }
      await this.out.push(this.options.store(data), (_offset, block) => (layout.blockSizes[i] = block!.word));
    }
    if (useFragment) {
      const data = await readAt(blockCount * blockSize, tail);
      hasher?.update(data);
      if (isAllZero(data)) {
        // Like mksquashfs: an all-zero tail becomes one more hole, not fragment bytes.
        layout.blockSizes = Uint32Array.from([...layout.blockSizes, 0]);
        layout.sparse += tail;
        return layout;
      }
      if (this.fragmentFill + tail > blockSize) await this.flushFragment();
      layout.fragmentIndex = this.fragments.length;
      layout.fragmentOffset = this.fragmentFill;
      this.fragment.set(data, this.fragmentFill);
      this.fragmentFill += tail;
    }
    return layout;
  }

  private async flushFragment(): Promise<void> {
    if (this.fragmentFill === 0) return;
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

  private async readExactly(file: SourceFile, record: InodeRecord, position: number, length: number): Promise<Uint8Array> {
    const buffer = this.options.blockBuffer?.(length) ?? new Uint8Array(length);
    let filled = 0;
    while (filled < length) {
      const n = await file.read(buffer.subarray(filled), position + filled);
      if (n === 0) throw this.changed(record, `it ended at ${position + filled} bytes, ${record.stat.size} were expected`);
      filled += n;
    }
    this.options.onRead?.(length);
    return buffer;
  }

  private async expectEnd(file: SourceFile, record: InodeRecord): Promise<void> {
    if ((await file.read(new Uint8Array(1), record.stat.size)) !== 0) {
      throw this.changed(record, `it grew beyond ${record.stat.size} bytes`);
    }
  }

  private changed(record: InodeRecord, why: string): SquashfsError {
    const path = displayPath(this.options.pathOf(record));
    return new SquashfsError('SOURCE_CHANGED', `${path} changed while it was packed: ${why}`, { path });
  }
}

/** Small files are read into slabs of this size. */
const SLAB_BYTES = 1 << 20;

/** The block list of every file with no whole block (most files): one shared empty array, not one each. */
const NO_BLOCKS = new Uint32Array(0);

/**
 * The key of a file's contents in the dedupe table: its size and the first
 * 16 bytes of its SHA-256, as one flat string of 48 hex digits (a key is
 * kept per distinct file, so it is kept small).
 */
function dedupeKey(size: number, digest: Uint8Array): string {
  const bytes = new Uint8Array(24);
  bytes.set(digest.subarray(0, 16));
  new DataView(bytes.buffer).setFloat64(16, size, true);
  return toHex(bytes);
}

/** The longest the data phase runs without letting the event loop in, in ms. */
const YIELD_AFTER_MS = 4;

/**
 * Lets the event loop in every few milliseconds. Reads from a synchronous
 * source complete at once, so without this the data phase would run on
 * microtasks alone for long stretches: an upload of what it wrote (its
 * presigning, its sockets) and the compression workers' replies would
 * wait for it.
 */
class EventLoopTurns {
  private since = Date.now();

  async pause(): Promise<void> {
    if (Date.now() - this.since < YIELD_AFTER_MS) return;
    const immediate = (globalThis as { setImmediate?: (fn: () => void) => unknown }).setImmediate;
    await new Promise<void>((resolve) => (immediate ? immediate(resolve) : setTimeout(resolve, 0)));
    this.since = Date.now();
  }
}
