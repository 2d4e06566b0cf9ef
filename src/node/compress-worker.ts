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

export type CompressReply = { id: number; bytes: Uint8Array; word: number } | { id: number; error: string };

const port = parentPort!;
const codec = codecByName(await loadNodeCodecs(), (workerData as { codec: string }).codec);

/** A buffer that owns all of its ArrayBuffer, so it can be transferred. */
const owned = (bytes: Uint8Array) =>
  bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();

port.on('message', ({ id, data, level }: CompressRequest) => {
  try {
    const packed = codec.compress(data, level);
    const reply: CompressReply =
      packed.length < data.length ? { id, bytes: owned(packed), word: packed.length } : { id, bytes: data, word: data.length | DATA_UNCOMPRESSED };
    port.postMessage(reply, [reply.bytes.buffer as ArrayBuffer]);
  } catch (error) {
    port.postMessage({ id, error: (error as Error).message } satisfies CompressReply);
  }
});
