/** An ImageSink that keeps the image in memory (no node: imports: the workerd Worker bundles it too). */
import type { ImageSink } from '../../src/squashfs/writer/output.js';

export interface MemorySink extends ImageSink {
  /** The chunks as written (the first is the superblock placeholder). */
  readonly chunks: Uint8Array[];
  /** The whole image, with the superblock patched in at offset 0. */
  image(): Uint8Array;
}

export function memorySink(): MemorySink {
  const chunks: Uint8Array[] = [];
  let superblock: Uint8Array | undefined;
  return {
    chunks,
    write: (chunk) => void chunks.push(chunk.slice()),
    finish: (sb) => void (superblock = sb),
    image() {
      const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
      let offset = 0;
      for (const chunk of chunks) {
        out.set(chunk, offset);
        offset += chunk.length;
      }
      if (!superblock) throw new Error('the writer did not finish: no superblock');
      out.set(superblock, 0);
      return out;
    },
  };
}
