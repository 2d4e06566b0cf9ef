/**
 * Hostile input for the reader.
 *
 * - `buildEvilImage` hand-assembles SquashFS images from a node graph with
 *   every table stored uncompressed, so a test can make what no writer
 *   would: directory loops, names with "/" or "..", unsorted or duplicate
 *   listings, indexes out of range, absurd sizes and counts.
 * - `mutationsArb` / `applyMutations`: a fast-check mutation fuzzer (flip or
 *   overwrite 1-8 bytes, anywhere or aimed at the superblock and the tables).
 * - `exerciseImage` opens an image and touches everything (walk, stat,
 *   readdir, readlink, readFile, readChunks, xattrs), recording any error
 *   that is not a SquashfsError and the peak ArrayBuffer memory seen.
 * - `IsolatedReader` runs cases in a worker thread with a watchdog, so a
 *   reader stuck in a synchronous loop is caught (and the worker replaced)
 *   instead of hanging the test run.
 *
 * The reader is passed in (`ReaderApi`), never imported here, so the same
 * code runs against src/ (the test suite, bundled by esbuild) and against
 * dist/ (bench/fuzz.mjs).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { DATA_UNCOMPRESSED, Flag, InodeType, NO_INDEX } from '../../src/squashfs/constants.js';
import { encodeInode } from '../../src/squashfs/inode/encode.js';
import { BASIC_TYPE, type Inode } from '../../src/squashfs/inode/inode.js';
import { encodeLookupTable, type MetadataPosition, MetadataWriter } from '../../src/squashfs/metadata.js';
import { encodeSuperblock, SUPERBLOCK_FIELDS, type Superblock } from '../../src/squashfs/superblock.js';
import { XattrTableBuilder, type Xattr } from '../../src/squashfs/xattr-table.js';
import type { RandomAccessSource } from '../../src/squashfs/reader/types.js';
import { loadEsbuild, nodeBundleOptions } from './child.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../..');

// ---------------------------------------------------------------------------
// Hand-assembled images
// ---------------------------------------------------------------------------

const te = new TextEncoder();
export const bytesOf = (s: string | Uint8Array): Uint8Array => (typeof s === 'string' ? te.encode(s) : s);

export interface NodeCommon {
  mode?: number;
  uidIndex?: number;
  gidIndex?: number;
  mtime?: number;
  /** Inode number (default: index in `nodes` + 1). */
  number?: number;
  xattrs?: Xattr[];
  /** Fields forced into the inode after layout (e.g. { fileSize: 2 ** 40 }). */
  override?: Record<string, unknown>;
  /** Force the extended inode type. */
  extended?: boolean;
}

export interface EvilEntry {
  name: string | Uint8Array;
  /** Index of the node the entry names. */
  node: number;
  /** Basic type written in the entry (default: the node's). */
  type?: number;
  /** Inode number written in the entry (default: the node's). */
  inodeNumber?: number;
  /** Inode position written in the entry (default: the node's). */
  position?: MetadataPosition;
}

export type EvilNode =
  | (NodeCommon & { kind: 'dir'; entries: EvilEntry[]; /** Replaces the encoded listing. */ rawListing?: Uint8Array })
  | (NodeCommon & { kind: 'file'; content: Uint8Array; /** Store the tail in a fragment (default true). */ fragment?: boolean })
  | (NodeCommon & { kind: 'symlink'; target: string | Uint8Array })
  | (NodeCommon & { kind: 'fifo' | 'socket' })
  | (NodeCommon & { kind: 'char-device' | 'block-device'; device: number });

export interface EvilSpec {
  /** nodes[0] is the root directory. */
  nodes: EvilNode[];
  blockSize?: number;
  /** The id table (default [0]). */
  ids?: number[];
  /** Write an export table (default false). */
  exportTable?: boolean;
  /** Superblock fields forced after layout. */
  superblock?: Partial<Superblock>;
  /** Raw fragment table entries appended after the real ones: [start, size word]. */
  extraFragments?: [number, number][];
}

export interface EvilLayout {
  inodeTableStart: number;
  directoryTableStart: number;
  fragmentTableStart: number;
  idTableStart: number;
  /** Absolute offset of each node's inode (uncompressed tables: block + 2 + offset). */
  inodeOffsets: number[];
  /** Absolute offset of each directory node's listing. */
  listingOffsets: (number | undefined)[];
  /** Each node's inode position in the inode table. */
  positions: MetadataPosition[];
  /** Each node's inode number. */
  numbers: number[];
  superblock: Superblock;
}

const identity = (b: Uint8Array) => b;

/** The basic inode type of a node kind. */
const basicType = (kind: EvilNode['kind']): number => BASIC_TYPE[kind === 'dir' ? 'directory' : kind];

export interface RawListingEntry {
  name: Uint8Array;
  position: MetadataPosition;
  inodeNumber: number;
  type: number;
}

/**
 * A directory listing, written the way mksquashfs does (a new header every
 * 256 entries, on a change of inode block, or when the s16 delta overflows),
 * without checking the names or their order.
 */
export function encodeListing(entries: RawListingEntry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  let i = 0;
  while (i < entries.length) {
    const first = entries[i]!;
    let count = 1;
    while (i + count < entries.length && count < 256) {
      const next = entries[i + count]!;
      const delta = next.inodeNumber - first.inodeNumber;
      if (next.position.block !== first.position.block || delta < -32768 || delta > 32767) break;
      count++;
    }
    const h = new Uint8Array(12);
    const hv = new DataView(h.buffer);
    hv.setUint32(0, count - 1, true);
    hv.setUint32(4, first.position.block, true);
    hv.setUint32(8, first.inodeNumber, true);
    parts.push(h);
    for (let k = 0; k < count; k++) {
      const e = entries[i + k]!;
      const b = new Uint8Array(8 + e.name.length);
      const bv = new DataView(b.buffer);
      bv.setUint16(0, e.position.offset, true);
      bv.setInt16(2, e.inodeNumber - first.inodeNumber, true);
      bv.setUint16(4, e.type, true);
      bv.setUint16(6, (e.name.length - 1) & 0xffff, true);
      b.set(e.name, 8);
      parts.push(b);
    }
    i += count;
  }
  return concat(parts);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const isZero = (b: Uint8Array) => b.every((x) => x === 0);

/**
 * Assembles an image: superblock, data blocks, one fragment block, then the
 * inode, directory, fragment, export, id and xattr tables, every block
 * stored uncompressed (gzip named as the compressor). Padded to 4 KiB.
 */
export function buildEvilImage(spec: EvilSpec): { bytes: Uint8Array; layout: EvilLayout } {
  const bs = spec.blockSize ?? 4096;
  const nodes = spec.nodes;
  const numbers = nodes.map((n, i) => n.number ?? i + 1);
  const ids = spec.ids ?? [0];

  // --- data: blocks, and tails in one fragment block --------------------------------
  const data: Uint8Array[] = [];
  let dataPos = 96;
  const fileLayout = new Map<number, { blocksStart: number; blockSizes: Uint32Array; fragmentIndex: number; fragmentOffset: number; sparse: number }>();
  const fragmentParts: Uint8Array[] = [];
  let fragmentFill = 0;
  nodes.forEach((n, i) => {
    if (n.kind !== 'file') return;
    const useFragment = (n.fragment ?? true) && n.content.length % bs !== 0;
    const full = useFragment ? Math.floor(n.content.length / bs) : Math.ceil(n.content.length / bs);
    const words: number[] = [];
    const blocksStart = dataPos;
    let sparse = 0;
    for (let b = 0; b < full; b++) {
      const chunk = n.content.subarray(b * bs, Math.min((b + 1) * bs, n.content.length));
      if (isZero(chunk)) {
        words.push(0);
        sparse += chunk.length;
      } else {
        words.push(chunk.length | DATA_UNCOMPRESSED);
        data.push(chunk);
        dataPos += chunk.length;
      }
    }
    let fragmentIndex = NO_INDEX;
    let fragmentOffset = 0;
    if (useFragment) {
      const tail = n.content.subarray(full * bs);
      fragmentIndex = 0;
      fragmentOffset = fragmentFill;
      fragmentParts.push(tail);
      fragmentFill += tail.length;
      if (fragmentFill > bs) throw new Error('evil image: tails exceed one fragment block');
    }
    fileLayout.set(i, { blocksStart, blockSizes: Uint32Array.from(words), fragmentIndex, fragmentOffset, sparse });
  });
  const fragments: [number, number][] = [];
  if (fragmentFill > 0) {
    fragments.push([dataPos, fragmentFill | DATA_UNCOMPRESSED]);
    data.push(...fragmentParts);
    dataPos += fragmentFill;
  }
  fragments.push(...(spec.extraFragments ?? []));

  // --- xattrs ----------------------------------------------------------------------
  const xattrBuilder = new XattrTableBuilder();
  const xattrIndexes = nodes.map((n) => (n.xattrs?.length ? xattrBuilder.add(n.xattrs, `node`) ?? NO_INDEX : NO_INDEX));

  // --- parents ---------------------------------------------------------------------
  const parentOf = new Map<number, number>();
  nodes.forEach((n, i) => {
    if (n.kind !== 'dir') return;
    for (const e of n.entries) if (!parentOf.has(e.node) && e.node !== 0) parentOf.set(e.node, i);
  });
  const refCount = new Map<number, number>();
  nodes.forEach((n) => {
    if (n.kind === 'dir') for (const e of n.entries) refCount.set(e.node, (refCount.get(e.node) ?? 0) + 1);
  });

  // --- inodes (two passes: sizes do not depend on listing positions) ------------------
  const listingPos: { block: number; offset: number; size: number }[] = [];
  const inodeOf = (i: number): Inode => {
    const n = nodes[i]!;
    const ext = n.extended || xattrIndexes[i] !== NO_INDEX;
    const header = {
      permissions: n.mode ?? (n.kind === 'dir' ? 0o755 : n.kind === 'symlink' ? 0o777 : 0o644),
      uidIndex: n.uidIndex ?? 0,
      gidIndex: n.gidIndex ?? 0,
      mtime: n.mtime ?? 1_700_000_000,
      inodeNumber: numbers[i]!,
    };
    const type = (basicType(n.kind) + (ext ? 7 : 0)) as InodeType;
    let inode: Inode;
    switch (n.kind) {
      case 'dir': {
        const l = listingPos[i] ?? { block: 0, offset: 0, size: 0 };
        const subdirs = n.entries.filter((e) => nodes[e.node]?.kind === 'dir').length;
        inode = {
          ...header,
          kind: 'directory',
          type,
          startBlock: l.block,
          blockOffset: l.offset,
          linkCount: 2 + subdirs,
          fileSize: l.size + 3,
          parentInode: i === 0 ? nodes.length + 1 : numbers[parentOf.get(i) ?? 0]!,
          xattrIndex: xattrIndexes[i]!,
          index: [],
        };
        break;
      }
      case 'file': {
        const f = fileLayout.get(i)!;
        const links = refCount.get(i) ?? 1;
        const t = (links > 1 || f.sparse > 0 ? InodeType.EXT_FILE : type) as InodeType;
        inode = { ...header, kind: 'file', type: t, ...f, fileSize: n.content.length, linkCount: links, xattrIndex: xattrIndexes[i]! };
        break;
      }
      case 'symlink':
        inode = { ...header, kind: 'symlink', type, linkCount: refCount.get(i) ?? 1, target: bytesOf(n.target), xattrIndex: xattrIndexes[i]! };
        break;
      case 'char-device':
      case 'block-device':
        inode = { ...header, kind: n.kind, type, linkCount: 1, device: n.device, xattrIndex: xattrIndexes[i]! };
        break;
      default:
        inode = { ...header, kind: n.kind, type, linkCount: 1, xattrIndex: xattrIndexes[i]! };
    }
    return { ...inode, ...(n.override ?? {}) } as Inode;
  };

  const positions: MetadataPosition[] = [];
  {
    const w = new MetadataWriter(identity);
    nodes.forEach((_, i) => {
      positions.push(w.position);
      w.write(encodeInode(inodeOf(i)));
    });
  }

  // --- directory table ---------------------------------------------------------------
  const dirWriter = new MetadataWriter(identity);
  nodes.forEach((n, i) => {
    if (n.kind !== 'dir') return;
    const start = dirWriter.position;
    const listing =
      n.rawListing ??
      encodeListing(
        n.entries.map((e) => ({
          name: bytesOf(e.name),
          position: e.position ?? positions[e.node]!,
          inodeNumber: e.inodeNumber ?? numbers[e.node]!,
          type: e.type ?? basicType(nodes[e.node]!.kind),
        })),
      );
    if (listing.length) dirWriter.write(listing);
    listingPos[i] = { block: start.block, offset: start.offset, size: listing.length };
  });

  const inodeWriter = new MetadataWriter(identity);
  nodes.forEach((_, i) => inodeWriter.write(encodeInode(inodeOf(i))));
  const inodeTable = inodeWriter.finish();
  const dirTable = dirWriter.finish();

  // --- tables ------------------------------------------------------------------------
  const parts: Uint8Array[] = [new Uint8Array(96), ...data];
  let pos = dataPos;
  const inodeTableStart = pos;
  parts.push(...inodeTable.blocks);
  pos += inodeTable.size;
  const directoryTableStart = pos;
  parts.push(...dirTable.blocks);
  pos += dirTable.size;
  if (dirTable.size === 0) {
    // An image whose directories are all empty still needs a table start < its end.
    parts.push(new Uint8Array([0x00, 0x80]));
    pos += 2;
  }

  const fragPayload = new Uint8Array(fragments.length * 16);
  const fv = new DataView(fragPayload.buffer);
  fragments.forEach(([start, size], k) => {
    fv.setBigUint64(k * 16, BigInt(start), true);
    fv.setUint32(k * 16 + 8, size, true);
  });
  let fragmentTableStart = pos;
  if (fragments.length) {
    const t = encodeLookupTable(fragPayload, pos, identity);
    parts.push(...t.bytes);
    fragmentTableStart = t.indexStart;
    pos = t.end;
  }

  let exportTableStart: number | undefined;
  if (spec.exportTable) {
    const refs = new Uint8Array(nodes.length * 8);
    const rv = new DataView(refs.buffer);
    nodes.forEach((_, i) => {
      const n = numbers[i]!;
      if (n >= 1 && n <= nodes.length) rv.setBigUint64((n - 1) * 8, (BigInt(positions[i]!.block) << 16n) | BigInt(positions[i]!.offset), true);
    });
    const t = encodeLookupTable(refs, pos, identity);
    parts.push(...t.bytes);
    exportTableStart = t.indexStart;
    pos = t.end;
  }

  const idPayload = new Uint8Array(ids.length * 4);
  const iv = new DataView(idPayload.buffer);
  ids.forEach((id, k) => iv.setUint32(k * 4, id, true));
  const idT = encodeLookupTable(idPayload, pos, identity);
  parts.push(...idT.bytes);
  const idTableStart = idT.indexStart;
  pos = idT.end;

  let xattrIdTableStart: number | undefined;
  if (xattrBuilder.count > 0) {
    const t = xattrBuilder.encode(pos, identity);
    parts.push(...t.bytes);
    xattrIdTableStart = t.headerStart;
    pos = t.end;
  }

  const bytesUsed = pos;
  const sb: Superblock = {
    inodeCount: nodes.length,
    modificationTime: 1_700_000_000,
    blockSize: bs,
    fragmentEntryCount: fragments.length,
    compressionId: 1,
    blockLog: Math.log2(bs),
    flags:
      Flag.UNCOMPRESSED_INODES |
      Flag.UNCOMPRESSED_DATA |
      Flag.UNCOMPRESSED_FRAGMENTS |
      Flag.UNCOMPRESSED_XATTRS |
      Flag.UNCOMPRESSED_IDS |
      (xattrIdTableStart === undefined ? Flag.NO_XATTRS : 0) |
      (exportTableStart === undefined ? 0 : Flag.EXPORTABLE),
    idCount: ids.length,
    versionMajor: 4,
    versionMinor: 0,
    rootInodeRef: (BigInt(positions[0]!.block) << 16n) | BigInt(positions[0]!.offset),
    bytesUsed,
    idTableStart,
    xattrIdTableStart,
    inodeTableStart,
    directoryTableStart,
    fragmentTableStart,
    exportTableStart,
    ...spec.superblock,
  };
  const padded = Math.ceil(bytesUsed / 4096) * 4096;
  const bytes = new Uint8Array(Math.max(padded, 4096));
  let o = 0;
  for (const p of parts) {
    bytes.set(p, o);
    o += p.length;
  }
  bytes.set(encodeSuperblockLoose(sb), 0);
  const abs = (base: number, p: MetadataPosition) => base + p.block + 2 + p.offset;
  return {
    bytes,
    layout: {
      inodeTableStart,
      directoryTableStart,
      fragmentTableStart,
      idTableStart,
      inodeOffsets: positions.map((p) => abs(inodeTableStart, p)),
      listingOffsets: nodes.map((n, i) => (n.kind === 'dir' && listingPos[i]!.size > 0 ? abs(directoryTableStart, listingPos[i]!) : undefined)),
      positions,
      numbers,
      superblock: sb,
    },
  };
}

/** encodeSuperblock, but fields may be anything a test forces (u64 fields as given, wrapped to 64 bits). */
function encodeSuperblockLoose(sb: Superblock): Uint8Array {
  const safe = { ...sb };
  const big: [keyof Superblock, number][] = [];
  for (const [k, off] of [
    ['bytesUsed', 40],
    ['idTableStart', 48],
    ['inodeTableStart', 64],
    ['directoryTableStart', 72],
    ['fragmentTableStart', 80],
  ] as const) {
    const v = sb[k] as number;
    if (!Number.isSafeInteger(v) || v < 0) {
      big.push([k, off]);
      (safe as Record<string, unknown>)[k] = 0;
    }
  }
  const bytes = encodeSuperblock(safe);
  const view = new DataView(bytes.buffer);
  for (const [k, off] of big) view.setBigUint64(off, BigInt.asUintN(64, BigInt(Math.trunc(Number(sb[k])))), true);
  return bytes;
}

/** Little-endian writes into a copy or in place. */
export function patchU16(b: Uint8Array, at: number, v: number): void {
  new DataView(b.buffer, b.byteOffset).setUint16(at, v, true);
}
export function patchU32(b: Uint8Array, at: number, v: number): void {
  new DataView(b.buffer, b.byteOffset).setUint32(at, v >>> 0, true);
}
export function patchU64(b: Uint8Array, at: number, v: bigint): void {
  new DataView(b.buffer, b.byteOffset).setBigUint64(at, BigInt.asUintN(64, v), true);
}

/** Superblock field offsets. */
export const SB = SUPERBLOCK_FIELDS;

// ---------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------

export type Mutation =
  | { at: number; op: 'xor'; value: number }
  | { at: number; op: 'set'; value: number }
  /** Four bytes, little-endian. */
  | { at: number; op: 'u32'; value: number };

export function applyMutations(image: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  const out = image.slice();
  for (const m of mutations) {
    if (m.at < 0 || m.at >= out.length) continue;
    if (m.op === 'xor') out[m.at]! ^= m.value;
    else if (m.op === 'set') out[m.at] = m.value;
    else for (let k = 0; k < 4 && m.at + k < out.length; k++) out[m.at + k] = (m.value >>> (8 * k)) & 0xff;
  }
  return out;
}

export interface Region {
  name: string;
  start: number;
  end: number;
}

/** The superblock and the tables as the (unmutated) superblock places them. */
export function imageRegions(image: Uint8Array): Region[] {
  const v = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const u64 = (o: number) => {
    const x = v.getBigUint64(o, true);
    return x >= BigInt(image.length) ? undefined : Number(x);
  };
  const used = Math.min(u64(SB.bytesUsed) ?? image.length, image.length);
  const starts: [string, number | undefined][] = [
    ['inodes', u64(SB.inodeTableStart)],
    ['directories', u64(SB.directoryTableStart)],
    ['fragments', u64(SB.fragmentTableStart)],
    ['exports', u64(SB.exportTableStart)],
    ['ids', u64(SB.idTableStart)],
    ['xattrs', u64(SB.xattrIdTableStart)],
  ];
  const sorted = starts.filter((s): s is [string, number] => s[1] !== undefined).sort((a, b) => a[1] - b[1]);
  const regions: Region[] = [{ name: 'superblock', start: 0, end: 96 }];
  const firstTable = sorted[0]?.[1] ?? used;
  if (firstTable > 96) regions.push({ name: 'data', start: 96, end: firstTable });
  sorted.forEach(([name, start], i) => {
    const end = i + 1 < sorted.length ? sorted[i + 1]![1] : used;
    // A lookup table's superblock pointer is its index; include the blocks before it (up to 8 KiB).
    regions.push({ name, start: Math.max(0, start - (name === 'inodes' || name === 'directories' ? 0 : 64)), end: Math.max(end, start + 8) });
  });
  return regions.map((r) => ({ ...r, start: Math.min(r.start, image.length - 1), end: Math.min(Math.max(r.end, r.start + 1), image.length) }));
}

const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff];
const INTERESTING_U32 = [0, 1, 2, 3, 0xff, 0x100, 0x1000, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

/** 1-8 mutations: anywhere (1/3), in the superblock (1/3) or in a table (1/3). */
export function mutationsArb(image: Uint8Array): fc.Arbitrary<Mutation[]> {
  const regions = imageRegions(image);
  const tables = regions.filter((r) => r.name !== 'data');
  const anywhere = fc.integer({ min: 0, max: image.length - 1 });
  const inRegion = fc
    .constantFrom(...tables)
    .chain((r) => fc.integer({ min: r.start, max: Math.max(r.start, r.end - 1) }));
  const superblock = fc.integer({ min: 0, max: 95 });
  const at = fc.oneof(anywhere, superblock, inRegion);
  const mutation: fc.Arbitrary<Mutation> = fc.oneof(
    fc.record({ at, op: fc.constant('xor' as const), value: fc.integer({ min: 0, max: 7 }).map((b) => 1 << b) }),
    fc.record({ at, op: fc.constant('set' as const), value: fc.oneof(fc.constantFrom(...INTERESTING_BYTES), fc.integer({ min: 0, max: 255 })) }),
    fc.record({
      at: at.map((a) => a & ~3),
      op: fc.constant('u32' as const),
      value: fc.oneof(fc.constantFrom(...INTERESTING_U32), fc.integer({ min: 0, max: 0xffffffff }), fc.constant(image.length), fc.constant(image.length - 1)),
    }),
  );
  return fc.array(mutation, { minLength: 1, maxLength: 8 });
}

/** The mutations of one fuzz case, reproducibly from a seed (bench/fuzz.mjs). */
export function mutationsForSeed(image: Uint8Array, seed: number): Mutation[] {
  return fc.sample(mutationsArb(image), { seed, numRuns: 1 })[0]!;
}

// ---------------------------------------------------------------------------
// Exercising an image
// ---------------------------------------------------------------------------

/** What the exerciser needs of the reader (src/ or dist/). */
export interface ReaderApi {
  SquashfsImage: {
    open(source: RandomAccessSource, options?: { codecs?: unknown }): Promise<ImageLike>;
  };
  SquashfsError: new (...args: never[]) => Error;
  bytesSource(bytes: Uint8Array): RandomAccessSource;
  /** A codec registry for open() (e.g. nodeCodecs()). */
  codecs?: () => unknown;
  unpackImage?: (image: ImageLike, dir: string, options?: { force?: boolean; onWarning?: (m: string) => void }) => Promise<unknown>;
}

/** The subset of SquashfsImage used here. */
export interface ImageLike {
  info(): unknown;
  stat(p: string | Uint8Array): Promise<{ type: string; size: number; hasXattrs: boolean }>;
  readdir(p: string | Uint8Array): Promise<unknown[]>;
  readlink(p: string | Uint8Array): Promise<Uint8Array>;
  readFile(p: string | Uint8Array): Promise<Uint8Array>;
  readChunks(p: string | Uint8Array): AsyncIterable<{ offset: number; bytes?: Uint8Array; hole?: number }>;
  xattrs(p: string | Uint8Array): Promise<unknown[]>;
  walk(): AsyncIterable<{ path: string; names: Uint8Array[]; stat: { type: string; size: number; hasXattrs: boolean } }>;
  close(): Promise<void>;
}

export interface ErrorInfo {
  isSquashfsError: boolean;
  name: string;
  code?: string;
  message: string;
  stack?: string;
}

export function describeError(e: unknown, api?: Pick<ReaderApi, 'SquashfsError'>): ErrorInfo {
  const err = e as { name?: unknown; code?: unknown; message?: unknown; stack?: unknown };
  return {
    isSquashfsError: api ? e instanceof api.SquashfsError : err?.name === 'SquashfsError',
    name: String(err?.name ?? typeof e),
    code: typeof err?.code === 'string' ? err.code : undefined,
    message: String(err?.message ?? e),
    stack: typeof err?.stack === 'string' ? err.stack.split('\n').slice(0, 8).join('\n') : undefined,
  };
}

export interface Failure {
  /** What was being done: open, walk, stat, readFile, ..., or "allocation". */
  op: string;
  path?: string;
  error: ErrorInfo;
}

export interface ExerciseOutcome {
  opened: boolean;
  walkCompleted: boolean;
  entries: number;
  /** Errors that are not SquashfsErrors (the bugs). */
  failures: Failure[];
  /** SquashfsError codes seen, by op. */
  squashfsErrors: { op: string; code?: string; message: string }[];
  /** Peak growth of process.memoryUsage().arrayBuffers seen during the run. */
  peakArrayBufferGrowth: number;
  /** Bytes returned by readFile, in total. */
  fileBytes: number;
  /** Bytes and holes yielded by readChunks, by path. */
  chunkTotals: Record<string, number>;
}

export interface ExerciseOptions {
  /** Allocation above this growth is a failure (default 256 MiB). */
  allocationLimit?: number;
  /** Stop after this many entries (default 10000). */
  maxEntries?: number;
  /** readFile only files up to this size; larger ones through readChunks (default 64 MiB). */
  readFileLimit?: number;
  /** Paths (as given to stat etc.) to try in addition to the walk. */
  extraPaths?: (string | Uint8Array)[];
}

/** The reader's own bytesSource, sampling memory on every read. */
function samplingSource(api: ReaderApi, bytes: Uint8Array, onRead: () => void): RandomAccessSource {
  const inner = api.bytesSource(bytes);
  return {
    size: inner.size,
    read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
      onRead();
      return inner.read(offset, length, signal);
    },
  };
}

const joinNames = (names: Uint8Array[]): Uint8Array => {
  const parts: Uint8Array[] = [new Uint8Array([0x2f])];
  names.forEach((n, i) => {
    if (i) parts.push(new Uint8Array([0x2f]));
    parts.push(n);
  });
  return concat(parts);
};

/**
 * Opens `bytes` and touches everything. Records every non-SquashfsError
 * (and allocation beyond the limit) as a failure; SquashfsErrors are fine.
 */
export async function exerciseImage(api: ReaderApi, bytes: Uint8Array, opts: ExerciseOptions = {}): Promise<ExerciseOutcome> {
  const limit = opts.allocationLimit ?? 256 * 1024 * 1024;
  const maxEntries = opts.maxEntries ?? 10_000;
  const readFileLimit = opts.readFileLimit ?? 64 * 1024 * 1024;
  const base = process.memoryUsage().arrayBuffers;
  let peak = 0;
  const sample = () => {
    const grown = process.memoryUsage().arrayBuffers - base;
    if (grown > peak) peak = grown;
  };
  const out: ExerciseOutcome = { opened: false, walkCompleted: false, entries: 0, failures: [], squashfsErrors: [], peakArrayBufferGrowth: 0, fileBytes: 0, chunkTotals: {} };
  const record = (op: string, p: string | undefined, e: unknown) => {
    const info = describeError(e, api);
    if (info.isSquashfsError) out.squashfsErrors.push({ op, code: info.code, message: info.message });
    else out.failures.push({ op, path: p, error: info });
  };
  const attempt = async <T>(op: string, p: string | undefined, fn: () => Promise<T>): Promise<T | undefined> => {
    try {
      const r = await fn();
      sample();
      return r;
    } catch (e) {
      sample();
      record(op, p, e);
      return undefined;
    }
  };
  const source = samplingSource(api, bytes, sample);
  const image = await attempt('open', undefined, () => api.SquashfsImage.open(source, api.codecs ? { codecs: api.codecs() } : {}));
  if (!image) {
    out.peakArrayBufferGrowth = peak;
    if (peak > limit) out.failures.push({ op: 'allocation', error: allocationError(peak, limit) });
    return out;
  }
  out.opened = true;
  await attempt('info', undefined, async () => image.info());
  const visit = async (p: Uint8Array, shown: string, type: string | undefined, size: number, hasXattrs: boolean) => {
    await attempt('stat', shown, () => image.stat(p));
    if (hasXattrs) await attempt('xattrs', shown, () => image.xattrs(p));
    if (type === 'directory') await attempt('readdir', shown, () => image.readdir(p));
    else if (type === 'symlink') await attempt('readlink', shown, () => image.readlink(p));
    else if (type === 'file') {
      if (size <= readFileLimit) {
        const data = await attempt('readFile', shown, () => image.readFile(p));
        if (data) out.fileBytes += data.length;
      }
      await attempt('readChunks', shown, async () => {
        let n = 0;
        for await (const c of image.readChunks(p)) {
          n += c.bytes ? c.bytes.length : c.hole ?? 0;
          sample();
        }
        out.chunkTotals[shown] = n;
      });
    }
  };
  await attempt('walk', undefined, async () => {
    for await (const e of image.walk()) {
      sample();
      out.entries++;
      await visit(joinNames(e.names), '/' + e.path, e.stat.type, e.stat.size, e.stat.hasXattrs);
      if (out.entries >= maxEntries) break;
    }
    out.walkCompleted = true;
  });
  for (const p of opts.extraPaths ?? []) {
    const st = await attempt('stat', String(p), () => image.stat(p));
    if (st) await visit(bytesOf(p), String(p), st.type, st.size, st.hasXattrs);
  }
  await attempt('close', undefined, () => image.close());
  out.peakArrayBufferGrowth = peak;
  if (peak > limit) out.failures.push({ op: 'allocation', error: allocationError(peak, limit) });
  return out;
}

function allocationError(peak: number, limit: number): ErrorInfo {
  return { isSquashfsError: false, name: 'Allocation', message: `ArrayBuffer memory grew by ${(peak / 2 ** 20).toFixed(1)} MiB (limit ${(limit / 2 ** 20).toFixed(0)} MiB)` };
}

// ---------------------------------------------------------------------------
// Unpacking a hostile image
// ---------------------------------------------------------------------------

export interface UnpackOutcome {
  ok: boolean;
  error?: ErrorInfo;
  warnings: string[];
}

export async function unpackBytes(api: ReaderApi, bytes: Uint8Array, dir: string, force: boolean): Promise<UnpackOutcome> {
  const warnings: string[] = [];
  try {
    if (!api.unpackImage) throw new Error('this reader has no unpackImage');
    const image = await api.SquashfsImage.open(samplingSource(api, bytes, () => undefined), api.codecs ? { codecs: api.codecs() } : {});
    try {
      await api.unpackImage(image, dir, { force, onWarning: (m) => warnings.push(m) });
    } finally {
      await image.close();
    }
    return { ok: true, warnings };
  } catch (e) {
    return { ok: false, error: describeError(e, api), warnings };
  }
}

/**
 * A snapshot of a directory tree (names, types, sizes, contents' first
 * bytes, symlink targets) to check that it did not change.
 */
export async function snapshotTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const visit = async (abs: string, rel: string) => {
    let st;
    try {
      st = await fsp.lstat(abs);
    } catch {
      out.push(`${rel}: <absent>`);
      return;
    }
    if (st.isDirectory()) {
      out.push(`${rel}/ mode=${(st.mode & 0o7777).toString(8)}`);
      const names = (await fsp.readdir(abs)).sort();
      for (const n of names) await visit(path.join(abs, n), `${rel}/${n}`);
    } else if (st.isSymbolicLink()) out.push(`${rel} -> ${await fsp.readlink(abs)}`);
    else if (st.isFile()) {
      // The first 64 bytes and a digest-free size check: files may be huge and sparse.
      const fh = await fsp.open(abs, 'r');
      const head = Buffer.alloc(64);
      const { bytesRead } = await fh.read(head, 0, 64, 0);
      await fh.close();
      out.push(`${rel} size=${st.size} head=${head.subarray(0, bytesRead).toString('hex')} mode=${(st.mode & 0o7777).toString(8)}`);
    }
    else out.push(`${rel} special mode=${st.mode.toString(8)}`);
  };
  await visit(dir, '');
  return out;
}

// ---------------------------------------------------------------------------
// Isolation: a worker thread with a watchdog
// ---------------------------------------------------------------------------

export type Task =
  | { kind: 'exercise'; bytes: Uint8Array; options?: ExerciseOptions }
  | { kind: 'unpack'; bytes: Uint8Array; dir: string; force: boolean };

export type TaskResult =
  | { kind: 'exercise'; outcome: ExerciseOutcome }
  | { kind: 'unpack'; outcome: UnpackOutcome }
  | { kind: 'crash'; error: ErrorInfo }
  | { kind: 'hang'; ms: number };

/** Installs the worker's message loop (runs inside the worker). */
export function workerMain(api: ReaderApi, port: { on(ev: 'message', fn: (m: { id: number; task: Task }) => void): void; postMessage(m: unknown): void }): void {
  port.on('message', ({ id, task }) => {
    const run = async (): Promise<TaskResult> => {
      if (task.kind === 'exercise') return { kind: 'exercise', outcome: await exerciseImage(api, task.bytes, task.options) };
      return { kind: 'unpack', outcome: await unpackBytes(api, task.bytes, task.dir, task.force) };
    };
    run().then(
      (result) => port.postMessage({ id, result }),
      (e) => port.postMessage({ id, result: { kind: 'crash', error: describeError(e, api) } }),
    );
  });
}

/**
 * Bundles the worker: this file's `workerMain` with the reader from src/
 * ('src') or from dist/ ('dist'), or with `custom` code that defines the
 * bindings SquashfsImage, SquashfsError, bytesSource, nodeCodecs and
 * unpackImage (to check the harness itself). Returns the .mjs path.
 */
export async function bundleWorker(
  outDir: string,
  from: 'src' | 'dist' | { custom: string; name: string } = 'src',
  /** The repository (given by bench/fuzz.mjs, which runs this file bundled elsewhere). */
  repo: string = repoRoot,
): Promise<string> {
  const repoRoot = repo;
  const here = path.join(repo, 'test/helpers');
  const outfile = path.join(outDir, `reader-worker-${typeof from === 'string' ? from : from.name}.mjs`);
  const fuzz = JSON.stringify(path.join(here, 'fuzz.ts'));
  const imports =
    typeof from === 'object'
      ? from.custom
      : from === 'src'
      ? `import { SquashfsImage } from ${JSON.stringify(path.join(repoRoot, 'src/squashfs/reader/image.ts'))};
import { SquashfsError } from ${JSON.stringify(path.join(repoRoot, 'src/errors.ts'))};
import { bytesSource } from ${JSON.stringify(path.join(repoRoot, 'src/squashfs/reader/source.ts'))};
import { nodeCodecs } from ${JSON.stringify(path.join(repoRoot, 'src/node/codecs.ts'))};
import { unpackImage } from ${JSON.stringify(path.join(repoRoot, 'src/node/unpack.ts'))};`
      : `import { SquashfsImage, SquashfsError, bytesSource, nodeCodecs, unpackImage } from ${JSON.stringify(path.join(repoRoot, 'dist/node.js'))};`;
  await loadEsbuild(path.join(repo, 'package.json')).build({
    ...nodeBundleOptions,
    stdin: {
      contents: `${imports}
import { parentPort } from 'node:worker_threads';
import { workerMain } from ${fuzz};
workerMain({ SquashfsImage, SquashfsError, bytesSource, codecs: nodeCodecs, unpackImage }, parentPort);
`,
      resolveDir: here,
      loader: 'ts',
      sourcefile: 'reader-worker.ts',
    },
    outfile,
    // dist/ stays external so the worker runs the built package itself.
    external: from === 'dist' ? [path.join(repoRoot, 'dist/*')] : [],
  });
  return outfile;
}

/** Runs tasks one at a time in a worker; a task that takes too long is a hang (the worker is replaced). */
export class IsolatedReader {
  private worker: Worker | undefined;
  private nextId = 1;
  hangs = 0;

  constructor(
    private readonly script: string,
    private readonly resourceLimits?: { maxOldGenerationSizeMb?: number },
  ) {}

  private spawn(): Worker {
    this.worker ??= new Worker(this.script, { resourceLimits: this.resourceLimits });
    this.worker.unref();
    return this.worker;
  }

  run(task: Task, timeoutMs: number): Promise<TaskResult> {
    const worker = this.spawn();
    const id = this.nextId++;
    return new Promise<TaskResult>((resolve) => {
      const started = Date.now();
      let timer: NodeJS.Timeout | undefined;
      const done = (r: TaskResult) => {
        clearTimeout(timer);
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
        resolve(r);
      };
      const onMessage = (m: { id: number; result: TaskResult }) => {
        if (m.id === id) done(m.result);
      };
      const onError = (e: unknown) => {
        this.worker = undefined;
        done({ kind: 'crash', error: describeError(e) });
      };
      const onExit = (code: number) => {
        this.worker = undefined;
        done({ kind: 'crash', error: { isSquashfsError: false, name: 'WorkerExit', message: `worker exited with code ${code}` } });
      };
      timer = setTimeout(() => {
        this.hangs++;
        this.worker = undefined;
        worker.off('exit', onExit);
        void worker.terminate();
        done({ kind: 'hang', ms: Date.now() - started });
      }, timeoutMs);
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
      worker.postMessage({ id, task });
    });
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    await w?.terminate();
  }
}

/**
 * The codes a reader may give for a bad image: CORRUPT_IMAGE, CODEC_ERROR,
 * UNSUPPORTED_COMPRESSOR, NOT_FOUND (a path that a damaged listing no longer
 * holds), TOO_LARGE (readFile of a file beyond what one buffer holds).
 */
export const READER_ERROR_CODES = ['CORRUPT_IMAGE', 'CODEC_ERROR', 'UNSUPPORTED_COMPRESSOR', 'NOT_FOUND', 'TOO_LARGE'];

/** One line describing a task result that is a failure, or undefined when it is fine. */
export function failureOf(result: TaskResult): string | undefined {
  switch (result.kind) {
    case 'hang':
      return `hang: no answer after ${result.ms} ms`;
    case 'crash':
      return `crash: ${result.error.name}: ${result.error.message}`;
    case 'exercise': {
      const odd = result.outcome.squashfsErrors.find((e) => !READER_ERROR_CODES.includes(e.code ?? ''));
      if (odd && !result.outcome.failures.length) return `${odd.op}: SquashfsError with code ${odd.code}: ${odd.message}`;
      return result.outcome.failures.length
        ? result.outcome.failures
            .slice(0, 5)
            .map((f) => `${f.op}${f.path ? ` ${f.path}` : ''}: ${f.error.name}: ${f.error.message}${f.error.stack ? `\n      ${f.error.stack.split('\n').slice(1, 4).join('\n      ')}` : ''}`)
            .join('\n    ')
        : undefined;
    }
    case 'unpack':
      return result.outcome.ok || result.outcome.error?.isSquashfsError ? undefined : `unpack: ${result.outcome.error?.name}: ${result.outcome.error?.message}`;
  }
}

