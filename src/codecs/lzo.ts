import { checkLength, type Codec } from './codec.js';
import { codecError, readOnlyCodec } from './lzma.js';

/** lzo's on-disk compressor id (superblock `compression_id`). */
export const LZO_ID = 3;

/**
 * The "lzo" compressor (id 3): raw LZO1X blocks (squashfs-tools writes
 * LZO1X-999 by default, LZO1X-1 on request; one decoder reads both).
 * No maintained pure-JS LZO decoder exists, so this is written by hand from
 * the public description of the LZO1X bitstream (instruction classes by the
 * top bits of the opcode; the meaning of 0..15 depends on how many literals
 * the previous instruction copied). Every read and write is bounds-checked.
 */
export function decodeLzo1x(src: Uint8Array, expectedLength: number, atMost = false): Uint8Array {
  const fail: (message: string) => never = (message) => codecError('lzo', message);
  const out = new Uint8Array(expectedLength);
  const end = src.length;
  let ip = 0;
  let op = 0;

  /** A length continued by zero bytes (255 each) and a final non-zero byte. */
  const extend = (base: number): number => {
    let n = base;
    for (;;) {
      if (ip >= end) fail(`length at input offset ${ip} passes the end of the input (${end})`);
      const b = src[ip++];
      if (b !== 0) return n + b;
      n += 255;
    }
  };
  const literals = (count: number): void => {
    if (count > end - ip) fail(`${count} literals at input offset ${ip} pass the end of the input (${end})`);
    if (count > expectedLength - op) fail(`${count} literals at output offset ${op} pass the expected ${expectedLength} bytes`);
    if (count < 16) {
      for (let i = 0; i < count; i++) out[op + i] = src[ip + i];
    } else {
      out.set(src.subarray(ip, ip + count), op);
    }
    ip += count;
    op += count;
  };
  const match = (distance: number, length: number): void => {
    if (distance > op) fail(`match distance ${distance} at output offset ${op} reaches before the start`);
    if (length > expectedLength - op) fail(`match of ${length} bytes at output offset ${op} passes the expected ${expectedLength} bytes`);
    const from = op - distance;
    if (length > 32 && distance >= length) {
      out.copyWithin(op, from, from + length);
    } else {
      for (let i = 0; i < length; i++) out[op + i] = out[from + i];
    }
    op += length;
  };

  if (end === 0) fail('empty input');
  // Literals copied by the previous instruction: 0, 1-3, or 4 for "a run of 4 or more".
  let state = 0;
  if (src[0] > 17) {
    const count = src[0] - 17;
    ip = 1;
    literals(count);
    state = count < 4 ? count : 4;
  }
  for (;;) {
    if (ip >= end) fail(`input ends at offset ${end} without an end-of-stream marker`);
    const op0 = src[ip++];
    let distance: number;
    let length: number;
    let next: number;
    if (op0 < 16) {
      if (state === 0) {
        // A run of 4 or more literals.
        literals((op0 === 0 ? extend(15) : op0) + 3);
        state = 4;
        continue;
      }
      if (ip >= end) fail(`instruction at input offset ${ip - 1} passes the end of the input (${end})`);
      const h = src[ip++];
      // After 1-3 literals: 2 bytes within 1 KiB; after a run: 3 bytes at 2-3 KiB.
      length = state === 4 ? 3 : 2;
      distance = (h << 2) + (op0 >>> 2) + (state === 4 ? 2049 : 1);
      next = op0 & 3;
    } else if (op0 < 32) {
      // 16 KiB to 48 KiB away; distance exactly 16 KiB is the end of the stream.
      length = (op0 & 7) === 0 ? extend(7) : op0 & 7;
      length += 2;
      if (end - ip < 2) fail(`instruction at input offset ${ip - 1} passes the end of the input (${end})`);
      const le = src[ip] | (src[ip + 1] << 8);
      ip += 2;
      distance = 16384 + ((op0 & 8) << 11) + (le >>> 2);
      next = le & 3;
      if (distance === 16384) {
        if (ip !== end) fail(`${end - ip} bytes follow the end-of-stream marker at input offset ${ip - 3}`);
        break;
      }
    } else if (op0 < 64) {
      // Up to 16 KiB away.
      length = (op0 & 31) === 0 ? extend(31) : op0 & 31;
      length += 2;
      if (end - ip < 2) fail(`instruction at input offset ${ip - 1} passes the end of the input (${end})`);
      const le = src[ip] | (src[ip + 1] << 8);
      ip += 2;
      distance = (le >>> 2) + 1;
      next = le & 3;
    } else {
      // 3 to 8 bytes within 2 KiB.
      if (ip >= end) fail(`instruction at input offset ${ip - 1} passes the end of the input (${end})`);
      const h = src[ip++];
      length = op0 >= 128 ? 5 + ((op0 >>> 5) & 3) : 3 + ((op0 >>> 5) & 1);
      distance = (h << 3) + ((op0 >>> 2) & 7) + 1;
      next = op0 & 3;
    }
    match(distance, length);
    literals(next);
    state = next;
  }
  return checkLength('lzo', out.subarray(0, op), expectedLength, atMost);
}

/** The "lzo" compressor (id 3): read only. */
export function lzoCodec(): Codec {
  return readOnlyCodec(
    LZO_ID,
    'lzo',
    { defaultLevel: 8, minLevel: 1, maxLevel: 9 },
    decodeLzo1x,
    'images can be read, not written (use gzip or zstd)',
  );
}
