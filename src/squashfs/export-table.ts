/** The export table: the inode reference of every inode number, in order from 1 (u64 each). */
export function encodeExportTable(refs: readonly bigint[]): Uint8Array {
  const bytes = new Uint8Array(refs.length * 8);
  const view = new DataView(bytes.buffer);
  refs.forEach((ref, i) => view.setBigUint64(i * 8, ref, true));
  return bytes;
}
