import type { ObjectStore } from './store.js';

export interface DownloadOptions {
  /** Ranged GETs in flight at once (default 8). */
  concurrency?: number;
  /** Bytes per ranged GET (default 8 MiB). Memory stays within concurrency × rangeSize. */
  rangeSize?: number;
}

export const DEFAULT_DOWNLOAD = { concurrency: 8, rangeSize: 8 * 1024 * 1024 } as const;

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
 * Fetches bytes [start, end) of an object by parallel ranged GETs and
 * yields them in order: up to `concurrency` ranges are in flight or
 * waiting to be taken, so memory stays within concurrency × rangeSize
 * however fast the store is. Each GET goes through the store's request
 * policy (retried, resumed from where it broke off). Stopping the
 * iteration, or `signal`, abandons what is in flight.
 */
export async function* downloadRanges(
  store: ObjectStore, key: string, start: number, end: number, options: DownloadOptions = {}, signal?: AbortSignal,
): AsyncGenerator<DownloadedRange> {
  const { concurrency, rangeSize } = downloadSettings(options);
  const controller = new AbortController();
  const onAbort = () => controller.abort(signal!.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  const pending: Promise<DownloadedRange>[] = [];
  let next = start;
  const fill = () => {
    while (pending.length < concurrency && next < end) {
      const offset = next;
      const length = Math.min(rangeSize, end - offset);
      next += length;
      const range = store.getRange(key, offset, length, controller.signal).then((bytes) => ({ offset, bytes }));
      range.catch(() => undefined); // awaited in turn below; an early failure must not be unhandled meanwhile
      pending.push(range);
    }
  };
  try {
    fill();
    while (pending.length > 0) {
      const range = await pending.shift()!;
      fill();
      yield range;
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (pending.length > 0) controller.abort(new Error('the download was abandoned'));
  }
}
