/**
 * An unpack worker: writes the files it is sent straight out of the image
 * file (its own descriptor, its own decompression), so extraction uses
 * every core. Replies once per batch.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { codecById } from '../codecs/codec.js';
import { nodeCodecs } from './codecs.js';
import { FileExtractor, type FileTask, type ImageGeometry } from './file-extractor.js';

export interface ExtractRequest {
  id: number;
  tasks: FileTask[];
}

/** An error as it crosses threads: its code (a SquashfsError's, or errno's) and message. */
export interface ExtractFailure {
  code?: string;
  message: string;
  offset?: number;
  /** The file being written. */
  path?: string;
  squashfs: boolean;
}

export type ExtractReply = { id: number; bytes: number } | { id: number; error: ExtractFailure };

const port = parentPort!;
const { image, compressionId } = workerData as { image: ImageGeometry; compressionId: number };
const extractor = new FileExtractor(image, codecById(nodeCodecs(), compressionId));

port.on('message', ({ id, tasks }: ExtractRequest) => {
  let bytes = 0;
  let current: FileTask | undefined;
  try {
    for (current of tasks) bytes += extractor.write(current);
    port.postMessage({ id, bytes } satisfies ExtractReply);
  } catch (error) {
    const e = error as Error & { code?: string; offset?: number };
    const path = current && Buffer.from(current.path).toString();
    port.postMessage({ id, error: { code: e.code, message: e.message, offset: e.offset, path, squashfs: e.name === 'SquashfsError' } } satisfies ExtractReply);
  }
});
