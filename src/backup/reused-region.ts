import type { ObjectStore } from '../uploader/store.js';

/** A stored range is hashed from ranged GETs of this size, this many at once (a few: other reads share the link). */
const PIECE = 4 * 1024 * 1024;
const PIECES_AT_ONCE = 6;
/** Pieces fetched and not yet hashed, at most (64 MiB): a prefetch runs this far ahead of the image. */
const PIECES_AHEAD = 16;
/** Bytes written after a reused region that wait, copied, while the region is still being fetched for the hash. */
const MAX_HELD = 64 * 1024 * 1024;

/** A stored range being fetched in order, a few pieces ahead of the hash. */
interface Download {
  key: string;
  offset: number;
  end: number;
  next: number;
  pieces: Promise<Uint8Array>[];
  /** Pieces hashed so far, and pieces on their way. */
  hashed: number;
  inFlight: number;
  controller: AbortController;
}

/**
 * Feeds an image's bytes to a hash in order when one stretch of them (a
 * region reused from another stored image: WriterOptions.reuse) is never
 * written here but copied on the store's side. That stretch is fetched by
 * range and hashed in its place; the bytes written after it wait (copied,
 * up to 64 MiB, then the writer waits) until it is. The fetch may start
 * early (prefetch), a few pieces ahead.
 */
export class RegionHashing {
  private region: Promise<void> | undefined;
  private held: Uint8Array[] = [];
  private heldBytes = 0;
  private early: Download | undefined;

  constructor(
    private readonly update: (bytes: Uint8Array) => void,
    private readonly store: ObjectStore,
    private readonly signal?: AbortSignal,
  ) {}

  /** Bytes of the image, in order. */
  async write(chunk: Uint8Array): Promise<void> {
    if (!this.region) return this.update(chunk);
    this.held.push(chunk.slice()); // the writer may reuse the buffer once this returns
    this.heldBytes += chunk.length;
    if (this.heldBytes > MAX_HELD) await this.settle();
  }

  /** Starts fetching a range that `reuse` will likely name, before the image gets there. */
  prefetch(key: string, offset: number, length: number): void {
    this.cancel();
    this.early = this.download(key, offset, length);
  }

  /** The image's next bytes are those of `key` from `offset`: they are fetched and hashed here. */
  reuse(key: string, offset: number, length: number): void {
    const early = this.early;
    this.early = undefined;
    const download = early && early.key === key && early.offset === offset && early.end === offset + length ? early : this.download(key, offset, length);
    if (download !== early) early?.controller.abort();
    const previous = this.region ?? Promise.resolve();
    this.region = previous.then(() => this.hashInOrder(download));
    this.region.catch(() => undefined); // awaited by settle()
  }

  /** Waits for the fetched stretches, then hashes what was held back. */
  async settle(): Promise<void> {
    if (this.region) await this.region;
    this.region = undefined;
    for (const chunk of this.held) this.update(chunk);
    this.held = [];
    this.heldBytes = 0;
  }

  /** Stops a prefetch that no `reuse` took. */
  cancel(): void {
    this.early?.controller.abort();
    this.early = undefined;
  }

  private download(key: string, offset: number, length: number): Download {
    const controller = new AbortController();
    if (this.signal?.aborted) controller.abort(this.signal.reason);
    else this.signal?.addEventListener('abort', () => controller.abort(this.signal!.reason), { once: true });
    const download: Download = { key, offset, end: offset + length, next: offset, pieces: [], hashed: 0, inFlight: 0, controller };
    this.pump(download);
    return download;
  }

  /** Asks for more pieces while few are on their way and not too many wait to be hashed. */
  private pump(download: Download): void {
    while (download.next < download.end && download.inFlight < PIECES_AT_ONCE && download.pieces.length - download.hashed < PIECES_AHEAD) {
      const at = download.next;
      download.next = Math.min(download.end, at + PIECE);
      download.inFlight++;
      const piece = this.store.getRange(download.key, at, download.next - at, download.controller.signal);
      piece.then(() => {
        download.inFlight--;
        if (!download.controller.signal.aborted) this.pump(download);
      }, () => undefined); // the failure is awaited in order by hashInOrder
      download.pieces.push(piece);
    }
  }

  private async hashInOrder(download: Download): Promise<void> {
    for (let i = 0; i < download.pieces.length; i++) {
      this.update(await download.pieces[i]!);
      download.pieces[i] = EMPTY; // let it go
      download.hashed++;
      this.pump(download);
    }
  }
}

const EMPTY = Promise.resolve(new Uint8Array(0));
