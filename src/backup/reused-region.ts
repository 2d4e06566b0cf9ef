import type { ObjectStore } from '../uploader/store.js';

/** A stored range is hashed from ranged GETs of this size, this many at once. */
const PIECE = 4 * 1024 * 1024;
const PIECES_AT_ONCE = 8;
/** Bytes written after a reused region that wait, copied, while the region is still being fetched for the hash. */
const MAX_HELD = 64 * 1024 * 1024;

/**
 * Feeds an image's bytes to a hash in order when one stretch of them (a
 * region reused from another stored image: WriterOptions.reuse) is never
 * written here but copied on the store's side. That stretch is fetched by
 * range and hashed in its place; the bytes written after it wait (copied,
 * up to 64 MiB, then the writer waits) until it is.
 */
export class RegionHashing {
  private region: Promise<void> | undefined;
  private held: Uint8Array[] = [];
  private heldBytes = 0;

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

  /** The image's next bytes are those of `key` from `offset`: they are fetched and hashed here. */
  reuse(key: string, offset: number, length: number): void {
    const previous = this.region ?? Promise.resolve();
    this.region = previous.then(() => this.hashStored(key, offset, length));
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

  private async hashStored(key: string, offset: number, length: number): Promise<void> {
    const end = offset + length;
    const pieces: Promise<Uint8Array>[] = [];
    let next = offset;
    const fetchNext = () => {
      const at = next;
      next = Math.min(end, at + PIECE);
      const piece = this.store.getRange(key, at, next - at, this.signal);
      piece.catch(() => undefined); // awaited in order below
      pieces.push(piece);
    };
    while (next < end && pieces.length < PIECES_AT_ONCE) fetchNext();
    for (let i = 0; i < pieces.length; i++) {
      this.update(await pieces[i]!);
      pieces[i] = EMPTY; // let it go
      if (next < end) fetchNext();
    }
  }
}

const EMPTY = Promise.resolve(new Uint8Array(0));
