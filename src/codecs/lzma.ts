import { SquashfsError } from '../errors.js';
import { checkLength, type Codec } from './codec.js';

/** lzma's on-disk compressor id (superblock `compression_id`). */
export const LZMA_ID = 2;

/**
 * LZMA decoding, written from Igor Pavlov's public-domain LZMA specification
 * (lzma-specification.txt in the LZMA SDK). The npm LZMA decoders (lzma,
 * lzma1, lzma-purejs) decode at 2-8 MB/s, cannot report a truncated input and
 * know nothing of LZMA2, which xz needs; this one decodes a whole block into
 * an output buffer of the expected length, so the dictionary is that buffer
 * and nothing is allocated from a size found in the data.
 */

/** Throws the `CODEC_ERROR` of a codec, its name leading the message. */
export function codecError(codec: string, message: string): never {
  throw new SquashfsError('CODEC_ERROR', `${codec} block: ${message}`);
}

const NUM_STATES = 12;
const POS_STATES_MAX = 16;
const END_POS_MODEL_INDEX = 14;
const NUM_FULL_DISTANCES = 128;
const MATCH_MIN_LEN = 2;

// Offsets into the one probability array.
const IS_MATCH = 0;
const IS_REP = IS_MATCH + NUM_STATES * POS_STATES_MAX;
const IS_REP_G0 = IS_REP + NUM_STATES;
const IS_REP_G1 = IS_REP_G0 + NUM_STATES;
const IS_REP_G2 = IS_REP_G1 + NUM_STATES;
const IS_REP0_LONG = IS_REP_G2 + NUM_STATES;
const POS_SLOT = IS_REP0_LONG + NUM_STATES * POS_STATES_MAX;
const SPEC_POS = POS_SLOT + 4 * 64;
const ALIGN = SPEC_POS + 1 + NUM_FULL_DISTANCES - END_POS_MODEL_INDEX;
const LEN_CODER = ALIGN + 16;
// Inside a length coder: choice, choice2, low[16][8], mid[16][8], high[256].
const LEN_CHOICE2 = 1;
const LEN_LOW = 2;
const LEN_MID = LEN_LOW + POS_STATES_MAX * 8;
const LEN_HIGH = LEN_MID + POS_STATES_MAX * 8;
const LEN_CODER_SIZE = LEN_HIGH + 256;
const REP_LEN_CODER = LEN_CODER + LEN_CODER_SIZE;
const LITERAL = REP_LEN_CODER + LEN_CODER_SIZE;
/** lc + lp above this is refused, as liblzma does (and LZMA2 requires). */
const LCLP_MAX = 4;
const PROB_INIT = 1024;

export interface LzmaProperties {
  lc: number;
  lp: number;
  pb: number;
}

/** Decodes the lc/lp/pb properties byte; undefined when it is out of range. */
export function decodeLzmaPropertiesByte(byte: number): LzmaProperties | undefined {
  if (byte >= 9 * 5 * 5) return undefined;
  const lc = byte % 9;
  const lp = Math.floor(byte / 9) % 5;
  const pb = Math.floor(byte / 45);
  if (lc + lp > LCLP_MAX) return undefined;
  return { lc, lp, pb };
}

/**
 * An LZMA decoder that writes into a caller-owned output buffer. LZMA2 drives
 * it chunk by chunk: `resetDictionary`, `resetState`, `setProperties` and
 * `startChunk` map onto the LZMA2 control byte.
 */
export class LzmaDecoder {
  private readonly probs = new Uint16Array(LITERAL + (0x300 << LCLP_MAX));
  private lc = 0;
  private lpMask = 0;
  private pbMask = 0;
  private state = 0;
  private rep0 = 0;
  private rep1 = 0;
  private rep2 = 0;
  private rep3 = 0;
  // The range decoder.
  private range = 0;
  private code = 0;
  private input: Uint8Array = new Uint8Array(0);
  private inPos = 0;
  private inEnd = 0;
  /** Where the current dictionary starts in the output. */
  private dictStart = 0;

  constructor(
    private readonly codec: string,
    private readonly out: Uint8Array,
    /** Matches may reach back at most this far. */
    private readonly dictSize: number,
  ) {}

  setProperties(props: LzmaProperties): void {
    this.lc = props.lc;
    this.lpMask = (1 << props.lp) - 1;
    this.pbMask = (1 << props.pb) - 1;
  }

  resetState(): void {
    this.probs.fill(PROB_INIT);
    this.state = 0;
    this.rep0 = this.rep1 = this.rep2 = this.rep3 = 0;
  }

  resetDictionary(outPos: number): void {
    this.dictStart = outPos;
  }

  /** Starts the range decoder on `input[start, end)`. */
  startChunk(input: Uint8Array, start: number, end: number): void {
    if (end - start < 5) codecError(this.codec, `range coder needs 5 bytes at input offset ${start}, ${end - start} left`);
    if (input[start] !== 0) codecError(this.codec, `range coder's first byte at input offset ${start} is ${input[start]}, not 0`);
    this.input = input;
    this.inEnd = end;
    this.range = -1;
    this.code = (input[start + 1] << 24) | (input[start + 2] << 16) | (input[start + 3] << 8) | input[start + 4];
    this.inPos = start + 5;
    if (this.code === -1) codecError(this.codec, `corrupt range coder start at input offset ${start}`);
  }

  /** Input bytes the range decoder has consumed up to (an offset into its input). */
  get inputPosition(): number {
    return this.inPos;
  }

  /** True when the range decoder ended cleanly (code 0), as LZMA2 chunks must. */
  get rangeFinished(): boolean {
    return this.code === 0;
  }

  private overrun(): never {
    codecError(this.codec, `compressed data ends early (at input offset ${this.inEnd})`);
  }

  // The range decoder keeps `range` and `code` as int32 (unsigned values
  // compared with the sign bit flipped) so that V8 keeps them unboxed.
  private bit(index: number): number {
    const probs = this.probs;
    const prob = probs[index];
    const bound = Math.imul(this.range >>> 11, prob);
    let bit: number;
    if ((this.code ^ -0x80000000) < (bound ^ -0x80000000)) {
      this.range = bound;
      probs[index] = prob + ((2048 - prob) >>> 5);
      bit = 0;
    } else {
      this.range = (this.range - bound) | 0;
      this.code = (this.code - bound) | 0;
      probs[index] = prob - (prob >>> 5);
      bit = 1;
    }
    if ((this.range & -0x1000000) === 0) {
      this.range <<= 8;
      this.code = (this.code << 8) | (this.inPos < this.inEnd ? this.input[this.inPos++] : this.overrun());
    }
    return bit;
  }

  /** The rest of a literal's bits: `bit` inlined, the hottest loop. */
  private literalBits(base: number, symbol: number): number {
    const probs = this.probs;
    const input = this.input;
    const inEnd = this.inEnd;
    let range = this.range;
    let code = this.code;
    let inPos = this.inPos;
    do {
      const index = base + symbol;
      const prob = probs[index];
      const bound = Math.imul(range >>> 11, prob);
      if ((code ^ -0x80000000) < (bound ^ -0x80000000)) {
        range = bound;
        probs[index] = prob + ((2048 - prob) >>> 5);
        symbol <<= 1;
      } else {
        range = (range - bound) | 0;
        code = (code - bound) | 0;
        probs[index] = prob - (prob >>> 5);
        symbol = (symbol << 1) | 1;
      }
      if ((range & -0x1000000) === 0) {
        if (inPos >= inEnd) this.overrun();
        range <<= 8;
        code = (code << 8) | input[inPos++];
      }
    } while (symbol < 0x100);
    this.range = range;
    this.code = code;
    this.inPos = inPos;
    return symbol;
  }

  private bitTree(base: number, numBits: number): number {
    let m = 1;
    for (let i = 0; i < numBits; i++) m = (m << 1) | this.bit(base + m);
    return m - (1 << numBits);
  }

  private bitTreeReverse(base: number, numBits: number): number {
    let m = 1;
    let symbol = 0;
    for (let i = 0; i < numBits; i++) {
      const bit = this.bit(base + m);
      m = (m << 1) | bit;
      symbol |= bit << i;
    }
    return symbol;
  }

  private directBits(numBits: number): number {
    let result = 0;
    for (let i = 0; i < numBits; i++) {
      this.range >>>= 1;
      let bit = 0;
      if ((this.code ^ -0x80000000) >= (this.range ^ -0x80000000)) {
        this.code = (this.code - this.range) | 0;
        bit = 1;
      }
      result = result * 2 + bit;
      if ((this.range & -0x1000000) === 0) {
        this.range <<= 8;
        this.code = (this.code << 8) | (this.inPos < this.inEnd ? this.input[this.inPos++] : this.overrun());
      }
    }
    return result;
  }

  private length(base: number, posState: number): number {
    if (this.bit(base) === 0) return MATCH_MIN_LEN + this.bitTree(base + LEN_LOW + posState * 8, 3);
    if (this.bit(base + LEN_CHOICE2) === 0) return MATCH_MIN_LEN + 8 + this.bitTree(base + LEN_MID + posState * 8, 3);
    return MATCH_MIN_LEN + 16 + this.bitTree(base + LEN_HIGH, 8);
  }

  private distance(len: number): number {
    const lenState = len - MATCH_MIN_LEN < 3 ? len - MATCH_MIN_LEN : 3;
    const posSlot = this.bitTree(POS_SLOT + lenState * 64, 6);
    if (posSlot < 4) return posSlot;
    const numDirectBits = (posSlot >>> 1) - 1;
    let dist = ((2 | (posSlot & 1)) << numDirectBits) >>> 0;
    if (posSlot < END_POS_MODEL_INDEX) return dist + this.bitTreeReverse(SPEC_POS + dist - posSlot, numDirectBits);
    dist += this.directBits(numDirectBits - 4) * 16;
    return dist + this.bitTreeReverse(ALIGN, 4);
  }

  /**
   * Decodes into the output from `outPos` up to `outEnd`. Returns the output
   * position reached: `outEnd`, or less when an end marker was met (allowed
   * only with `allowEndMarker`).
   */
  decode(outPos: number, outEnd: number, allowEndMarker: boolean): number {
    const out = this.out;
    const codec = this.codec;
    const lc = this.lc;
    let op = outPos;
    while (op < outEnd) {
      const pos = op - this.dictStart;
      const posState = pos & this.pbMask;
      const state = this.state;
      if (this.bit(IS_MATCH + (state << 4) + posState) === 0) {
        const prevByte = pos > 0 ? out[op - 1] : 0;
        const base = LITERAL + 0x300 * (((pos & this.lpMask) << lc) + (prevByte >>> (8 - lc)));
        let symbol = 1;
        if (state >= 7) {
          if (this.rep0 >= pos) codecError(codec, `match distance ${this.rep0 + 1} at output offset ${op} reaches before the dictionary`);
          let matchByte = out[op - this.rep0 - 1];
          while (symbol < 0x100) {
            const matchBit = (matchByte >>> 7) & 1;
            matchByte <<= 1;
            const bit = this.bit(base + ((1 + matchBit) << 8) + symbol);
            symbol = (symbol << 1) | bit;
            if (matchBit !== bit) break;
          }
        }
        if (symbol < 0x100) symbol = this.literalBits(base, symbol);
        out[op++] = symbol & 0xff;
        this.state = state < 4 ? 0 : state < 10 ? state - 3 : state - 6;
        continue;
      }
      let len: number;
      if (this.bit(IS_REP + state) === 0) {
        len = this.length(LEN_CODER, posState);
        this.state = state < 7 ? 7 : 10;
        const dist = this.distance(len);
        if (dist === 0xffffffff) {
          if (!allowEndMarker) codecError(codec, `unexpected end marker at output offset ${op}`);
          return op;
        }
        this.rep3 = this.rep2;
        this.rep2 = this.rep1;
        this.rep1 = this.rep0;
        this.rep0 = dist;
      } else {
        if (pos === 0) codecError(codec, `repeated match at output offset ${op} before any output`);
        if (this.bit(IS_REP_G0 + state) === 0) {
          if (this.bit(IS_REP0_LONG + (state << 4) + posState) === 0) {
            // A "short rep": one byte from distance rep0.
            if (this.rep0 >= pos) codecError(codec, `match distance ${this.rep0 + 1} at output offset ${op} reaches before the dictionary`);
            this.state = state < 7 ? 9 : 11;
            out[op] = out[op - this.rep0 - 1];
            op++;
            continue;
          }
        } else {
          let dist: number;
          if (this.bit(IS_REP_G1 + state) === 0) {
            dist = this.rep1;
          } else {
            if (this.bit(IS_REP_G2 + state) === 0) {
              dist = this.rep2;
            } else {
              dist = this.rep3;
              this.rep3 = this.rep2;
            }
            this.rep2 = this.rep1;
          }
          this.rep1 = this.rep0;
          this.rep0 = dist;
        }
        len = this.length(REP_LEN_CODER, posState);
        this.state = state < 7 ? 8 : 11;
      }
      const dist = this.rep0;
      if (dist >= pos || dist >= this.dictSize) {
        codecError(codec, `match distance ${dist + 1} at output offset ${op} reaches before the dictionary (${Math.min(pos, this.dictSize)} bytes)`);
      }
      if (len > outEnd - op) codecError(codec, `match of ${len} bytes at output offset ${op} passes the end (${outEnd})`);
      const from = op - dist - 1;
      if (len > 32 && dist + 1 >= len) {
        out.copyWithin(op, from, from + len);
      } else {
        for (let i = 0; i < len; i++) out[op + i] = out[from + i];
      }
      op += len;
    }
    return op;
  }
}

/** Bytes before the raw stream in the "LZMA alone" format: properties, dictionary size, u64 size. */
export const LZMA_ALONE_HEADER_SIZE = 13;

/**
 * Decodes one "LZMA alone" block: a properties byte, a u32 dictionary size,
 * a u64 uncompressed size (all ones = unknown: then the stream must end
 * with an end marker), then the raw stream. squashfs-tools' lzma compressor
 * writes the real size; the decoder stops there, as LzmaUncompress does.
 */
export function decodeLzmaAlone(data: Uint8Array, expectedLength: number, atMost = false): Uint8Array {
  if (data.length < LZMA_ALONE_HEADER_SIZE) {
    codecError('lzma', `${data.length} bytes is shorter than the ${LZMA_ALONE_HEADER_SIZE}-byte header`);
  }
  const props = decodeLzmaPropertiesByte(data[0]);
  if (!props) codecError('lzma', `invalid properties byte ${data[0]}`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const dictSize = Math.max(view.getUint32(1, true), 4096);
  const sizeLow = view.getUint32(5, true);
  const sizeHigh = view.getUint32(9, true);
  const sizeUnknown = sizeLow === 0xffffffff && sizeHigh === 0xffffffff;
  if (!sizeUnknown && (sizeHigh !== 0 || (atMost ? sizeLow > expectedLength : sizeLow !== expectedLength))) {
    codecError('lzma', `header declares ${sizeHigh * 2 ** 32 + sizeLow} bytes, expected ${atMost ? 'at most ' : ''}${expectedLength}`);
  }
  // With the size unknown the stream must end with the end marker right
  // after the expected bytes: one byte of room shows a longer stream.
  const limit = sizeUnknown ? expectedLength + 1 : sizeLow;
  const out = new Uint8Array(limit);
  const decoder = new LzmaDecoder('lzma', out, dictSize);
  decoder.setProperties(props);
  decoder.resetState();
  decoder.startChunk(data, LZMA_ALONE_HEADER_SIZE, data.length);
  const end = decoder.decode(0, limit, sizeUnknown);
  if (!sizeUnknown && end !== sizeLow) codecError('lzma', `stream ended after ${end} of the ${sizeLow} bytes its header declares`);
  return checkLength('lzma', out.subarray(0, end), expectedLength, atMost);
}

function unsupported(name: string, what: string): never {
  throw new SquashfsError('UNSUPPORTED_COMPRESSOR', `${name} compression is not supported; ${what}`);
}

/**
 * Wraps a decoder so that anything but a `SquashfsError` becomes a `CODEC_ERROR`
 * naming the codec. (Shared by the lzma, xz, lz4, lzo and zstd codecs.)
 */
export function guardDecode(name: string, data: Uint8Array, expectedLength: number, decode: () => Uint8Array): Uint8Array {
  try {
    return decode();
  } catch (cause) {
    if (cause instanceof SquashfsError) throw cause;
    const message = cause instanceof Error ? cause.message : String(cause);
    throw new SquashfsError('CODEC_ERROR', `${name} block of ${data.length} bytes (expected ${expectedLength} out) does not decompress: ${message}`, { cause });
  }
}

/** A codec that only reads: `compress` throws `UNSUPPORTED_COMPRESSOR`. */
export function readOnlyCodec(
  id: number,
  name: string,
  levels: { defaultLevel: number; minLevel: number; maxLevel: number },
  decode: (data: Uint8Array, expectedLength: number, atMost?: boolean) => Uint8Array,
  why: string,
): Codec {
  return {
    id,
    name,
    ...levels,
    compress: () => unsupported(name, why),
    decompress: (data, expectedLength, atMost) => guardDecode(name, data, expectedLength, () => decode(data, expectedLength, atMost)),
    encodeOptions: () => undefined,
  };
}

/** The "lzma" compressor (id 2): read only. */
export function lzmaCodec(): Codec {
  return readOnlyCodec(
    LZMA_ID,
    'lzma',
    { defaultLevel: 9, minLevel: 0, maxLevel: 9 },
    decodeLzmaAlone,
    'images can be read, not written (use gzip or zstd)',
  );
}
