import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { SquashfsError } from '../errors.js';
import type { StoredBlock } from '../squashfs/writer/output.js';
import type { WriterOptions } from '../squashfs/writer/writer.js';
import type { CompressReply, CompressRequest, CompressWorkerData } from './compress-worker.js';
import { workerScript } from './worker-script.js';
import { DEFAULT_BLOCK_SIZE } from '../squashfs/constants.js';
import { loadZstdWasmModule } from '../codecs/zstd-wasm.js';
import { loadLz4WasmModule } from '../codecs/lz4-wasm.js';
import { loadXzWasmModule } from '../codecs/xz-wasm.js';
import type { CompressorOptions } from '../codecs/codec.js';

const workerUrl = () => workerScript('compress-worker');

/** Uncompressed bytes the writer may have in flight through a pool. */
const IN_FLIGHT_BYTES = 32 * 1024 * 1024;

/**
 * How many blocks the writer keeps in flight through a pool of `threads`:
 * 32 MiB worth. A deep window lets the main thread read on through runs
 * of small files (which give the workers little to do) while the workers
 * still chew on the blocks of the large files before them; 4 per thread
 * left both sides idle by turns (zstd -3: 2.7 s, now 2.35 s on the corpus).
 */
export function inFlightBlocks(threads: number, blockSize: number): number {
  return Math.max(8, threads * 4, Math.floor(IN_FLIGHT_BYTES / blockSize));
}

/**
 * zstd.wasm compiled here, for a pool's workers to share; undefined for
 * other codecs or when it cannot be loaded (each worker then reports why
 * when asked to compress).
 */
export async function sharedZstdModule(codec: string): Promise<WebAssembly.Module | undefined> {
  return codec === 'zstd' ? loadZstdWasmModule().catch(() => undefined) : undefined;
}

/**
 * The WASM module `codec` compresses with (zstd.wasm, xz.wasm), compiled
 * here for a pool's workers to share, as CompressPoolOptions; nothing for
 * other codecs or when it cannot be loaded (each worker then reports why).
 */
export async function sharedModules(codec: string): Promise<Pick<CompressPoolOptions, 'zstdModule' | 'xzModule' | 'lz4Module'>> {
  if (codec === 'zstd') return { zstdModule: await sharedZstdModule(codec) };
  if (codec === 'xz') return { xzModule: await loadXzWasmModule().catch(() => undefined) };
  if (codec === 'lz4') return { lz4Module: await loadLz4WasmModule().catch(() => undefined) };
  return {};
}

/** Spare block buffers kept at most. */
const MAX_SPARES = 64;

export interface CompressPoolOptions {
  /** Worker threads (default: the available cores). */
  threads?: number;
  /** The image's block size: `buffer` hands out buffers of this many bytes, which come back from the workers for reuse. */
  blockSize?: number;
  /**
   * zstd.wasm compiled once here and shared by every worker (V8 shares the
   * compiled code between threads), instead of each compiling its own.
   */
  zstdModule?: WebAssembly.Module;
  /** xz.wasm, likewise. */
  xzModule?: WebAssembly.Module;
  /** lz4.wasm (liblz4), likewise; without it, lz4 compresses in pure JS. */
  lz4Module?: WebAssembly.Module;
  /** The codec's settings beyond the level (WriterOptions.compressorOptions), for an image of `blockSize` blocks. */
  compressorOptions?: CompressorOptions;
}

/** A stored block, or (for a request that only hashes) the digest. */
type Answer = StoredBlock | Uint8Array;

interface Slot {
  worker: Worker;
  pending: Map<number, { resolve: (answer: Answer) => void; reject: (error: Error) => void }>;
}

/**
 * Compresses data blocks on worker threads (default: one per core). Blocks
 * are transferred to a worker and back, so the caller must not touch a
 * block after handing it over. Results come back per block; the writer
 * puts them in order, so the image is the same whatever the thread count.
 */
export class CompressPool {
  /** Whether the worker script can be found (not, e.g., when this code is bundled elsewhere). */
  static available(): boolean {
    return workerUrl() !== undefined;
  }

  private readonly slots: Slot[];
  /** Block-size buffers the workers handed back, for `buffer` to reuse. */
  private readonly spares: ArrayBuffer[] = [];
  /** Buffers `buffer` handed out: whole, they may travel to a worker and back. */
  private readonly ours = new WeakSet<ArrayBufferLike>();
  private nextId = 0;
  private failed: Error | undefined;

  private readonly blockSize: number;

  constructor(codec: string, options: CompressPoolOptions = {}) {
    const { threads = availableParallelism(), blockSize = DEFAULT_BLOCK_SIZE, zstdModule, xzModule, lz4Module, compressorOptions } = options;
    this.blockSize = blockSize;
    const url = workerUrl();
    if (!url) throw new SquashfsError('INVALID_OPTION', 'the compression worker script is missing: run the build (npm run build)');
    this.slots = Array.from({ length: Math.max(1, threads) }, () => {
      const slot: Slot = { worker: new Worker(url, { workerData: { codec, zstdModule, xzModule, lz4Module, compressorOptions, blockSize } satisfies CompressWorkerData }), pending: new Map() };
      slot.worker.on('message', (reply: CompressReply) => {
        const waiter = slot.pending.get(reply.id);
        if (!waiter) return;
        slot.pending.delete(reply.id);
        if ('ended' in reply) waiter.reject(new SquashfsError('SOURCE_CHANGED', `it ended at ${reply.ended} bytes`));
        else if ('readError' in reply) waiter.reject(Object.assign(new Error(reply.readError), { code: reply.code }));
        else if ('error' in reply) waiter.reject(new SquashfsError('CODEC_ERROR', `${codec} compression failed on a worker: ${reply.error}`));
        else if (!('bytes' in reply)) waiter.resolve(reply.digest);
        else {
          const spare = reply.spare?.buffer;
          if (spare && spare.byteLength === this.blockSize && this.spares.length < MAX_SPARES) this.spares.push(spare as ArrayBuffer);
          waiter.resolve(reply.digest ? { bytes: reply.bytes, word: reply.word, digest: reply.digest } : { bytes: reply.bytes, word: reply.word });
        }
      });
      slot.worker.on('error', (error) => this.fail(slot, error));
      slot.worker.on('exit', (code) => {
        if (slot.pending.size > 0) this.fail(slot, new Error(`a compression worker exited with code ${code}`));
      });
      slot.worker.unref();
      return slot;
    });
  }

  get threads(): number {
    return this.slots.length;
  }

  /**
   * A buffer of `length` bytes to read a block into (contents undefined):
   * for up to a block, a view on a block-size buffer that `store` sends to
   * a worker whole and the worker hands back for reuse. Reusing them spares
   * the main thread allocating, zeroing and collecting a buffer per block
   * (and the kernel mapping fresh pages for each).
   */
  buffer(length: number): Uint8Array {
    if (length > this.blockSize) return new Uint8Array(length);
    const buffer = this.spares.pop() ?? new ArrayBuffer(this.blockSize);
    this.ours.add(buffer);
    return new Uint8Array(buffer, 0, length);
  }

  /** Compresses one block (transferring it), or keeps it raw when that is smaller. */
  store(data: Uint8Array, level: number): Promise<StoredBlock> {
    const whole = this.ours.has(data.buffer) || (data.byteOffset === 0 && data.byteLength === data.buffer.byteLength);
    const owned = whole ? data : data.slice();
    return this.send({ id: 0, data: owned, level }, [owned.buffer as ArrayBuffer]) as Promise<StoredBlock>;
  }

  /**
   * Reads `length` bytes at `position` of the open file `fd` on a worker
   * and stores them as `store` would; an all-zero block comes back as word
   * 0 with no bytes (a hole). Rejects with SOURCE_CHANGED (message "it
   * ended at N bytes") when the file is shorter, and with errno's error
   * when reading fails. `fd` must stay open until this settles. With
   * `digest`, the block comes with the SHA-256 of the bytes read (as
   * hashFile gives it).
   */
  storeFile(fd: number, position: number, length: number, level: number, digest = false): Promise<StoredBlock> {
    return this.send({ id: 0, fd, position, length, level, digest: digest ? 'also' : undefined }, []) as Promise<StoredBlock>;
  }

  /** Reads `length` bytes at `position` of `fd` on a worker and resolves their SHA-256; rejects as storeFile does. */
  hashFile(fd: number, position: number, length: number): Promise<Uint8Array> {
    return this.send({ id: 0, fd, position, length, level: 0, digest: 'only' }, []) as Promise<Uint8Array>;
  }

  private send(request: CompressRequest, transfer: ArrayBuffer[]): Promise<Answer> {
    if (this.failed) return Promise.reject(this.failed);
    const slot = this.slots.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const id = this.nextId++;
    return new Promise<Answer>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      slot.worker.ref();
      slot.worker.postMessage({ ...request, id }, transfer);
    }).finally(() => {
      if (slot.pending.size === 0) slot.worker.unref();
    });
  }

  /** What the writer takes to compress through this pool (WriterOptions' storeBlock, blockBuffer, storeFileBlock, hashFileBlock and maxInFlight). */
  writerOptions(): Required<Pick<WriterOptions, 'storeBlock' | 'blockBuffer' | 'storeFileBlock' | 'hashFileBlock' | 'maxInFlight'>> {
    return {
      storeBlock: (data, level) => this.store(data, level),
      blockBuffer: (length) => this.buffer(length),
      storeFileBlock: (fd, position, length, level, digest) => this.storeFile(fd, position, length, level, digest),
      hashFileBlock: (fd, position, length) => this.hashFile(fd, position, length),
      maxInFlight: inFlightBlocks(this.threads, this.blockSize),
    };
  }

  async close(): Promise<void> {
    await Promise.all(this.slots.map((slot) => slot.worker.terminate()));
  }

  private fail(slot: Slot, cause: Error): void {
    this.failed ??= new SquashfsError('CODEC_ERROR', `a compression worker failed: ${cause.message}`, { cause });
    for (const waiter of slot.pending.values()) waiter.reject(this.failed);
    slot.pending.clear();
  }
}
