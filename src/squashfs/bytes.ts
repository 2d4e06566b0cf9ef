import { SquashfsError } from '../errors.js';

/** Reads a u64 as a number, throwing beyond 2^53 instead of losing precision. */
export function getU64(view: DataView, offset: number): number {
  const value = view.getBigUint64(offset, true);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new SquashfsError('CORRUPT_IMAGE', `64-bit field at ${offset} is ${value}, beyond 2^53`, { offset });
  }
  return Number(value);
}

/** Writes a non-negative safe integer as a little-endian u64. */
export function setU64(view: DataView, offset: number, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`not a u64: ${value}`);
  view.setBigUint64(offset, BigInt(value), true);
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Byte-wise comparison, the order of names in a directory listing. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i]! - b[i]!;
  }
  return a.length - b.length;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && compareBytes(a, b) === 0;
}

/** True when every byte is zero: the block can be stored as a hole. */
export function isAllZero(bytes: Uint8Array): boolean {
  const words = bytes.byteOffset % 4 === 0 ? bytes.length >>> 2 : 0;
  if (words > 0) {
    const view = new Uint32Array(bytes.buffer, bytes.byteOffset, words);
    for (let i = 0; i < words; i++) if (view[i] !== 0) return false;
  }
  for (let i = words * 4; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });
const utf8Lossy = new TextDecoder('utf-8');

export function encodeUtf8(text: string): Uint8Array {
  return utf8.encode(text);
}

/** Decodes bytes as UTF-8, or returns undefined when they are not valid UTF-8. */
export function decodeUtf8Strict(bytes: Uint8Array): string | undefined {
  try {
    return utf8Strict.decode(bytes);
  } catch {
    return undefined;
  }
}

/** Decodes bytes for messages and display; invalid sequences become U+FFFD. */
export function decodeUtf8Lossy(bytes: Uint8Array): string {
  return utf8Lossy.decode(bytes);
}
