import type { Codec } from '../../codecs/codec.js';
import { SquashfsError } from '../../errors.js';
import { METADATA_SIZE } from '../constants.js';
import { decodeMetadataHeader } from '../metadata.js';
import { Lru } from './lru.js';
import { checkRange } from './source.js';
import type { RandomAccessSource } from './types.js';

/** A decompressed metadata block and where the next one starts. */
export interface MetadataBlock {
  data: Uint8Array;
  next: number;
}

/** Blocks a decode has loaded for itself, so a retry finds them whatever the cache evicted meanwhile. */
export type HeldBlocks = Map<number, MetadataBlock>;

/** Thrown by a cursor when the block it needs is not loaded; `MetadataReader.run` loads it and decodes again. */
class MissingBlock {
  constructor(
    readonly offset: number,
    readonly tableEnd: number,
  ) {}
}

/** What a decode over loaded blocks only is given: it holds nothing of its own. */
const NOTHING_HELD: HeldBlocks = new Map();

/** Bytes read at once when preloading a table. */
const PRELOAD_READ = 8 * 1024 * 1024;

/**
 * Reads metadata blocks by absolute offset, each within the bounds of its
 * table, through an LRU cache (concurrent reads of one block share a read).
 * Decoders are synchronous: they run through `run`, which loads the blocks
 * a decode asked for and runs it again, or find every block at hand after
 * `preload` (a whole walk needs every block anyway).
 */
export class MetadataReader {
  private readonly pending: Lru<number, Promise<MetadataBlock>>;
  private readonly loaded: Lru<number, MetadataBlock>;
  private readonly pinned = new Map<number, MetadataBlock>();
  private pinnedBytes = 0;

  constructor(
    private readonly source: RandomAccessSource,
    private readonly codec: Codec,
    cacheBlocks: number,
  ) {
    this.pending = new Lru(cacheBlocks);
    this.loaded = new Lru(cacheBlocks);
  }

  block(offset: number, tableEnd: number): Promise<MetadataBlock> {
    const ready = this.peek(offset);
    if (ready) return Promise.resolve(ready);
    let pending = this.pending.get(offset);
    if (!pending) {
      pending = this.load(offset, tableEnd);
      pending.then(
        (block) => {
          this.pending.delete(offset);
          this.loaded.set(offset, block);
        },
        () => this.pending.delete(offset),
      );
      this.pending.set(offset, pending);
    }
    return pending;
  }

  /** The block at `offset` when it is loaded. */
  peek(offset: number): MetadataBlock | undefined {
    return this.pinned.get(offset) ?? this.loaded.get(offset);
  }

  /**
   * Runs a synchronous decode over metadata cursors made with the `held`
   * map it is given. When a cursor meets a block not loaded yet, the block
   * is loaded and the decode runs again; after a few such rounds the
   * following blocks are loaded too, in growing runs, so a structure over
   * n blocks costs O(log n) rounds, not n.
   */
  async run<T>(decode: (held: HeldBlocks) => T): Promise<T> {
    const held: HeldBlocks = new Map();
    for (let round = 0; ; round++) {
      try {
        return decode(held);
      } catch (error) {
        if (!(error instanceof MissingBlock)) throw error;
        let offset = error.offset;
        const ahead = round < 4 ? 1 : 2 ** (round - 3);
        for (let i = 0; i < ahead && offset < error.tableEnd; i++) {
          // Only the block asked for must load; a failure further on ends the read-ahead.
          const block = await this.block(offset, error.tableEnd).catch((cause: unknown) => {
            if (i === 0) throw cause;
            return undefined;
          });
          if (!block) break;
          held.set(offset, block);
          offset = block.next;
        }
      }
    }
  }

  /** Runs a synchronous decode over the blocks already loaded; undefined when it needs another (then `run` it). */
  runLoaded<T>(decode: (held: HeldBlocks) => T): T | undefined {
    try {
      return decode(NOTHING_HELD);
    } catch (error) {
      if (error instanceof MissingBlock) return undefined;
      throw error;
    }
  }

  /**
   * Loads the chain of blocks in [start, end) and keeps them for good, up to
   * `budget` decompressed bytes. Stops quietly at the first block that does
   * not decode: reading it on demand later reports the error where it matters.
   */
  async preload(start: number, end: number, budget: number, signal?: AbortSignal): Promise<void> {
    let offset = start;
    let window: Uint8Array = new Uint8Array(0);
    let windowStart = start;
    while (offset < end && this.pinnedBytes < budget) {
      if (this.pinned.has(offset)) {
        offset = this.pinned.get(offset)!.next;
        continue;
      }
      if (offset + 2 + METADATA_SIZE > windowStart + window.length && windowStart + window.length < end) {
        windowStart = offset;
        window = await this.source.read(offset, Math.min(PRELOAD_READ, end - offset), signal);
      }
      const at = offset - windowStart;
      if (at + 2 > window.length) return;
      try {
        const block = this.decodeAt(window.subarray(at), offset, end);
        this.pinned.set(offset, block);
        this.pinnedBytes += block.data.length;
        offset = block.next;
      } catch {
        return;
      }
    }
  }

  private async load(offset: number, tableEnd: number): Promise<MetadataBlock> {
    checkRange(offset, 2, tableEnd, 'metadata block header');
    // One read covers header and the largest possible block, within the table.
    return this.decodeAt(await this.source.read(offset, Math.min(2 + METADATA_SIZE, tableEnd - offset)), offset, tableEnd);
  }

  /** Decodes the block whose header starts `bytes` (which lie at `offset`). */
  private decodeAt(bytes: Uint8Array, offset: number, tableEnd: number): MetadataBlock {
    const header = bytes[0]! | (bytes[1]! << 8);
    const { storedLength, compressed } = decodeMetadataHeader(header, offset);
    checkRange(offset + 2, storedLength, tableEnd, `metadata block at ${offset}`);
    if (2 + storedLength > bytes.length) {
      throw new SquashfsError('CORRUPT_IMAGE', `metadata block at ${offset} runs past its table`, { offset });
    }
    const stored = bytes.subarray(2, 2 + storedLength);
    let data: Uint8Array;
    try {
      data = compressed ? this.codec.decompress(stored, METADATA_SIZE, true) : stored;
    } catch (cause) {
      if (cause instanceof SquashfsError && cause.offset === undefined) {
        throw new SquashfsError(cause.code, `metadata block at ${offset}: ${cause.message}`, { offset, cause });
      }
      throw cause;
    }
    return { data, next: offset + 2 + storedLength };
  }
}

/**
 * Reads a run of bytes from a metadata table, crossing block boundaries,
 * starting at (block, offset). Never reads past `tableEnd`. Synchronous:
 * use it inside `MetadataReader.run`, which supplies the blocks.
 */
export class MetadataCursor {
  private blockStart: number;
  private current: (MetadataBlock & { start: number }) | undefined;

  constructor(
    private readonly reader: MetadataReader,
    private readonly held: HeldBlocks,
    private readonly tableStart: number,
    private readonly tableEnd: number,
    block: number,
    private offset: number,
  ) {
    this.blockStart = tableStart + block;
    if (offset >= METADATA_SIZE) {
      throw new SquashfsError('CORRUPT_IMAGE', `metadata offset ${offset} at ${this.blockStart} is beyond a block`, { offset: this.blockStart });
    }
  }

  /** The position of the next byte: block relative to the table, offset in it. */
  get position(): { block: number; offset: number } {
    return { block: this.blockStart - this.tableStart, offset: this.offset };
  }

  take(length: number): Uint8Array {
    // The most a table can still hold: every remaining block minimal (3 bytes) and full.
    const most = Math.ceil((this.tableEnd - this.blockStart) / 3) * METADATA_SIZE;
    if (length > most) {
      throw new SquashfsError('CORRUPT_IMAGE', `${length} bytes wanted from a table with room for at most ${most} from ${this.blockStart}`, { offset: this.blockStart });
    }
    if (length === 0) return new Uint8Array(0);
    let first: Uint8Array | undefined;
    let out: Uint8Array | undefined;
    let filled = 0;
    while (filled < length) {
      const { data, next } = this.block();
      if (this.offset > data.length) {
        throw new SquashfsError('CORRUPT_IMAGE', `offset ${this.offset} is past the ${data.length} bytes of the metadata block at ${this.blockStart}`, { offset: this.blockStart });
      }
      const n = Math.min(length - filled, data.length - this.offset);
      const part = data.subarray(this.offset, this.offset + n);
      if (filled === 0 && n === length) first = part;
      else {
        out ??= new Uint8Array(length);
        out.set(part, filled);
      }
      this.offset += n;
      filled += n;
      if (this.offset === data.length && (filled < length || data.length === METADATA_SIZE)) {
        if (filled < length && data.length < METADATA_SIZE) {
          throw new SquashfsError('CORRUPT_IMAGE', `metadata ends in a short block at ${this.blockStart} with ${length - filled} bytes still wanted`, { offset: this.blockStart });
        }
        this.blockStart = next;
        this.offset = 0;
      }
    }
    return first ?? out!;
  }

  /** Up to `most` bytes: the rest of the current block, or of the next one when this one is used up. */
  takeSome(most: number): Uint8Array {
    const available = this.block().data.length - this.offset;
    return this.take(Math.min(most, available > 0 ? available : METADATA_SIZE));
  }

  u16(): number {
    const b = this.take(2);
    return b[0]! | (b[1]! << 8);
  }

  u32(): number {
    const b = this.take(4);
    return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
  }

  private block(): MetadataBlock & { start: number } {
    if (this.current?.start !== this.blockStart) {
      const found = this.held.get(this.blockStart) ?? this.reader.peek(this.blockStart);
      if (!found) {
        checkRange(this.blockStart, 2, this.tableEnd, 'metadata block header');
        throw new MissingBlock(this.blockStart, this.tableEnd);
      }
      this.current = { start: this.blockStart, data: found.data, next: found.next };
    }
    return this.current;
  }
}
