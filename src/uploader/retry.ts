import { StoreError } from './store.js';

export interface RetryOptions {
  /** Tries in all, the first one included (default 6). */
  attempts?: number;
  /** The first backoff's ceiling in ms (default 200); it doubles each time. */
  baseDelayMs?: number;
  /** No backoff is longer than this (default 10 s). */
  maxDelayMs?: number;
}

/** Whether an error is worth another try: a retryable StoreError, or a network failure (fetch's TypeError). */
export function isTransient(error: unknown): boolean {
  if (error instanceof StoreError) return error.retryable;
  return error instanceof TypeError;
}

/**
 * Runs `attempt` until it succeeds, a failure is not transient, the tries
 * run out, or `signal` fires; between tries it waits a random time up to a
 * doubling ceiling ("full jitter"). Throws the last error.
 */
export async function withRetry<T>(attempt: (n: number) => Promise<T>, options: RetryOptions = {}, signal?: AbortSignal): Promise<T> {
  const attempts = options.attempts ?? 6;
  const base = options.baseDelayMs ?? 200;
  const max = options.maxDelayMs ?? 10_000;
  for (let n = 1; ; n++) {
    signal?.throwIfAborted();
    try {
      return await attempt(n);
    } catch (error) {
      if (n >= attempts || !isTransient(error) || signal?.aborted) throw error;
      await sleep(Math.random() * Math.min(max, base * 2 ** (n - 1)), signal);
    }
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
