import { SquashfsError } from '../errors.js';
import { compareBytes, encodeUtf8, setU64 } from './bytes.js';
import { type BlockCompressor, encodeLookupTable, MetadataWriter, toReference } from './metadata.js';

/** An extended attribute: full name (with its namespace prefix) and value bytes. */
export interface Xattr {
  name: string;
  value: Uint8Array;
}

/** The namespaces SquashFS can store, by their on-disk type. */
export const XATTR_PREFIXES = ['user.', 'trusted.', 'security.'] as const;
/** Bit of a key's type: the value is stored out of line (a u64 reference). */
export const XATTR_VALUE_OOL = 0x100;

/** The on-disk type and stripped name of an xattr name, or undefined for namespaces SquashFS cannot store. */
export function splitXattrName(name: string): { type: number; suffix: Uint8Array } | undefined {
  const type = XATTR_PREFIXES.findIndex((prefix) => name.startsWith(prefix));
  if (type < 0) return undefined;
  return { type, suffix: encodeUtf8(name.slice(XATTR_PREFIXES[type]!.length)) };
}

/** The xattr id table header: where the key/value pairs start and how many ids there are (16 bytes). */
export const XATTR_HEADER_SIZE = 16;

/**
 * Collects the xattr sets of a tree. Each distinct set is stored once as
 * key/value pairs; inodes refer to it by its index in the xattr id table.
 */
export class XattrTableBuilder {
  private readonly sets: { pairs: Uint8Array; count: number; size: number }[] = [];
  private readonly byKey = new Map<string, number>();

  get count(): number {
    return this.sets.length;
  }

  /** The xattr index of a set (sets equal up to order share one), or undefined for an empty set. */
  add(xattrs: readonly Xattr[], path: string): number | undefined {
    const pairs: { type: number; suffix: Uint8Array; value: Uint8Array }[] = [];
    for (const { name, value } of xattrs) {
      const split = splitXattrName(name);
      if (!split) continue;
      if (split.suffix.length === 0 || split.suffix.length > 0xffff) {
        throw new SquashfsError('INVALID_NAME', `xattr name "${name}" of ${path} cannot be stored`, { path });
      }
      pairs.push({ ...split, value });
    }
    if (pairs.length === 0) return undefined;
    pairs.sort((a, b) => a.type - b.type || compareBytes(a.suffix, b.suffix));
    let length = 0;
    // The id entry's size counts each full name (prefix included) + 1 and each value.
    let size = 0;
    for (const p of pairs) {
      length += 8 + p.suffix.length + p.value.length;
      size += XATTR_PREFIXES[p.type]!.length + p.suffix.length + 1 + p.value.length;
    }
    const bytes = new Uint8Array(length);
    const view = new DataView(bytes.buffer);
    let o = 0;
    for (const p of pairs) {
      view.setUint16(o, p.type, true);
      view.setUint16(o + 2, p.suffix.length, true);
      bytes.set(p.suffix, o + 4);
      o += 4 + p.suffix.length;
      view.setUint32(o, p.value.length, true);
      bytes.set(p.value, o + 4);
      o += 4 + p.value.length;
    }
    const key = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
    let index = this.byKey.get(key);
    if (index === undefined) {
      index = this.sets.length;
      this.sets.push({ pairs: bytes, count: pairs.length, size });
      this.byKey.set(key, index);
    }
    return index;
  }

  /**
   * The table at `tableStart`: key/value metadata blocks, the id entries
   * ({u64 ref, u32 count, u32 size}) as metadata blocks, then the header and
   * the index of the id blocks. Returns where the header (the superblock's
   * xattr_id_table_start) is.
   */
  encode(tableStart: number, compress: BlockCompressor): { bytes: Uint8Array[]; headerStart: number; end: number } {
    const kv = new MetadataWriter(compress);
    const ids = new Uint8Array(this.sets.length * 16);
    const idView = new DataView(ids.buffer);
    this.sets.forEach((set, i) => {
      idView.setBigUint64(i * 16, toReference(kv.position), true);
      idView.setUint32(i * 16 + 8, set.count, true);
      idView.setUint32(i * 16 + 12, set.size, true);
      kv.write(set.pairs);
    });
    const kvTable = kv.finish();
    const idStart = tableStart + kvTable.size;
    const idTable = encodeLookupTable(ids, idStart, compress);
    // encodeLookupTable puts the index right after the id blocks; the header goes between them.
    const index = idTable.bytes.pop()!;
    const headerStart = idTable.indexStart;
    const header = new Uint8Array(XATTR_HEADER_SIZE);
    const hv = new DataView(header.buffer);
    setU64(hv, 0, tableStart);
    hv.setUint32(8, this.sets.length, true);
    return {
      bytes: [...kvTable.blocks, ...idTable.bytes, header, index],
      headerStart,
      end: headerStart + header.length + index.length,
    };
  }
}
