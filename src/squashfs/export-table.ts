import { setU64 } from './bytes.js';

/**
 * The export table: the inode reference (block << 16 | offset) of every
 * inode number, in order from 1 (u64 each).
 */
export function encodeExportTable(refs: ArrayLike<number>): Uint8Array {
  const bytes = new Uint8Array(refs.length * 8);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < refs.length; i++) setU64(view, i * 8, refs[i]!);
  return bytes;
}
