/** Bytes of a digest the index keys on. */
const KEY_BYTES = 16;
const FIRST_CAPACITY = 1024;

/**
 * The dedupe table: file contents, keyed by size and the first 16 bytes of
 * their digest, to the file that stored them first. Kept in typed arrays
 * (an open-addressing hash over entry numbers), so a million distinct files
 * cost about 40 bytes each and no objects.
 */
export class DigestIndex {
  private count = 0;
  private keys = new Uint8Array(FIRST_CAPACITY * KEY_BYTES);
  private sizes = new Float64Array(FIRST_CAPACITY);
  private values = new Uint32Array(FIRST_CAPACITY);
  /** Entry number + 1 per slot, 0 for an empty slot; at most half full. */
  private slots = new Uint32Array(FIRST_CAPACITY * 2);

  /** The value stored for these contents, if any. */
  get(size: number, digest: Uint8Array): number | undefined {
    digest = keyOf(digest);
    const mask = this.slots.length - 1;
    for (let slot = hashOf(digest) & mask; ; slot = (slot + 1) & mask) {
      const held = this.slots[slot]!;
      if (held === 0) return undefined;
      if (this.matches(held - 1, size, digest)) return this.values[held - 1];
    }
  }

  /** Records contents not yet in the index. */
  set(size: number, digest: Uint8Array, value: number): void {
    if (this.count === this.values.length) this.grow();
    const entry = this.count++;
    this.keys.set(keyOf(digest).subarray(0, KEY_BYTES), entry * KEY_BYTES);
    this.sizes[entry] = size;
    this.values[entry] = value;
    this.place(entry);
  }

  private matches(entry: number, size: number, digest: Uint8Array): boolean {
    if (this.sizes[entry] !== size) return false;
    const at = entry * KEY_BYTES;
    for (let k = 0; k < KEY_BYTES; k++) if (this.keys[at + k] !== digest[k]) return false;
    return true;
  }

  private place(entry: number): void {
    const mask = this.slots.length - 1;
    let slot = hashOf(this.keys.subarray(entry * KEY_BYTES)) & mask;
    while (this.slots[slot] !== 0) slot = (slot + 1) & mask;
    this.slots[slot] = entry + 1;
  }

  private grow(): void {
    const capacity = this.values.length * 2;
    const keys = new Uint8Array(capacity * KEY_BYTES);
    keys.set(this.keys);
    this.keys = keys;
    const sizes = new Float64Array(capacity);
    sizes.set(this.sizes);
    this.sizes = sizes;
    const values = new Uint32Array(capacity);
    values.set(this.values);
    this.values = values;
    this.slots = new Uint32Array(capacity * 2);
    for (let entry = 0; entry < this.count; entry++) this.place(entry);
  }
}

/** A digest as a key of at least KEY_BYTES (a shorter one padded with zeros). */
function keyOf(digest: Uint8Array): Uint8Array {
  if (digest.length >= KEY_BYTES) return digest;
  const key = new Uint8Array(KEY_BYTES);
  key.set(digest);
  return key;
}

/** A digest's first four bytes: already uniformly spread. */
function hashOf(digest: Uint8Array): number {
  return (digest[0]! | (digest[1]! << 8) | (digest[2]! << 16) | (digest[3]! << 24)) >>> 0;
}
