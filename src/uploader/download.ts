import type { ObjectStore } from './store.js';

export interface DownloadOptions {
  /** Ranged GETs in flight at once (default 8). */
  concurrency?: number;
  /**
   * Bytes per ranged GET (default 2 MiB). Ranges are handed on in order,
   * so the first bytes wait for a whole range: small ranges start the
   * consumer sooner. Memory stays within 2 × concurrency × rangeSize.
   */
  rangeSize?: number;
}

const DEFAULT_DOWNLOAD = { concurrency: 8, rangeSize: 2 * 1024 * 1024 } as const;

/** Checks download options; throws a TypeError naming the bad one. */
export function downloadSettings(options: DownloadOptions = {}): Required<DownloadOptions> {
  const concurrency = options.concurrency ?? DEFAULT_DOWNLOAD.concurrency;
  const rangeSize = options.rangeSize ?? DEFAULT_DOWNLOAD.rangeSize;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new TypeError(`download concurrency must be a positive whole number, not ${concurrency}`);
  if (!Number.isInteger(rangeSize) || rangeSize < 1) throw new TypeError(`download rangeSize must be a positive whole number of bytes, not ${rangeSize}`);
  return { concurrency, rangeSize };
}

/** One piece of a download: `bytes` start at `offset` in the object. */
export interface DownloadedRange {
  offset: number;
  bytes: Uint8Array;
}

/**
 * Fetches bytes [start, end) of an object by parallel ranged GETs, from
 * the moment it is made, and hands them on in order through `next`.
 * `concurrency` GETs are kept in flight; a range that is slow to come does
 * not hold the others up until twice that many ranges are fetched and
 * waiting for it, so memory stays within 2 × concurrency × rangeSize
 * however fast the store is. Each GET goes through the store's request
 * policy (retried, resumed from where it broke off). `close`, or
 * `signal`, abandons what is in flight.
 */
export class RangeDownload {
  private readonly controller = new AbortController();
  private readonly pending: Promise<DownloadedRange>[] = [];
  private readonly concurrency: number;
  private readonly rangeSize: number;
  private nextOffset: number;
  private inFlight = 0;

  constructor(
    private readonly store: ObjectStore,
    private readonly key: string,
    start: number,
    private readonly end: number,
    options: DownloadOptions = {},
    signal?: AbortSignal,
  ) {
    ({ concurrency: this.concurrency, rangeSize: this.rangeSize } = downloadSettings(options));
    this.nextOffset = start;
    if (signal?.aborted) this.controller.abort(signal.reason);
    else signal?.addEventListener('abort', () => this.controller.abort(signal.reason), { once: true, signal: this.controller.signal });
    this.fill();
  }

  /** The next range in order; undefined once all are taken. Throws the range's failure. */
  async next(): Promise<DownloadedRange | undefined> {
    const range = this.pending.shift();
    if (!range) return undefined;
    try {
      return await range;
    } finally {
      this.fill();
    }
  }

  /** Stops fetching. */
  close(): void {
    if (!this.controller.signal.aborted) this.controller.abort(new Error('the download was abandoned'));
    this.pending.length = 0;
  }

  private fill(): void {
    while (this.inFlight < this.concurrency && this.pending.length < 2 * this.concurrency && this.nextOffset < this.end && !this.controller.signal.aborted) {
      const offset = this.nextOffset;
      const length = Math.min(this.rangeSize, this.end - offset);
      this.nextOffset += length;
      this.inFlight++;
      const range = this.store.getRange(this.key, offset, length, this.controller.signal).then((bytes) => ({ offset, bytes }));
      range.then(() => {
        this.inFlight--;
        this.fill();
      }, () => this.inFlight--); // a failure is thrown when its turn comes, in next()
      this.pending.push(range);
    }
  }
}
