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
  let hex = '';
  for (const b of bytes) hex += b.toString(16).padStart(2, '0');
  return hex;
}
