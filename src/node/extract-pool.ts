import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { codecById } from '../codecs/codec.js';
import { SquashfsError, type SquashfsErrorCode } from '../errors.js';
import { nodeCodecs } from './codecs.js';
import { FileExtractor, type FileTask, type ImageGeometry } from './file-extractor.js';
import type { ExtractFailure, ExtractReply } from './unpack-worker.js';
import { workerScript } from './worker-script.js';

interface Slot {
  worker: Worker;
  pending: Map<number, { resolve: (bytes: number) => void; reject: (error: Error) => void }>;
}

/** Batches a worker holds at once (one running, one waiting). */
const QUEUE = 4;

/**
 * Writes batches of files out of an image file on worker threads, each with
 * its own image descriptor and decompression, and on the calling thread
 * whenever every worker has its queue full: the caller works too, so no
 * core sits idle and nothing piles up. Default: one worker fewer than the
 * cores (the caller is the last one); with no workers, or no worker script,
 * every batch runs on the calling thread.
 */
export class ExtractPool {
  private readonly slots: Slot[] = [];
  private readonly inline: FileExtractor;
  private nextId = 0;
  private failed: Error | undefined;

  constructor(image: ImageGeometry, compressionId: number, threads = availableParallelism() - 1) {
    this.inline = new FileExtractor(image, codecById(nodeCodecs(), compressionId));
    const url = workerScript('unpack-worker');
    if (!url) return;
    for (let i = 0; i < threads; i++) {
      const slot: Slot = { worker: new Worker(url, { workerData: { image, compressionId } }), pending: new Map() };
      slot.worker.on('message', (reply: ExtractReply) => {
        const waiter = slot.pending.get(reply.id);
        if (!waiter) return;
        slot.pending.delete(reply.id);
        if ('error' in reply) waiter.reject(asError(reply.error));
        else waiter.resolve(reply.bytes);
      });
      slot.worker.on('error', (error) => this.fail(slot, error));
      slot.worker.on('exit', (code) => {
        if (slot.pending.size > 0) this.fail(slot, new Error(`an unpack worker exited with code ${code}`));
      });
      this.slots.push(slot);
    }
  }

  /** Worker threads (besides the calling one). */
  get threads(): number {
    return this.slots.length;
  }

  /** Writes a batch of files; resolves to the bytes written. Runs it here, at once, when every worker is busy. */
  run(tasks: FileTask[]): Promise<number> {
    if (this.failed) return Promise.reject(this.failed);
    const slot = this.slots.find((s) => s.pending.size < QUEUE);
    if (!slot) {
      try {
        let bytes = 0;
        for (const task of tasks) bytes += this.inline.write(task);
        return Promise.resolve(bytes);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    const id = this.nextId++;
    return new Promise<number>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      slot.worker.postMessage({ id, tasks });
    });
  }

  async close(): Promise<void> {
    this.inline.close();
    await Promise.all(this.slots.map((slot) => slot.worker.terminate()));
  }

  private fail(slot: Slot, cause: Error): void {
    this.failed ??= new SquashfsError('WRITE_FAILED', `an unpack worker failed: ${cause.message}`, { cause });
    for (const waiter of slot.pending.values()) waiter.reject(this.failed);
    slot.pending.clear();
  }
}

function asError(failure: ExtractFailure): SquashfsError {
  const code = (failure.squashfs ? failure.code : 'WRITE_FAILED') as SquashfsErrorCode;
  const message = failure.squashfs && failure.path ? `${failure.path}: ${failure.message}` : failure.message;
  return new SquashfsError(code, message, { path: failure.path, offset: failure.offset });
}
