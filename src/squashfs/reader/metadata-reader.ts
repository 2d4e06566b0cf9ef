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

/**
 * Reads metadata blocks by absolute offset, each within the bounds of its
 * table, through an LRU cache (concurrent reads of one block share a read).
 */
export class MetadataReader {
  private readonly cache: Lru<number, Promise<MetadataBlock>>;

  constructor(
    private readonly source: RandomAccessSource,
    private readonly codec: Codec,
    cacheBlocks: number,
  ) {
    this.cache = new Lru(cacheBlocks);
  }

  block(offset: number, tableEnd: number): Promise<MetadataBlock> {
    let pending = this.cache.get(offset);
    if (!pending) {
      pending = this.load(offset, tableEnd);
      pending.catch(() => this.cache.delete(offset));
      this.cache.set(offset, pending);
    }
    return pending;
  }

  private async load(offset: number, tableEnd: number): Promise<MetadataBlock> {
    checkRange(offset, 2, tableEnd, 'metadata block header');
    // One read covers header and the largest possible block, within the table.
    const bytes = await this.source.read(offset, Math.min(2 + METADATA_SIZE, tableEnd - offset));
    const header = bytes[0]! | (bytes[1]! << 8);
    const { storedLength, compressed } = decodeMetadataHeader(header, offset);
    checkRange(offset + 2, storedLength, tableEnd, `metadata block at ${offset}`);
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
 * starting at (block, offset). Never reads past `tableEnd`.
 */
export class MetadataCursor {
  private blockStart: number;
  private current: (MetadataBlock & { start: number }) | undefined;

  constructor(
    private readonly reader: MetadataReader,
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

  async take(length: number): Promise<Uint8Array> {
    // The most a table can still hold: every remaining block minimal (3 bytes) and full.
    const most = Math.ceil((this.tableEnd - this.blockStart) / 3) * METADATA_SIZE;
    if (length > most) {
      throw new SquashfsError('CORRUPT_IMAGE', `${length} bytes wanted from a table with room for at most ${most} from ${this.blockStart}`, { offset: this.blockStart });
    }
    const parts: Uint8Array[] = [];
    let needed = length;
    while (needed > 0) {
      if (this.current?.start !== this.blockStart) {
        this.current = { start: this.blockStart, ...(await this.reader.block(this.blockStart, this.tableEnd)) };
      }
      const { data, next } = this.current;
      if (this.offset > data.length) {
        throw new SquashfsError('CORRUPT_IMAGE', `offset ${this.offset} is past the ${data.length} bytes of the metadata block at ${this.blockStart}`, { offset: this.blockStart });
      }
      const n = Math.min(needed, data.length - this.offset);
      if (n > 0) parts.push(data.subarray(this.offset, this.offset + n));
      this.offset += n;
      needed -= n;
      if (this.offset === data.length && (needed > 0 || data.length === METADATA_SIZE)) {
        if (needed > 0 && data.length < METADATA_SIZE) {
          throw new SquashfsError('CORRUPT_IMAGE', `metadata ends in a short block at ${this.blockStart} with ${needed} bytes still wanted`, { offset: this.blockStart });
        }
        this.blockStart = next;
        this.offset = 0;
      }
    }
    if (parts.length === 1) return parts[0]!;
    const out = new Uint8Array(length);
    let o = 0;
    for (const part of parts) {
      out.set(part, o);
      o += part.length;
    }
    return out;
  }

  /** Up to `most` bytes: the rest of the current block, or of the next one when this one is used up. */
  async takeSome(most: number): Promise<Uint8Array> {
    if (this.current?.start !== this.blockStart) {
      this.current = { start: this.blockStart, ...(await this.reader.block(this.blockStart, this.tableEnd)) };
    }
    const available = this.current.data.length - this.offset;
    return this.take(Math.min(most, available > 0 ? available : METADATA_SIZE));
  }

  async u16(): Promise<number> {
    const b = await this.take(2);
    return b[0]! | (b[1]! << 8);
  }

  async u32(): Promise<number> {
    const b = await this.take(4);
    return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
  }
}
