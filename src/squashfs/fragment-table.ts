import { getU64, setU64 } from './bytes.js';

/** One fragment table entry (16 bytes). */
export interface FragmentEntry {
  /** Absolute position of the fragment block. */
  start: number;
  /** Size word: bits 0-23 stored length, bit 24 stored uncompressed. */
  size: number;
}

export const FRAGMENT_ENTRY_SIZE = 16;

export function encodeFragmentTable(entries: readonly FragmentEntry[]): Uint8Array {
  const bytes = new Uint8Array(entries.length * FRAGMENT_ENTRY_SIZE);
  const view = new DataView(bytes.buffer);
  entries.forEach((entry, i) => {
    setU64(view, i * FRAGMENT_ENTRY_SIZE, entry.start);
    view.setUint32(i * FRAGMENT_ENTRY_SIZE + 8, entry.size, true);
    // the last u32 is unused and stays 0
  });
  return bytes;
}

export function decodeFragmentEntry(payload: Uint8Array, index: number): FragmentEntry {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const o = index * FRAGMENT_ENTRY_SIZE;
  return { start: getU64(view, o), size: view.getUint32(o + 8, true) };
}
