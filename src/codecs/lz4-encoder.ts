/**
 * LZ4 block compression, written from the public LZ4 block format
 * description (lz4_Block_format.md): a block is a run of sequences, each a
 * token (literal length << 4 | match length - 4), literals, a little-endian
 * 16-bit match offset and 255-byte length extensions. A valid block obeys
 * the end rules every decoder relies on: the last 5 bytes are literals, the
 * last match starts at least 12 bytes before the end, and blocks shorter
 * than 13 bytes are literals only.
 *
 * Two match finders feed the same sequence writer:
 * - fast (lz4's default, `LZ4_compress_default` in mksquashfs): one hash
 *   table of the last position of each 4-byte sequence, skipping ahead
 *   faster the longer nothing matches;
 * - high compression (mksquashfs -Xhc): hash chains through every earlier
 *   position in the 64 KiB window, searched up to a depth set by the level
 *   (2^(level-1) candidates, as lz4hc; levels 10-12 twice as deep each),
 *   with lazy matching: a match one byte later wins when it is longer by
 *   more than that byte.
 * On the bench corpus's 128 KiB blocks (bench/compressors.mjs), fast is
 * about 2% smaller than liblz4's LZ4_compress_default (a larger hash table),
 * and level 9 within about 1.3% of mksquashfs -Xhc (liblz4 HC level 12).
 *
 * Both are plain functions of the input and the level: the hash tables are
 * kept between calls, but what an earlier block left in them never counts
 * (see takeBase), so any thread gives the same bytes.
 */

const MIN_MATCH = 4;
const LAST_LITERALS = 5;
const MF_LIMIT = 12;
const MAX_DISTANCE = 65535;
/** A block shorter than this is stored as literals only. */
const MIN_LENGTH = MF_LIMIT + 1;

/** Levels (lz4's numbering): below this, the fast compressor. */
export const LZ4_HC_MIN_LEVEL = 3;
export const LZ4_MAX_LEVEL = 12;

/** A view to read 4 bytes at a time: V8 compiles DataView reads to single loads, twice as fast as four byte reads. */
const viewOf = (src: Uint8Array): DataView => new DataView(src.buffer, src.byteOffset, src.byteLength);

/**
 * How many bytes at `a` and `b` (a > b) agree, from `known` on, without
 * reaching `end`: 4 bytes at a time, the first difference found from the
 * lowest set bit of their XOR (little-endian: the lowest byte comes first).
 */
function matchLength(src: Uint8Array, view: DataView, a: number, b: number, known: number, end: number): number {
  let length = known;
  const words = end - a - 3;
  while (length < words) {
    const diff = view.getInt32(a + length, true) ^ view.getInt32(b + length, true);
    if (diff !== 0) return length + ((31 - Math.clz32(diff & -diff)) >>> 3);
    length += 4;
  }
  while (a + length < end && src[a + length] === src[b + length]) length++;
  return length;
}

// ---------------------------------------------------------------------------
// The sequence writer

/** Where sequences are written: grown on demand, reused between calls on a thread. */
let scratch = new Uint8Array(0);

/**
 * Writes one sequence: `literals` bytes from `src[from]`, then a match of
 * `matchBytes` at `offset` (0: the last sequence, literals
 * only). Returns the new output position, or -1 when the output would
 * reach `limit` (compression does not pay).
 */
function writeSequence(out: Uint8Array, op: number, limit: number, src: Uint8Array, from: number, literals: number, offset: number, matchBytes: number): number {
  // Token, literals and their length bytes, offset, match length bytes (over-estimated by at most one each).
  if (op + 1 + literals + ((literals + 240) / 255 | 0) + 3 + ((matchBytes + 240) / 255 | 0) > limit) return -1;
  const tokenAt = op++;
  let token: number;
  if (literals >= 15) {
    token = 0xf0;
    let rest = literals - 15;
    while (rest >= 255) {
      out[op++] = 255;
      rest -= 255;
    }
    out[op++] = rest;
  } else {
    token = literals << 4;
  }
  if (literals > 32) {
    out.set(src.subarray(from, from + literals), op);
  } else {
    for (let i = 0; i < literals; i++) out[op + i] = src[from + i];
  }
  op += literals;
  if (matchBytes > 0) {
    out[op++] = offset & 0xff;
    out[op++] = offset >>> 8;
    let rest = matchBytes - MIN_MATCH;
    if (rest >= 15) {
      token |= 15;
      rest -= 15;
      while (rest >= 255) {
        out[op++] = 255;
        rest -= 255;
      }
      out[op++] = rest;
    } else {
      token |= rest;
    }
  }
  out[tokenAt] = token;
  return op;
}

/**
 * Hash tables hold positions plus a base that grows with each block, so an
 * entry from an earlier block reads as negative and the tables need no
 * clearing between blocks (only when the base would overflow).
 */
function takeBase(table: Int32Array, length: number): number {
  let base = bases.get(table) ?? 1;
  if (base + length + 1 > 0x7fff0000) {
    table.fill(0);
    base = 1;
  }
  bases.set(table, base + length + 1);
  return base;
}
const bases = new WeakMap<Int32Array, number>();

// ---------------------------------------------------------------------------
// Fast

const FAST_HASH_LOG = 16;
const SKIP_TRIGGER = 6;
const fastTable = new Int32Array(1 << FAST_HASH_LOG);
const fastHash = (sequence: number): number => Math.imul(sequence, -1640531535) >>> (32 - FAST_HASH_LOG);

function compressFast(src: Uint8Array, out: Uint8Array, limit: number): number {
  const n = src.length;
  let op = 0;
  let anchor = 0;
  if (n >= MIN_LENGTH) {
    const base = takeBase(fastTable, n);
    const table = fastTable;
    const view = viewOf(src);
    const mfLimit = n - MF_LIMIT;
    const matchLimit = n - LAST_LITERALS;
    table[fastHash(view.getInt32(0, true))] = base;
    let ip = 1;
    outer: for (;;) {
      let ref = 0;
      let searches = 1 << SKIP_TRIGGER;
      let step = 1;
      for (;;) {
        if (ip > mfLimit) break outer;
        const sequence = view.getInt32(ip, true);
        const h = fastHash(sequence);
        ref = table[h] - base;
        table[h] = ip + base;
        if (ref >= 0 && ip - ref <= MAX_DISTANCE && view.getInt32(ref, true) === sequence) break;
        ip += step;
        step = searches++ >> SKIP_TRIGGER;
      }
      while (ip > anchor && ref > 0 && src[ip - 1] === src[ref - 1]) {
        ip--;
        ref--;
      }
      const end = ip + matchLength(src, view, ip, ref, MIN_MATCH, matchLimit);
      op = writeSequence(out, op, limit, src, anchor, ip - anchor, ip - ref, end - ip);
      if (op < 0) return -1;
      ip = end;
      anchor = ip;
      if (ip > mfLimit) break;
      table[fastHash(view.getInt32(ip - 2, true))] = ip - 2 + base;
    }
  }
  return writeSequence(out, op, limit, src, anchor, n - anchor, 0, 0);
}

// ---------------------------------------------------------------------------
// High compression

const HC_HASH_LOG = 15;
const hcHead = new Int32Array(1 << HC_HASH_LOG);
/** Distance back to the previous position with the same hash, by position mod 64 Ki (65535: none in the window). */
const hcChain = new Uint16Array(1 << 16);
const hcHash = (sequence: number): number => Math.imul(sequence, -1640531535) >>> (32 - HC_HASH_LOG);

/** A match finder over one block: hash chains, filled up to the position searched. */
class ChainFinder {
  private next = 0;
  private readonly view: DataView;
  /** Result of the last `find`: length (0: none) and source position. */
  length = 0;
  ref = 0;

  constructor(
    private readonly src: Uint8Array,
    private readonly base: number,
    private readonly matchLimit: number,
    private readonly attempts: number,
  ) {
    this.view = viewOf(src);
  }

  /** The longest match at `ip` (at least `atLeast` + 1 bytes), searching the chain to the finder's depth. */
  find(ip: number, atLeast: number = MIN_MATCH - 1): boolean {
    const { src, view, base, matchLimit } = this;
    const head = hcHead;
    const chain = hcChain;
    for (let p = this.next; p < ip; p++) {
      const h = hcHash(view.getInt32(p, true));
      const delta = p + base - head[h];
      chain[p & 0xffff] = delta > MAX_DISTANCE ? MAX_DISTANCE : delta;
      head[h] = p + base;
    }
    if (this.next < ip) this.next = ip;
    const sequence = view.getInt32(ip, true);
    let ref = head[hcHash(sequence)] - base;
    let best = atLeast;
    let bestRef = -1;
    const maxLength = matchLimit - ip;
    for (let tries = this.attempts; tries > 0 && ref >= 0 && ip - ref <= MAX_DISTANCE; tries--) {
      if (src[ref + best] === src[ip + best] && view.getInt32(ref, true) === sequence) {
        const length = matchLength(src, view, ip, ref, MIN_MATCH, matchLimit);
        if (length > best) {
          best = length;
          bestRef = ref;
          if (length === maxLength) break;
        }
      }
      ref -= chain[ref & 0xffff];
    }
    if (bestRef < 0) {
      this.length = 0;
      return false;
    }
    this.length = best;
    this.ref = bestRef;
    return true;
  }
}

function compressHc(src: Uint8Array, out: Uint8Array, limit: number, level: number): number {
  const n = src.length;
  let op = 0;
  let anchor = 0;
  if (n >= MIN_LENGTH) {
    const base = takeBase(hcHead, n);
    const mfLimit = n - MF_LIMIT;
    const matchLimit = n - LAST_LITERALS;
    const attempts = 1 << (Math.min(level, 9) - 1);
    const finder = new ChainFinder(src, base, matchLimit, level > 9 ? attempts << (level - 9) : attempts);
    let ip = 0;
    while (ip <= mfLimit) {
      if (!finder.find(ip)) {
        ip++;
        continue;
      }
      let length = finder.length;
      let ref = finder.ref;
      // Lazy: a match one byte later that is longer by more than that byte wins.
      while (ip + 1 <= mfLimit && finder.find(ip + 1, length + 1)) {
        ip++;
        length = finder.length;
        ref = finder.ref;
      }
      op = writeSequence(out, op, limit, src, anchor, ip - anchor, ip - ref, length);
      if (op < 0) return -1;
      ip += length;
      anchor = ip;
    }
  }
  return writeSequence(out, op, limit, src, anchor, n - anchor, 0, 0);
}

// ---------------------------------------------------------------------------

/**
 * Compresses `src` into one LZ4 block: levels 1-2 with the fast compressor,
 * 3-12 with high compression (lz4's numbering; mksquashfs -Xhc uses 12).
 * Returns `src` itself when the block would not be smaller.
 */
export function encodeLz4Block(src: Uint8Array, level: number): Uint8Array {
  const limit = src.length - 1;
  if (scratch.length < src.length + 16) scratch = new Uint8Array(src.length + 16);
  const length = level < LZ4_HC_MIN_LEVEL ? compressFast(src, scratch, limit) : compressHc(src, scratch, limit, level);
  return length < 0 ? src : scratch.slice(0, length);
}
