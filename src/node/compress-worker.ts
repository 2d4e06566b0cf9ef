/**
 * A compression worker: compresses data blocks for the writer's pool and
 * decides, like the writer would, whether a block is stored compressed.
 * Blocks travel by transfer, not by copy.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { codecByName } from '../codecs/codec.js';
import { DATA_UNCOMPRESSED } from '../squashfs/constants.js';
import { loadNodeCodecs } from './codecs.js';

export interface CompressRequest {
  id: number;
  data: Uint8Array;
  level: number;
}

/** `spare` is the block's own buffer (a view on it), handed back for reuse when the reply carries other bytes. */
export type CompressReply = { id: number; bytes: Uint8Array; word: number; spare?: Uint8Array } | { id: number; error: string };

export interface CompressWorkerData {
  codec: string;
  zstdModule?: WebAssembly.Module;
}

const port = parentPort!;
const { codec: name, zstdModule } = workerData as CompressWorkerData;
const codec = codecByName(await loadNodeCodecs({ zstdModule }), name);

/** A buffer that owns all of its ArrayBuffer, so it can be transferred. */
const owned = (bytes: Uint8Array) =>
  bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();

port.on('message', ({ id, data, level }: CompressRequest) => {
  try {
    const packed = codec.compress(data, level);
    if (packed.length < data.length) {
      const bytes = owned(packed);
      port.postMessage({ id, bytes, word: packed.length, spare: data } satisfies CompressReply, [bytes.buffer as ArrayBuffer, data.buffer as ArrayBuffer]);
    } else {
      port.postMessage({ id, bytes: data, word: data.length | DATA_UNCOMPRESSED } satisfies CompressReply, [data.buffer as ArrayBuffer]);
    }
  } catch (error) {
    port.postMessage({ id, error: (error as Error).message } satisfies CompressReply);
  }
});
