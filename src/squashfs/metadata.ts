import { SquashfsError } from '../errors.js';
import { setU64 } from './bytes.js';
import { METADATA_SIZE, METADATA_UNCOMPRESSED } from './constants.js';

/** Compresses one block; returns the input itself when compression does not shrink it. */
export type BlockCompressor = (data: Uint8Array) => Uint8Array;

/**
 * A metadata block: a u16 header (low 15 bits: stored length; bit 15: stored
 * uncompressed) followed by at most 8 KiB of payload, compressed when that
 * makes it smaller.
 */
export function encodeMetadataBlock(payload: Uint8Array, compress: BlockCompressor): Uint8Array {
  if (payload.length === 0 || payload.length > METADATA_SIZE) {
    throw new RangeError(`metadata payload of ${payload.length} bytes`);
  }
  const packed = compress(payload);
  const stored = packed.length < payload.length ? packed : payload;
  const block = new Uint8Array(2 + stored.length);
  const header = stored === payload ? stored.length | METADATA_UNCOMPRESSED : stored.length;
  new DataView(block.buffer).setUint16(0, header, true);
  block.set(stored, 2);
  return block;
}

/** Splits a metadata block header into stored length and compression. */
export function decodeMetadataHeader(header: number, offset: number): { storedLength: number; compressed: boolean } {
  const storedLength = header & ~METADATA_UNCOMPRESSED;
  if (storedLength === 0 || storedLength > METADATA_SIZE) {
    throw new SquashfsError('CORRUPT_IMAGE', `metadata block at ${offset} claims ${storedLength} stored bytes`, { offset });
  }
  return { storedLength, compressed: (header & METADATA_UNCOMPRESSED) === 0 };
}

/** A position in a metadata table: the block's start relative to the table, and the offset in its payload. */
export interface MetadataPosition {
  block: number;
  offset: number;
}

/** The 64-bit reference to a position, as stored for inodes: block << 16 | offset. */
export function toReference(position: MetadataPosition): bigint {
  return (BigInt(position.block) << 16n) | BigInt(position.offset);
}

export function fromReference(ref: bigint): MetadataPosition {
  return { block: Number(ref >> 16n), offset: Number(ref & 0xffffn) };
}

/**
 * Accumulates a metadata table (inode, directory, xattr, lookup payloads):
 * bytes go in, 8 KiB payloads are compressed as they fill, and the position
 * of the next byte is always known.
 */
export class MetadataWriter {
  private readonly blocks: Uint8Array[] = [];
  private readonly pending = new Uint8Array(METADATA_SIZE);
  private fill = 0;
  private stored = 0;
  private readonly starts: number[] = [];

  constructor(private readonly compress: BlockCompressor) {}

  /** Where the next byte written will be. */
  get position(): MetadataPosition {
    return { block: this.stored, offset: this.fill };
  }

  /** Uncompressed bytes written so far. */
  get length(): number {
    return this.starts.length * METADATA_SIZE + this.fill;
  }

  /** The start, relative to the table, of the block holding uncompressed byte `position` (written already). */
  blockStartAt(position: number): number {
    const block = Math.floor(position / METADATA_SIZE);
    return block < this.starts.length ? this.starts[block]! : this.stored;
  }

  write(bytes: Uint8Array): void {
    let from = 0;
    while (from < bytes.length) {
      const n = Math.min(METADATA_SIZE - this.fill, bytes.length - from);
      this.pending.set(bytes.subarray(from, from + n), this.fill);
      this.fill += n;
      from += n;
      if (this.fill === METADATA_SIZE) this.flush();
    }
  }

  /** Completes the table; returns its blocks and, for lookup tables, each block's start relative to the table. */
  finish(): { blocks: Uint8Array[]; blockStarts: number[]; size: number } {
    if (this.fill > 0) this.flush();
    return { blocks: this.blocks, blockStarts: this.starts, size: this.stored };
  }

  private flush(): void {
    const block = encodeMetadataBlock(this.pending.slice(0, this.fill), this.compress);
    this.starts.push(this.stored);
    this.blocks.push(block);
    this.stored += block.length;
    this.fill = 0;
  }
}

/**
 * A lookup table (fragments, export, ids): its payload as metadata blocks,
 * followed by an index of u64 absolute block positions. The superblock
 * points at the index.
 */
export function encodeLookupTable(
  payload: Uint8Array,
  tableStart: number,
  compress: BlockCompressor,
): { bytes: Uint8Array[]; indexStart: number; end: number } {
  const writer = new MetadataWriter(compress);
  writer.write(payload);
  const { blocks, blockStarts, size } = writer.finish();
  const index = new Uint8Array(blockStarts.length * 8);
  const view = new DataView(index.buffer);
  blockStarts.forEach((start, i) => setU64(view, i * 8, tableStart + start));
  return { bytes: [...blocks, index], indexStart: tableStart + size, end: tableStart + size + index.length };
}
