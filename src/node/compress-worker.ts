/**
 * A compression worker: compresses data blocks for the writer's pool and
 * decides, like the writer would, whether a block is stored compressed.
 * Blocks travel by transfer, not by copy; or the worker reads them itself
 * from a file descriptor of the process.
 */
import { createHash } from 'node:crypto';
import { readSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { isAllZero } from '../squashfs/bytes.js';
import { codecByName, configureCodec, type CompressorOptions } from '../codecs/codec.js';
import { DATA_UNCOMPRESSED } from '../squashfs/constants.js';
import { loadNodeCodecs } from './codecs.js';

/**
 * A block to compress: its bytes, or where to read them (`length` bytes at
 * `position` of the open file `fd`). A block read here can also be hashed
 * (`digest`: 'also', the digest comes with the stored block) or only
 * hashed ('only': nothing is compressed, the reply is the digest).
 */
export type CompressRequest = { id: number; level: number } & ({ data: Uint8Array } | { fd: number; position: number; length: number; digest?: 'also' | 'only' });

/**
 * `spare` is the block's own buffer (a view on it), handed back for reuse
 * when the reply carries other bytes. A block read here that is all zeros
 * comes back as word 0 with no bytes (a hole); `ended` says where a file
 * ended before the block did; `readError` is a failed read's message and
 * errno code (e.g. EIO); `error` is the codec's.
 */
export type CompressReply =
  | { id: number; bytes: Uint8Array; word: number; spare?: Uint8Array; digest?: Uint8Array }
  | { id: number; digest: Uint8Array }
  | { id: number; ended: number }
  | { id: number; readError: string; code?: string }
  | { id: number; error: string };

/** Reads `length` bytes at `position`; the number read short of that when the file ends first. */
function readAt(fd: number, data: Uint8Array, position: number): number {
  let filled = 0;
  while (filled < data.length) {
    const n = readSync(fd, data, filled, data.length - filled, position + filled);
    if (n === 0) break;
    filled += n;
  }
  return filled;
}

export interface CompressWorkerData {
  codec: string;
  zstdModule?: WebAssembly.Module;
  xzModule?: WebAssembly.Module;
  lz4Module?: WebAssembly.Module;
  /** The writer's compressorOptions, applied as the writer applies them, so blocks come out the same. */
  compressorOptions?: CompressorOptions;
  blockSize: number;
}

const port = parentPort!;
const { codec: name, zstdModule, xzModule, lz4Module, compressorOptions, blockSize } = workerData as CompressWorkerData;
const codec = configureCodec(codecByName(await loadNodeCodecs({ zstdModule, xzModule, lz4Module, compressors: [name] }), name), compressorOptions, blockSize);

/** A buffer that owns all of its ArrayBuffer, so it can be transferred. */
const owned = (bytes: Uint8Array) =>
  bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();

/** Where blocks read here land; reused, so what leaves the thread is a copy or the compressed bytes. */
let readBuffer = new Uint8Array(0);

/**
 * Compresses `data` and replies with the compressed bytes, or with the
 * block itself when compression does not shrink it. A block that came
 * from the main thread goes back (as `spare`, or as the raw bytes); one
 * in `readBuffer` stays here, so its raw bytes leave as a copy.
 */
function compressAndReply(id: number, data: Uint8Array, level: number, fromMain: boolean, digest?: Uint8Array): void {
  const packed = codec.compress(data, level);
  if (packed.length < data.length) {
    const bytes = owned(packed);
    const spare = fromMain ? data : undefined;
    port.postMessage({ id, bytes, word: packed.length, spare, digest } satisfies CompressReply, spare ? [bytes.buffer as ArrayBuffer, spare.buffer as ArrayBuffer] : [bytes.buffer as ArrayBuffer]);
  } else {
    const bytes = fromMain ? data : data.slice();
    port.postMessage({ id, bytes, word: data.length | DATA_UNCOMPRESSED, digest } satisfies CompressReply, [bytes.buffer as ArrayBuffer]);
  }
}

/** SHA-256 of a block read here (for the writer's duplicate detection of large files). */
const sha256 = (data: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(data).digest());

port.on('message', (request: CompressRequest) => {
  const { id, level } = request;
  try {
    if ('data' in request) {
      compressAndReply(id, request.data, level, true);
      return;
    }
    const { fd, position, length } = request;
    if (readBuffer.length < length) readBuffer = new Uint8Array(length);
    const data = readBuffer.subarray(0, length);
    let filled: number;
    try {
      filled = readAt(fd, data, position);
    } catch (error) {
      const e = error as Error & { code?: unknown };
      port.postMessage({ id, readError: e.message, code: typeof e.code === 'string' ? e.code : undefined } satisfies CompressReply);
      return;
    }
    if (filled < length) {
      port.postMessage({ id, ended: position + filled } satisfies CompressReply);
      return;
    }
    const digest = request.digest ? sha256(data) : undefined;
    if (request.digest === 'only') {
      port.postMessage({ id, digest: digest! } satisfies CompressReply);
      return;
    }
    if (isAllZero(data)) {
      port.postMessage({ id, bytes: new Uint8Array(0), word: 0, digest } satisfies CompressReply);
      return;
    }
    compressAndReply(id, data, level, false, digest);
  } catch (error) {
    port.postMessage({ id, error: (error as Error).message } satisfies CompressReply);
  }
});
