import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';

/** An incremental hash. */
export interface Hasher {
  update(data: Uint8Array): void;
  digest(): Uint8Array;
}

export type HashFactory = () => Hasher;

/** Portable SHA-256 (@noble/hashes); Node passes its native one. */
export const sha256: HashFactory = () => {
  const hash = nobleSha256.create();
  return {
    update: (data) => void hash.update(data),
    digest: () => hash.digest(),
  };
};

export function toHex(bytes: Uint8Array): string {
  // One flat string from character codes: appending two-digit pieces would make a rope of 2n small
  // strings, which a dedupe table keeping a key per file holds on to (kilobytes per file).
  const codes = new Array<number>(bytes.length * 2);
  for (let i = 0; i < bytes.length; i++) {
    codes[2 * i] = HEX_DIGITS.charCodeAt(bytes[i]! >> 4);
    codes[2 * i + 1] = HEX_DIGITS.charCodeAt(bytes[i]! & 15);
  }
  let hex = '';
  for (let at = 0; at < codes.length; at += 8192) hex += String.fromCharCode(...codes.slice(at, at + 8192));
  return hex;
}

const HEX_DIGITS = '0123456789abcdef';
