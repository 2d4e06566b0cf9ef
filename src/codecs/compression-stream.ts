import { SquashfsError } from '../errors.js';
import type { Codec } from './codec.js';
import { gzipCodec } from './gzip.js';

/** True when the runtime has the Web `CompressionStream` (workerd, browsers, Node 18+, Deno, Bun). */
export function hasCompressionStream(): boolean {
  return typeof CompressionStream !== 'undefined';
}

/**
 * Deflates one block with `CompressionStream('deflate')`, which emits a zlib
 * stream (RFC 1950: 2-byte header, deflate data, Adler-32), exactly what
 * SquashFS's "gzip" compressor stores.
 */
export async function deflateWithCompressionStream(data: Uint8Array): Promise<Uint8Array> {
  const stream = new CompressionStream('deflate');
  const writer = stream.writable.getWriter();
  // Written and closed without awaiting: the readable side must be drained meanwhile.
  const written = writer.write(data as Uint8Array<ArrayBuffer>).then(() => writer.close());
  written.catch(() => undefined); // the same failure surfaces on the readable side
  const chunks: Uint8Array[] = [];
  let length = 0;
  const reader = stream.readable.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    length += value.length;
  }
  await written;
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/**
 * The "gzip" compressor (id 1) with data blocks deflated by the runtime's
 * native zlib through the Web `CompressionStream('deflate')`: the fast path
 * in Cloudflare Workers, where CPU time is billed and fflate is pure JS.
 *
 * Only `compressAsync` (which the writer uses for data and fragment blocks)
 * is native. The synchronous `compress` (metadata blocks) and `decompress`
 * are fflate's, from `gzipCodec()`. Where `CompressionStream` is missing,
 * this is plain `gzipCodec()`.
 *
 * Levels: `CompressionStream` takes none; it deflates at the runtime's
 * zlib default (level 6, header 78 9c). The level asked for then applies
 * to the fflate-compressed metadata only, and the compressor options in the
 * superblock record that level (they are informational: readers ignore
 * them). Data blocks use the native path at every level, on purpose: what
 * the runtime's zlib makes at its default level is about as small as
 * fflate's level 9 (2% smaller on a 128 KiB block of JavaScript source;
 * a 0.6% larger image for the generated text of test/workerd/tree.ts), and
 * it is faster than fflate even at level 1 (about 7 ms against 15 ms a
 * block in Node 20); falling back to fflate for an explicit level would
 * cost CPU time, which Workers bill, for a percent of size. Pass
 * `{ native: false }` for fflate throughout (exact levels).
 *
 * The bytes differ from fflate's (and may differ between runtimes' zlib
 * builds), but any zlib inflater reads both; within one runtime the output
 * is deterministic.
 */
export function compressionStreamGzipCodec(options: { native?: boolean } = {}): Codec {
  const base = gzipCodec();
  if (options.native === false || !hasCompressionStream()) return base;
  return {
    ...base,
    async compressAsync(data: Uint8Array): Promise<Uint8Array> {
      try {
        return await deflateWithCompressionStream(data);
      } catch (cause) {
        throw new SquashfsError('CODEC_ERROR', `CompressionStream failed on a block of ${data.length} bytes: ${(cause as Error).message}`, { cause });
      }
    },
  };
}
