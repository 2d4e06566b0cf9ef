import { SquashfsError } from '../../errors.js';
import { getU64 } from '../bytes.js';
import { METADATA_SIZE } from '../constants.js';
import { decodeFragmentEntry, FRAGMENT_ENTRY_SIZE, type FragmentEntry } from '../fragment-table.js';
import { decodeIdTable } from '../id-table.js';
import { XATTR_HEADER_SIZE, XATTR_PREFIXES, XATTR_VALUE_OOL, type Xattr } from '../xattr-table.js';
import { MetadataCursor, type HeldBlocks, type MetadataReader } from './metadata-reader.js';
import { checkRange } from './source.js';
import type { RandomAccessSource } from './types.js';
import { decodeUtf8Lossy } from '../bytes.js';

const corrupt = (message: string, offset: number) => new SquashfsError('CORRUPT_IMAGE', message, { offset });

/**
 * A lookup table (ids, fragments, xattr ids): `count` entries of
 * `entrySize` bytes in metadata blocks, located through an index of u64
 * block positions at `indexStart`. Blocks are read on demand.
 */
export class LookupTable {
  private index: number[] | undefined;

  constructor(
    private readonly source: RandomAccessSource,
    private readonly metadata: MetadataReader,
    private readonly name: string,
    private readonly indexStart: number,
    private readonly count: number,
    private readonly entrySize: number,
    private readonly limit: number,
  ) {}

  /** The payload of the metadata block holding entry `i`, and the entry's offset in it. */
  async entry(i: number): Promise<{ data: Uint8Array; offset: number }> {
    this.checkIndex(i);
    const start = (await this.loadIndex())[Math.floor((i * this.entrySize) / METADATA_SIZE)]!;
    return this.locate(i, start, (await this.metadata.block(start, this.indexStart)).data);
  }

  /** As `entry`, when the index and the entry's block are loaded already; else undefined. */
  loadedEntry(i: number): { data: Uint8Array; offset: number } | undefined {
    this.checkIndex(i);
    if (!this.index) return undefined;
    const start = this.index[Math.floor((i * this.entrySize) / METADATA_SIZE)]!;
    const block = this.metadata.peek(start);
    return block && this.locate(i, start, block.data);
  }

  private checkIndex(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.count) {
      throw corrupt(`${this.name} index ${i} is out of range (0..${this.count - 1})`, this.indexStart);
    }
  }

  /** Entry `i` in the block at `start`, whose payload is `data`. */
  private locate(i: number, start: number, data: Uint8Array): { data: Uint8Array; offset: number } {
    const offset = (i * this.entrySize) % METADATA_SIZE;
    if (offset + this.entrySize > data.length) throw corrupt(`${this.name} entry ${i} lies past its metadata block at ${start}`, start);
    return { data, offset };
  }

  /** Every entry's bytes in order. */
  async all(): Promise<Uint8Array> {
    const out = new Uint8Array(this.count * this.entrySize);
    const index = await this.loadIndex();
    let o = 0;
    for (const start of index) {
      const { data } = await this.metadata.block(start, this.indexStart);
      const n = Math.min(data.length, out.length - o);
      if (n < Math.min(METADATA_SIZE, out.length - o)) throw corrupt(`${this.name} block at ${start} is short`, start);
      out.set(data.subarray(0, n), o);
      o += n;
    }
    return out;
  }

  private async loadIndex(): Promise<number[]> {
    if (this.index) return this.index;
    const blocks = Math.ceil((this.count * this.entrySize) / METADATA_SIZE);
    checkRange(this.indexStart, blocks * 8, this.limit, `${this.name} index`);
    const bytes = await this.source.read(this.indexStart, blocks * 8);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const index: number[] = [];
    for (let i = 0; i < blocks; i++) {
      const start = getU64(view, i * 8);
      if (start >= this.indexStart) throw corrupt(`${this.name} block ${i} at ${start} is not before its index at ${this.indexStart}`, this.indexStart);
      index.push(start);
    }
    this.index = index;
    return index;
  }
}

export class IdLookup {
  private ids: Uint32Array | undefined;

  constructor(private readonly table: LookupTable, private readonly count: number) {}

  /** Reads the table (once); `get` needs it loaded. */
  async load(): Promise<void> {
    this.ids ??= decodeIdTable(await this.table.all(), this.count);
  }

  get(index: number, where: number): number {
    if (!this.ids) throw new Error('IdLookup.get before load');
    if (index >= this.ids.length) throw corrupt(`id index ${index} is out of range (${this.ids.length} ids)`, where);
    return this.ids[index]!;
  }
}

export class FragmentLookup {
  constructor(private readonly table: LookupTable) {}

  async get(index: number): Promise<FragmentEntry> {
    return this.decode(this.table.loadedEntry(index) ?? (await this.table.entry(index)));
  }

  private decode({ data, offset }: { data: Uint8Array; offset: number }): FragmentEntry {
    return decodeFragmentEntry(data.subarray(offset, offset + FRAGMENT_ENTRY_SIZE), 0);
  }
}

/** The xattr tables: the id table (through its header) and the key/value pairs. */
export class XattrLookup {
  private constructor(
    private readonly metadata: MetadataReader,
    private readonly ids: LookupTable,
    private readonly kvStart: number,
    private readonly end: number,
    readonly count: number,
  ) {}

  static async open(source: RandomAccessSource, metadata: MetadataReader, headerStart: number, bytesUsed: number): Promise<XattrLookup> {
    checkRange(headerStart, XATTR_HEADER_SIZE, bytesUsed, 'xattr id table header');
    const header = await source.read(headerStart, XATTR_HEADER_SIZE);
    const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
    const kvStart = getU64(view, 0);
    const count = view.getUint32(8, true);
    if (kvStart >= headerStart) throw corrupt(`xattr key/value table at ${kvStart} is not before its header at ${headerStart}`, headerStart);
    const ids = new LookupTable(source, metadata, 'xattr id', headerStart + XATTR_HEADER_SIZE, count, 16, bytesUsed);
    return new XattrLookup(metadata, ids, kvStart, headerStart, count);
  }

  async get(index: number): Promise<Xattr[]> {
    const { data, offset } = await this.ids.entry(index);
    const view = new DataView(data.buffer, data.byteOffset + offset, 16);
    const ref = view.getBigUint64(0, true);
    const count = view.getUint32(8, true);
    return this.metadata.run((held) => {
      const cursor = this.cursorAt(held, ref);
      const result: Xattr[] = [];
      for (let i = 0; i < count; i++) {
        const type = cursor.u16();
        const nameSize = cursor.u16();
        const prefix = XATTR_PREFIXES[type & 0xff];
        if (prefix === undefined) throw corrupt(`xattr type ${type} is unknown`, this.kvStart);
        const name = prefix + decodeUtf8Lossy(cursor.take(nameSize));
        const valueSize = cursor.u32();
        let value: Uint8Array;
        if (type & XATTR_VALUE_OOL) {
          if (valueSize !== 8) throw corrupt(`out-of-line xattr value reference of ${valueSize} bytes`, this.kvStart);
          const ool = cursor.take(8);
          const valueCursor = this.cursorAt(held, new DataView(ool.buffer, ool.byteOffset, 8).getBigUint64(0, true));
          value = (valueCursor.take(valueCursor.u32())).slice();
        } else {
          value = (cursor.take(valueSize)).slice();
        }
        result.push({ name, value });
      }
      return result;
    });
  }

  private cursorAt(held: HeldBlocks, ref: bigint): MetadataCursor {
    return new MetadataCursor(this.metadata, held, this.kvStart, this.end, Number(ref >> 16n), Number(ref & 0xffffn));
  }
}
