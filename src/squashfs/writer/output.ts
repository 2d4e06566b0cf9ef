import { SquashfsError } from '../../errors.js';
import { DATA_UNCOMPRESSED } from '../constants.js';
import type { Codec } from '../../codecs/codec.js';

/**
 * Where the image goes. Chunks arrive in order; the first is a placeholder
 * for the superblock, whose real bytes arrive last through `finish` (a file
 * sink patches offset 0, an upload holds back its first part).
 */
export interface ImageSink {
  write(chunk: Uint8Array): void | Promise<void>;
  finish(superblock: Uint8Array): void | Promise<void>;
  /**
   * The image's next `length` bytes are bytes [offset, offset + length) of
   * the image a region is reused from (WriterOptions.reuse), put in place
   * without passing through here (e.g. copied on a store's side).
   */
  reuse?(offset: number, length: number): void | Promise<void>;
}

/** A data or fragment block as stored: its bytes and its size word. */
export interface StoredBlock {
  bytes: Uint8Array;
  /** Stored length, with bit 24 set when stored uncompressed. */
  word: number;
  /** A digest of the block's bytes as read, when asked for (WriterOptions.storeFileBlock's `digest`). */
  digest?: Uint8Array;
}

/** Compresses a data block, keeping it raw when compression does not shrink it. */
export function blockStorer(codec: Codec, level: number): (data: Uint8Array) => Promise<StoredBlock> {
  const keep = (data: Uint8Array, packed: Uint8Array): StoredBlock =>
    packed.length < data.length ? { bytes: packed, word: packed.length } : { bytes: data, word: data.length | DATA_UNCOMPRESSED };
  if (codec.compressAsync) {
    const compressAsync = codec.compressAsync.bind(codec);
    return async (data) => keep(data, await compressAsync(data, level));
  }
  return async (data) => keep(data, codec.compress(data, level));
}

interface Pending {
  result: Promise<StoredBlock | Uint8Array>;
  done?: (offset: number, block: StoredBlock | undefined) => void;
  /** Whether this entry is a block being stored (marks and raw bytes are not). */
  block: boolean;
}

/**
 * Writes blocks to the sink in submission order while up to `maxInFlight`
 * of them are still being compressed. `done` learns each block's offset.
 * Marks (a file's start, queued for every file) do not count against
 * `maxInFlight`: a run of small files, which queue a mark each and a
 * fragment block now and then, would otherwise fill the window with marks
 * and leave the compressors without work.
 */
export class OrderedOutput {
  /** Entries not yet written: queue[head...] (a deque: shift() on a long array would cost its length each time). */
  private queue: (Pending | undefined)[] = [];
  private head = 0;
  private blocks = 0;
  /** Entries taken off the queue whose bytes are still on their way to the sink. */
  private draining = 0;
  /** Bytes handed to the sink so far. */
  position = 0;

  constructor(
    private readonly sink: ImageSink,
    private readonly maxInFlight: number,
  ) {}

  /** Queues a block (or raw bytes); waits while too many are in flight. */
  async push(result: Promise<StoredBlock | Uint8Array> | Uint8Array, done?: Pending['done']): Promise<void> {
    const block = !(result instanceof Uint8Array);
    if (!block && this.head === this.queue.length && this.draining === 0) {
      // Nothing is waiting ahead of these bytes: they go now, and no entry is kept for them.
      const offset = this.position;
      if (result.length > 0) await this.sink.write(result);
      this.position += result.length;
      done?.(offset, undefined);
      return;
    }
    const promise = Promise.resolve(result);
    promise.catch(() => undefined); // observed when drained; keep it from being reported as unhandled meanwhile
    this.queue.push({ result: promise, done, block });
    if (block) this.blocks++;
    while (this.blocks > this.maxInFlight) await this.drainOne();
  }

  /** Puts a reused region's bytes next (see ImageSink.reuse), once everything queued before is written. */
  async reuse(offset: number, length: number): Promise<void> {
    await this.flush();
    if (!this.sink.reuse) throw new SquashfsError('INVALID_OPTION', 'the image sink cannot take a reused region');
    await this.sink.reuse(offset, length);
    this.position += length;
  }

  /** Learns the offset at which the next queued byte will land, once everything before it is written. */
  async mark(done: (offset: number) => void): Promise<void> {
    await this.push(new Uint8Array(0), (offset) => done(offset));
  }

  async flush(): Promise<void> {
    while (this.head < this.queue.length) await this.drainOne();
  }

  private async drainOne(): Promise<void> {
    const next = this.queue[this.head]!;
    this.queue[this.head++] = undefined;
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    if (next.block) this.blocks--;
    this.draining++;
    try {
      const value = await next.result;
      const block = value instanceof Uint8Array ? undefined : value;
      const bytes = block ? block.bytes : (value as Uint8Array);
      const offset = this.position;
      if (bytes.length > 0) await this.sink.write(bytes);
      this.position += bytes.length;
      next.done?.(offset, block);
    } finally {
      this.draining--;
    }
  }
}
