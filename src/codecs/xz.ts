import { sha256 } from '@noble/hashes/sha2.js';
import type { Codec } from './codec.js';
import { checkLength } from './codec.js';
import { codecError, decodeLzmaPropertiesByte, LzmaDecoder, readOnlyCodec } from './lzma.js';

/** xz's on-disk compressor id (superblock `compression_id`). */
export const XZ_ID = 4;

/**
 * The "xz" compressor (id 4): each block is a complete .xz stream (CRC32
 * check in squashfs-tools) of LZMA2, optionally behind a branch/call/jump
 * filter (mksquashfs -Xbcj x86,arm,...). Written from the public .xz format
 * description (xz-file-format.txt) and the filters' definitions, because no
 * npm package decodes xz synchronously in pure JS: xz-decompress is
 * WebAssembly (refused by workerd), async only, and built without the BCJ
 * filters.
 */

const fail: (message: string) => never = (message) => codecError('xz', message);

const HEADER_MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const FOOTER_MAGIC = [0x59, 0x5a];
const STREAM_HEADER_SIZE = 12;
const FILTER_LZMA2 = 0x21;
const FILTER_DELTA = 0x03;
/** Branch/call/jump filters by id: x86, PowerPC, IA-64, ARM, ARM-Thumb, SPARC, ARM64. */
const BCJ_FILTERS: Record<number, (buf: Uint8Array, start: number) => void> = {
  0x04: bcjX86,
  0x05: bcjPowerPc,
  0x06: bcjIa64,
  0x07: bcjArm,
  0x08: bcjArmThumb,
  0x09: bcjSparc,
  0x0a: bcjArm64,
};
const CHECK_CRC32 = 1;
const CHECK_CRC64 = 4;
const CHECK_SHA256 = 10;

const CRC32_TABLE = (() => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

export function crc32(data: Uint8Array, start = 0, end = data.length): number {
  let crc = -1;
  for (let i = start; i < end; i++) crc = CRC32_TABLE[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ -1) >>> 0;
}

// CRC-64/XZ (ECMA-182 polynomial, reflected), as two 32-bit halves.
let crc64Table: Uint32Array | undefined;
function crc64(data: Uint8Array): [low: number, high: number] {
  if (!crc64Table) {
    crc64Table = new Uint32Array(512);
    const polyLow = 0xd7870f42;
    const polyHigh = 0xc96c5795;
    for (let n = 0; n < 256; n++) {
      let low = n;
      let high = 0;
      for (let k = 0; k < 8; k++) {
        const carry = low & 1;
        low = ((low >>> 1) | (high << 31)) >>> 0;
        high >>>= 1;
        if (carry) {
          low = (low ^ polyLow) >>> 0;
          high = (high ^ polyHigh) >>> 0;
        }
      }
      crc64Table[n * 2] = low;
      crc64Table[n * 2 + 1] = high;
    }
  }
  const table = crc64Table;
  let low = 0xffffffff;
  let high = 0xffffffff;
  for (let i = 0; i < data.length; i++) {
    const index = ((low ^ data[i]) & 0xff) * 2;
    low = (table[index] ^ ((low >>> 8) | (high << 24))) >>> 0;
    high = (table[index + 1] ^ (high >>> 8)) >>> 0;
  }
  return [(low ^ 0xffffffff) >>> 0, (high ^ 0xffffffff) >>> 0];
}

function checkSize(checkType: number): number {
  return checkType === 0 ? 0 : 4 << Math.floor((checkType - 1) / 3);
}

class Reader {
  constructor(
    readonly data: Uint8Array,
    public pos: number,
    readonly end: number,
  ) {}

  byte(what: string): number {
    if (this.pos >= this.end) fail(`${what} passes the end of its field (offset ${this.end})`);
    return this.data[this.pos++];
  }

  u32(what: string): number {
    if (this.end - this.pos < 4) fail(`${what} passes the end of its field (offset ${this.end})`);
    const d = this.data;
    const p = this.pos;
    this.pos += 4;
    return (d[p] | (d[p + 1] << 8) | (d[p + 2] << 16) | (d[p + 3] << 24)) >>> 0;
  }

  /** The .xz variable-length integer: 7 bits a byte, at most 9 bytes. */
  varint(what: string): number {
    let value = 0;
    for (let i = 0; i < 9; i++) {
      const b = this.byte(what);
      if (i > 0 && b === 0) fail(`${what} at offset ${this.pos - 1} has a superfluous zero byte`);
      value += (b & 0x7f) * 2 ** (7 * i);
      if (!(b & 0x80)) {
        if (value > Number.MAX_SAFE_INTEGER) fail(`${what} ${value} is beyond 2^53`);
        return value;
      }
    }
    return fail(`${what} at offset ${this.pos - 9} is longer than 9 bytes`);
  }

  expectCrc32(start: number, what: string): void {
    const stored = this.u32(`${what} CRC32`);
    const computed = crc32(this.data, start, this.pos - 4);
    if (stored !== computed) fail(`${what} CRC32 is ${hex(stored)}, computed ${hex(computed)}`);
  }
}

const hex = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;

interface Filter {
  id: number;
  props: Uint8Array;
}

/** Decodes one squashfs xz block: one or more .xz streams (usually one with one block). */
export function decodeXz(data: Uint8Array, expectedLength: number, atMost = false): Uint8Array {
  const out = new Uint8Array(expectedLength);
  let outPos = 0;
  let pos = 0;
  let streams = 0;
  while (pos < data.length) {
    if (streams > 0 && data[pos] === 0) {
      // Stream padding: zero bytes in multiples of four.
      const start = pos;
      while (pos < data.length && data[pos] === 0) pos++;
      if ((pos - start) % 4 !== 0) fail(`stream padding of ${pos - start} bytes at offset ${start} is not a multiple of 4`);
      continue;
    }
    [pos, outPos] = decodeStream(data, pos, out, outPos);
    streams++;
  }
  if (streams === 0) fail('no .xz stream (0 bytes)');
  return checkLength('xz', out.subarray(0, outPos), expectedLength, atMost);
}

function decodeStream(data: Uint8Array, start: number, out: Uint8Array, outStart: number): [number, number] {
  const r = new Reader(data, start, data.length);
  if (data.length - start < STREAM_HEADER_SIZE * 2) fail(`${data.length - start} bytes at offset ${start} are too few for an .xz stream`);
  for (let i = 0; i < HEADER_MAGIC.length; i++) {
    if (data[start + i] !== HEADER_MAGIC[i]) fail(`no .xz stream header magic at offset ${start}`);
  }
  r.pos += HEADER_MAGIC.length;
  const flags0 = r.byte('stream flags');
  const checkType = r.byte('stream flags');
  if (flags0 !== 0 || checkType > 0x0f) fail(`unsupported stream flags ${flags0},${checkType} at offset ${start + 6}`);
  r.expectCrc32(start + 6, 'stream header');
  const records: Array<[unpadded: number, uncompressed: number]> = [];
  let outPos = outStart;
  for (;;) {
    if (r.pos >= data.length) fail(`stream ends at offset ${r.pos} before its index`);
    if (data[r.pos] === 0) break; // the index indicator
    const blockStart = r.pos;
    const [end, produced] = decodeBlock(r, out, outPos);
    records.push([end - blockStart, produced]);
    outPos += produced;
    r.pos = end + ((4 - ((end - blockStart) & 3)) & 3);
    for (let p = end; p < r.pos; p++) if (data[p] !== 0) fail(`block padding at offset ${p} is not zero`);
    const size = checkSize(checkType);
    if (data.length - r.pos < size) fail(`check field at offset ${r.pos} passes the end of the data`);
    verifyCheck(checkType, data.subarray(r.pos, r.pos + size), out.subarray(outPos - produced, outPos));
    r.pos += size;
  }
  // Index: records must match the blocks decoded.
  const indexStart = r.pos;
  r.pos++;
  const count = r.varint('index record count');
  if (count !== records.length) fail(`index lists ${count} blocks, the stream has ${records.length}`);
  for (const [unpadded, uncompressed] of records) {
    const u = r.varint('index unpadded size');
    const n = r.varint('index uncompressed size');
    if (u !== unpadded + checkSize(checkType) || n !== uncompressed) {
      fail(`index record (${u}, ${n}) does not match its block (${unpadded + checkSize(checkType)}, ${uncompressed})`);
    }
  }
  while ((r.pos - indexStart) & 3) if (r.byte('index padding') !== 0) fail(`index padding at offset ${r.pos - 1} is not zero`);
  r.expectCrc32(indexStart, 'index');
  const indexSize = r.pos - indexStart;
  // Footer: CRC32 of the next 6 bytes, backward size, stream flags, "YZ".
  const footer = r.pos;
  if (data.length - footer < STREAM_HEADER_SIZE) fail(`stream footer at offset ${footer} passes the end of the data`);
  const storedCrc = readLe32(data, footer);
  const computedCrc = crc32(data, footer + 4, footer + 10);
  if (storedCrc !== computedCrc) fail(`stream footer CRC32 is ${hex(storedCrc)}, computed ${hex(computedCrc)}`);
  const backwardSize = (readLe32(data, footer + 4) + 1) * 4;
  if (data[footer + 10] !== FOOTER_MAGIC[0] || data[footer + 11] !== FOOTER_MAGIC[1]) fail(`no stream footer magic at offset ${footer + 10}`);
  if (data[footer + 8] !== flags0 || data[footer + 9] !== checkType) fail('stream footer flags differ from the header');
  if (backwardSize !== indexSize) fail(`footer gives an index of ${backwardSize} bytes, it has ${indexSize}`);
  return [footer + STREAM_HEADER_SIZE, outPos];
}

/** Decodes a block's header and data; returns the end of its compressed data and the bytes it produced. */
function decodeBlock(r: Reader, out: Uint8Array, outStart: number): [number, number] {
  const data = r.data;
  const headerStart = r.pos;
  const headerSize = (data[headerStart] + 1) * 4;
  if (headerStart + headerSize > data.length) fail(`block header of ${headerSize} bytes at offset ${headerStart} passes the end of the data`);
  const h = new Reader(data, headerStart + 1, headerStart + headerSize - 4);
  const flags = h.byte('block flags');
  if (flags & 0x3c) fail(`reserved block flags ${flags} at offset ${headerStart + 1}`);
  const compressedSize = flags & 0x40 ? h.varint('block compressed size') : undefined;
  const uncompressedSize = flags & 0x80 ? h.varint('block uncompressed size') : undefined;
  const filters: Filter[] = [];
  for (let i = 0; i <= (flags & 3); i++) {
    const id = h.varint('filter id');
    const propsSize = h.varint('filter properties size');
    if (propsSize > h.end - h.pos) fail(`filter properties of ${propsSize} bytes at offset ${h.pos} pass the block header`);
    filters.push({ id, props: data.subarray(h.pos, h.pos + propsSize) });
    h.pos += propsSize;
  }
  while (h.pos < h.end) if (h.byte('block header padding') !== 0) fail(`block header padding at offset ${h.pos - 1} is not zero`);
  const crcReader = new Reader(data, h.end, h.end + 4);
  const stored = crcReader.u32('block header CRC32');
  const computed = crc32(data, headerStart, h.end);
  if (stored !== computed) fail(`block header CRC32 is ${hex(stored)}, computed ${hex(computed)}`);

  const last = filters[filters.length - 1];
  if (last.id !== FILTER_LZMA2) fail(`block's last filter is 0x${last.id.toString(16)}, not LZMA2`);
  for (const filter of filters.slice(0, -1)) {
    if (filter.id !== FILTER_DELTA && !BCJ_FILTERS[filter.id]) fail(`unsupported filter 0x${filter.id.toString(16)}`);
  }
  const dataStart = headerStart + headerSize;
  const dataEnd = compressedSize === undefined ? data.length : dataStart + compressedSize;
  if (dataEnd > data.length) fail(`block of ${compressedSize} compressed bytes at offset ${dataStart} passes the end of the data`);
  const outLimit = uncompressedSize === undefined ? out.length : outStart + uncompressedSize;
  if (outLimit > out.length) fail(`block declares ${uncompressedSize} bytes, more than the ${out.length - outStart} expected`);
  const [end, outEnd] = decodeLzma2(data, dataStart, dataEnd, last.props, out, outStart, outLimit);
  if (compressedSize !== undefined && end !== dataEnd) fail(`block declares ${compressedSize} compressed bytes, LZMA2 used ${end - dataStart}`);
  if (uncompressedSize !== undefined && outEnd !== outLimit) fail(`block declares ${uncompressedSize} bytes, LZMA2 gave ${outEnd - outStart}`);
  const produced = out.subarray(outStart, outEnd);
  for (let i = filters.length - 2; i >= 0; i--) applyFilter(filters[i], produced);
  return [end, outEnd - outStart];
}

function verifyCheck(checkType: number, stored: Uint8Array, produced: Uint8Array): void {
  const view = new DataView(stored.buffer, stored.byteOffset, stored.byteLength);
  if (checkType === CHECK_CRC32) {
    const computed = crc32(produced);
    if (view.getUint32(0, true) !== computed) fail(`CRC32 of the ${produced.length} decompressed bytes is ${hex(computed)}, stored ${hex(view.getUint32(0, true))}`);
  } else if (checkType === CHECK_CRC64) {
    const [low, high] = crc64(produced);
    if (view.getUint32(0, true) !== low || view.getUint32(4, true) !== high) fail(`CRC64 of the ${produced.length} decompressed bytes does not match`);
  } else if (checkType === CHECK_SHA256) {
    const digest = sha256(produced);
    for (let i = 0; i < 32; i++) if (digest[i] !== stored[i]) fail(`SHA-256 of the ${produced.length} decompressed bytes does not match`);
  }
  // "None" (0) and the reserved types (known size, no defined function) are not verified.
}

/** LZMA2: a sequence of chunks, LZMA-compressed or stored, ended by a 0 byte. */
function decodeLzma2(
  data: Uint8Array,
  start: number,
  end: number,
  filterProps: Uint8Array,
  out: Uint8Array,
  outStart: number,
  outLimit: number,
): [number, number] {
  if (filterProps.length !== 1 || filterProps[0] > 40) fail(`invalid LZMA2 dictionary size byte ${filterProps[0]}`);
  const d = filterProps[0];
  const dictSize = d === 40 ? 0xffffffff : (2 | (d & 1)) * 2 ** (Math.floor(d / 2) + 11);
  const decoder = new LzmaDecoder('xz', out, dictSize);
  let pos = start;
  let outPos = outStart;
  let needDictReset = true;
  let needProps = true;
  for (;;) {
    if (pos >= end) fail(`LZMA2 data ends at offset ${pos} without an end marker`);
    const control = data[pos++];
    if (control === 0) return [pos, outPos];
    if (control >= 0xe0 || control === 0x01) {
      needProps = true;
      needDictReset = false;
      decoder.resetDictionary(outPos);
    } else if (needDictReset) {
      fail(`LZMA2 chunk at offset ${pos - 1} does not reset the dictionary first`);
    }
    if (control >= 0x80) {
      if (end - pos < 4) fail(`LZMA2 chunk header at offset ${pos - 1} passes the end of the data`);
      const unpacked = (control & 0x1f) * 65536 + data[pos] * 256 + data[pos + 1] + 1;
      const packed = data[pos + 2] * 256 + data[pos + 3] + 1;
      pos += 4;
      if (control >= 0xc0) {
        if (pos >= end) fail(`LZMA2 properties at offset ${pos} pass the end of the data`);
        const props = decodeLzmaPropertiesByte(data[pos]);
        if (!props) fail(`invalid LZMA2 properties byte ${data[pos]} at offset ${pos}`);
        pos++;
        decoder.setProperties(props);
        needProps = false;
      } else if (needProps) {
        fail(`LZMA2 chunk at offset ${pos - 5} comes before any properties`);
      }
      if (control >= 0xa0) decoder.resetState();
      if (packed > end - pos) fail(`LZMA2 chunk of ${packed} bytes at offset ${pos} passes the end of the data`);
      if (unpacked > outLimit - outPos) fail(`LZMA2 chunk of ${unpacked} bytes at output offset ${outPos} passes the expected ${outLimit}`);
      decoder.startChunk(data, pos, pos + packed);
      outPos = decoder.decode(outPos, outPos + unpacked, false);
      if (decoder.inputPosition !== pos + packed || !decoder.rangeFinished) {
        fail(`LZMA2 chunk at offset ${pos} did not end cleanly (used ${decoder.inputPosition - pos} of ${packed} bytes)`);
      }
      pos += packed;
    } else if (control <= 0x02) {
      if (end - pos < 2) fail(`LZMA2 chunk header at offset ${pos - 1} passes the end of the data`);
      const size = data[pos] * 256 + data[pos + 1] + 1;
      pos += 2;
      if (size > end - pos) fail(`stored LZMA2 chunk of ${size} bytes at offset ${pos} passes the end of the data`);
      if (size > outLimit - outPos) fail(`stored LZMA2 chunk of ${size} bytes at output offset ${outPos} passes the expected ${outLimit}`);
      out.set(data.subarray(pos, pos + size), outPos);
      pos += size;
      outPos += size;
    } else {
      fail(`invalid LZMA2 control byte ${control} at offset ${pos - 1}`);
    }
  }
}

function applyFilter(filter: Filter, buf: Uint8Array): void {
  if (filter.id === FILTER_DELTA) {
    if (filter.props.length !== 1) fail(`delta filter properties of ${filter.props.length} bytes`);
    const distance = filter.props[0] + 1;
    for (let i = distance; i < buf.length; i++) buf[i] = (buf[i] + buf[i - distance]) & 0xff;
    return;
  }
  let startOffset = 0;
  if (filter.props.length === 4) {
    startOffset = new DataView(filter.props.buffer, filter.props.byteOffset, 4).getUint32(0, true);
  } else if (filter.props.length !== 0) {
    fail(`branch filter 0x${filter.id.toString(16)} properties of ${filter.props.length} bytes`);
  }
  BCJ_FILTERS[filter.id](buf, startOffset);
}

// The branch/call/jump filters, decoding direction: each turns the absolute
// addresses the encoder wrote back into the relative ones of the instructions.

const readLe32 = (b: Uint8Array, i: number): number => (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0;
const writeLe32 = (b: Uint8Array, i: number, v: number): void => {
  b[i] = v;
  b[i + 1] = v >>> 8;
  b[i + 2] = v >>> 16;
  b[i + 3] = v >>> 24;
};
const readBe32 = (b: Uint8Array, i: number): number => ((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) >>> 0;
const writeBe32 = (b: Uint8Array, i: number, v: number): void => {
  b[i] = v >>> 24;
  b[i + 1] = v >>> 16;
  b[i + 2] = v >>> 8;
  b[i + 3] = v;
};

/** x86: E8 (CALL) / E9 (JMP) followed by a 32-bit displacement whose top byte is 00 or FF. */
function bcjX86(buf: Uint8Array, start: number): void {
  const allowed = [true, true, true, false, true, false, false, false];
  const bitNum = [0, 1, 2, 2, 3, 3, 3, 3];
  const msbOk = (b: number): boolean => b === 0 || b === 0xff;
  if (buf.length <= 4) return;
  const limit = buf.length - 4;
  let prevPos = -1;
  let prevMask = 0;
  let i = 0;
  for (; i < limit; i++) {
    if ((buf[i] & 0xfe) !== 0xe8) continue;
    const gap = i - prevPos;
    if (gap > 3) {
      prevMask = 0;
    } else {
      prevMask = (prevMask << (gap - 1)) & 7;
      if (prevMask !== 0) {
        const b = buf[i + 4 - bitNum[prevMask]];
        if (!allowed[prevMask] || msbOk(b)) {
          prevPos = i;
          prevMask = (prevMask << 1) | 1;
          continue;
        }
      }
    }
    prevPos = i;
    if (msbOk(buf[i + 4])) {
      let src = readLe32(buf, i + 1);
      let dest: number;
      for (;;) {
        dest = (src - (start + i + 5)) >>> 0;
        if (prevMask === 0) break;
        const j = bitNum[prevMask] * 8;
        if (!msbOk((dest >>> (24 - j)) & 0xff)) break;
        src = (dest ^ (2 ** (32 - j) - 1)) >>> 0;
      }
      dest &= 0x01ffffff;
      dest = (dest | -(dest & 0x01000000)) >>> 0;
      writeLe32(buf, i + 1, dest);
      i += 4;
    } else {
      prevMask = (prevMask << 1) | 1;
    }
  }
}

function bcjPowerPc(buf: Uint8Array, start: number): void {
  for (let i = 0; i + 4 <= buf.length; i += 4) {
    let instr = readBe32(buf, i);
    if ((instr & 0xfc000003) >>> 0 === 0x48000001) {
      instr &= 0x03fffffc;
      instr = (instr - (start + i)) & 0x03fffffc;
      writeBe32(buf, i, (instr | 0x48000001) >>> 0);
    }
  }
}

function bcjIa64(buf: Uint8Array, start: number): void {
  const branchTable = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 6, 6, 0, 0, 7, 7, 4, 4, 0, 0, 4, 4, 0, 0];
  for (let i = 0; i + 16 <= buf.length; i += 16) {
    const mask = branchTable[buf[i] & 0x1f];
    for (let slot = 0, bitPos = 5; slot < 3; slot++, bitPos += 41) {
      if (((mask >>> slot) & 1) === 0) continue;
      const bytePos = bitPos >>> 3;
      const bitRes = BigInt(bitPos & 7);
      let instr = 0n;
      for (let j = 0; j < 6; j++) instr |= BigInt(buf[i + j + bytePos]) << BigInt(8 * j);
      let norm = instr >> bitRes;
      if (((norm >> 37n) & 0x0fn) === 0x05n && ((norm >> 9n) & 0x07n) === 0n) {
        let addr = Number((norm >> 13n) & 0x0fffffn);
        addr |= Number((norm >> 36n) & 1n) << 20;
        addr = ((addr << 4) - (start + i)) >>> 0;
        addr >>>= 4;
        norm &= ~(0x8fffffn << 13n);
        norm |= BigInt(addr & 0x0fffff) << 13n;
        norm |= BigInt(addr & 0x100000) << 16n;
        instr &= (1n << bitRes) - 1n;
        instr |= norm << bitRes;
        for (let j = 0; j < 6; j++) buf[i + j + bytePos] = Number((instr >> BigInt(8 * j)) & 0xffn);
      }
    }
  }
}

function bcjArm(buf: Uint8Array, start: number): void {
  for (let i = 0; i + 4 <= buf.length; i += 4) {
    if (buf[i + 3] !== 0xeb) continue;
    let addr = buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16);
    addr = ((addr << 2) - (start + i + 8)) >>> 2;
    buf[i] = addr;
    buf[i + 1] = addr >>> 8;
    buf[i + 2] = addr >>> 16;
  }
}

function bcjArmThumb(buf: Uint8Array, start: number): void {
  for (let i = 0; i + 4 <= buf.length; i += 2) {
    if ((buf[i + 1] & 0xf8) !== 0xf0 || (buf[i + 3] & 0xf8) !== 0xf8) continue;
    let addr = ((buf[i + 1] & 7) << 19) | (buf[i] << 11) | ((buf[i + 3] & 7) << 8) | buf[i + 2];
    addr = ((addr << 1) - (start + i + 4)) >>> 1;
    buf[i + 1] = 0xf0 | ((addr >>> 19) & 7);
    buf[i] = addr >>> 11;
    buf[i + 3] = 0xf8 | ((addr >>> 8) & 7);
    buf[i + 2] = addr;
    i += 2;
  }
}

function bcjSparc(buf: Uint8Array, start: number): void {
  for (let i = 0; i + 4 <= buf.length; i += 4) {
    let instr = readBe32(buf, i);
    if (instr >>> 22 !== 0x100 && instr >>> 22 !== 0x1ff) continue;
    instr = ((instr << 2) - (start + i)) >>> 2;
    instr = ((0x40000000 - (instr & 0x400000)) | 0x40000000 | (instr & 0x3fffff)) >>> 0;
    writeBe32(buf, i, instr);
  }
}

function bcjArm64(buf: Uint8Array, start: number): void {
  for (let i = 0; i + 4 <= buf.length; i += 4) {
    const pc = (start + i) >>> 0;
    let instr = readLe32(buf, i);
    if (instr >>> 26 === 0x25) {
      // BL
      const addr = (instr - (pc >>> 2)) >>> 0;
      writeLe32(buf, i, (0x94000000 | (addr & 0x03ffffff)) >>> 0);
    } else if (((instr & 0x9f000000) >>> 0) === 0x90000000) {
      // ADRP, only within +-512 MiB
      let addr = ((instr >>> 29) & 3) | ((instr >>> 3) & 0x001ffffc);
      if ((addr + 0x00020000) & 0x001c0000) continue;
      addr = (addr - (pc >>> 12)) >>> 0;
      instr &= 0x9000001f;
      instr |= (addr & 3) << 29;
      instr |= (addr & 0x0003fffc) << 3;
      instr |= -(addr & 0x00020000) & 0x00e00000;
      writeLe32(buf, i, instr >>> 0);
    }
  }
}

/**
 * The "xz" compressor (id 4), reading only: decoding is pure JS and
 * synchronous, so it can sit in the registry `defaultCodecs()` builds.
 * For writing use `createXzCodec()` (xz-encoder.ts; on Node, loadNodeCodecs()
 * registers it). Levels are xz's presets, 0-9, default 6.
 */
export function xzCodec(): Codec {
  return readOnlyCodec(
    XZ_ID,
    'xz',
    { defaultLevel: 6, minLevel: 0, maxLevel: 9 },
    decodeXz,
    'this codec only reads: register `await createXzCodec()` to write xz (on Node, loadNodeCodecs() does)',
  );
}
