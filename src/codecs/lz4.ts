import { checkLength, checkLevel, type Codec } from './codec.js';
import { encodeLz4Block, LZ4_HC_MIN_LEVEL, LZ4_MAX_LEVEL } from './lz4-encoder.js';
import { codecError, guardDecode } from './lzma.js';
import { instantiateLz4Wasm, loadLz4WasmModule } from './lz4-wasm.js';

/** lz4's on-disk compressor id (superblock `compression_id`). */
export const LZ4_ID = 5;

/**
 * The "lz4" compressor (id 5). squashfs stores raw LZ4 blocks (no frame):
 * sequences of a token (literal length << 4 | match length - 4), literals,
 * a little-endian 16-bit match offset and length extensions of 255-bytes.
 * Written by hand from the public block format description because lz4js,
 * the npm decoder, does no bounds checks; this one checks every read and
 * write against the input and the expected length.
 */
export function decodeLz4Block(src: Uint8Array, expectedLength: number, atMost = false): Uint8Array {
  const fail: (message: string) => never = (message) => codecError('lz4', message);
  const out = new Uint8Array(expectedLength);
  const end = src.length;
  let ip = 0;
  let op = 0;
  if (end === 0) fail('empty input');
  for (;;) {
    const token = src[ip++];
    let literals = token >>> 4;
    if (literals === 15) {
      let b: number;
      do {
        if (ip >= end) fail(`literal length at input offset ${ip} passes the end of the input (${end})`);
        b = src[ip++];
        literals += b;
      } while (b === 255);
    }
    if (literals > end - ip) fail(`${literals} literals at input offset ${ip} pass the end of the input (${end})`);
    if (literals > expectedLength - op) fail(`${literals} literals at output offset ${op} pass the expected ${expectedLength} bytes`);
    if (literals < 16) {
      for (let i = 0; i < literals; i++) out[op + i] = src[ip + i];
    } else {
      out.set(src.subarray(ip, ip + literals), op);
    }
    ip += literals;
    op += literals;
    if (ip === end) break; // the last sequence has literals only
    if (end - ip < 2) fail(`match offset at input offset ${ip} passes the end of the input (${end})`);
    const offset = src[ip] | (src[ip + 1] << 8);
    ip += 2;
    if (offset === 0 || offset > op) fail(`match offset ${offset} at output offset ${op} reaches before the start`);
    let length = token & 15;
    if (length === 15) {
      let b: number;
      do {
        if (ip >= end) fail(`match length at input offset ${ip} passes the end of the input (${end})`);
        b = src[ip++];
        length += b;
      } while (b === 255);
    }
    length += 4;
    if (length > expectedLength - op) fail(`match of ${length} bytes at output offset ${op} passes the expected ${expectedLength} bytes`);
    const from = op - offset;
    if (length > 32 && offset >= length) {
      out.copyWithin(op, from, from + length);
    } else {
      for (let i = 0; i < length; i++) out[op + i] = out[from + i];
    }
    op += length;
    if (ip >= end) fail(`input ends at offset ${end} after a match; the last sequence must be literals`);
  }
  return checkLength('lz4', out.subarray(0, op), expectedLength, atMost);
}

/** Compressor options version: "legacy" raw blocks, the only one squashfs knows. */
const LZ4_LEGACY = 1;
/** Compressor options flag: high compression (mksquashfs -Xhc). */
const LZ4_HC = 1;

/**
 * lz4's compressor options (squashfs-tools lz4_comp_opts, always written):
 * u32 version 1, u32 flags (1: high compression). The level itself is not
 * recorded (4.5's format has no room for it; readers need none).
 */
export function encodeLz4Options(level: number): Uint8Array {
  const bytes = new Uint8Array(8);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, LZ4_LEGACY, true);
  view.setUint32(4, level >= LZ4_HC_MIN_LEVEL ? LZ4_HC : 0, true);
  return bytes;
}

/**
 * The "lz4" compressor (id 5), reading and writing, in pure JS on any
 * runtime. Levels follow lz4's own numbering: 1 (the default) and 2 are
 * plain lz4 (mksquashfs's default), 3 to 12 high compression at that level
 * (mksquashfs -Xhc is 12; 9 is lz4's usual HC level, a little larger and
 * several times faster). See lz4-encoder.ts.
 */
export function lz4Codec(): Codec {
  const codec: Codec = {
    id: LZ4_ID,
    name: 'lz4',
    defaultLevel: 1,
    minLevel: 1,
    maxLevel: LZ4_MAX_LEVEL,
    compress(data, level) {
      checkLevel(codec, level);
      return encodeLz4Block(data, level);
    },
    decompress: (data, expectedLength, atMost) => guardDecode('lz4', data, expectedLength, () => decodeLz4Block(data, expectedLength, atMost)),
    encodeOptions: (level) => encodeLz4Options(level),
  };
  return codec;
}

export interface Lz4CodecOptions {
  /**
   * The package's `lz4.wasm` (our liblz4 build, scripts/lz4-wasm),
   * compiled. Default, on Node: the package's dist/lz4.wasm, read and
   * compiled once per thread. Where neither is at hand, lz4Codec() (pure
   * JS) compresses instead.
   */
  module?: WebAssembly.Module;
}

/**
 * The "lz4" compressor with liblz4 itself (WebAssembly) compressing: the
 * same levels as lz4Codec(), about twice as fast as its pure-JS encoder,
 * and high compression as liblz4 (mksquashfs -Xhc) makes it.
 */
export async function createLz4Codec(options: Lz4CodecOptions = {}): Promise<Codec> {
  const wasm = instantiateLz4Wasm(options.module ?? (await loadLz4WasmModule()));
  const codec: Codec = {
    ...lz4Codec(),
    compress(data, level) {
      checkLevel(codec, level);
      return wasm.encode(data, level);
    },
  };
  return codec;
}
