import { StoreError } from './store.js';

/**
 * How every store request is tried: the one retry and timeout policy of
 * the stores (S3, R2 binding, local). Each store operation runs its tries
 * through `RequestPolicy.run`; nothing else in the library retries.
 */
export interface RequestPolicyOptions {
  /** Tries in all for one request, the first included (default 6). */
  attempts?: number;
  /** The first backoff's ceiling in ms (default 200); it doubles with each try ("full jitter"). */
  baseDelayMs?: number;
  /** No backoff is longer than this, in ms (default 10 s). */
  maxDelayMs?: number;
  /** No try starts later than this after the first one, in ms (default 2 min). */
  maxElapsedMs?: number;
  /** A try that makes no progress for this long, in ms, is abandoned and retried (default 30 s). */
  requestTimeout?: number;
}

/** What one try of a request is given. */
export interface RequestContext {
  /** Fires when the try is abandoned (a stall) or the caller aborts. */
  readonly signal: AbortSignal;
  /** The try is alive: bytes moved. Resets the stall timer. */
  progress(): void;
  /**
   * The try kept what it moved (a read that will resume from there): its
   * failure does not use up one of the tries.
   */
  kept(): void;
}

/** What a request is, for its messages. */
export interface RequestTarget {
  operation: string;
  key: string;
  part?: number;
}

const DEFAULTS: Required<RequestPolicyOptions> = {
  attempts: 6,
  baseDelayMs: 200,
  maxDelayMs: 10_000,
  maxElapsedMs: 120_000,
  requestTimeout: 30_000,
};

/** Node's and undici's codes for a connection that broke or never came up. */
const NETWORK_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH', 'ENOTFOUND',
  'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT',
]);

/**
 * Whether an error is worth another try: a StoreError that says so, or a
 * network failure (fetch's TypeError, "other side closed" from a pooled
 * keep-alive connection the server had closed, a reset).
 */
export function isTransient(error: unknown): boolean {
  if (error instanceof StoreError) return error.retryable;
  if (error instanceof TypeError) return true;
  for (let e = error as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string' && NETWORK_CODES.has(e.code)) return true;
  }
  return false;
}

export class RequestPolicy {
  readonly options: Required<RequestPolicyOptions>;

  constructor(options: RequestPolicyOptions = {}) {
    const merged = { ...DEFAULTS };
    for (const [name, value] of Object.entries(options) as [keyof RequestPolicyOptions, number | undefined][]) {
      if (value === undefined) continue;
      if (typeof value !== 'number' || !(value >= (name === 'attempts' || name === 'requestTimeout' ? 1 : 0)) || !Number.isFinite(value)) {
        throw new TypeError(`request policy: ${name} must be a ${name === 'attempts' ? 'positive whole number' : 'number of ms'}, not ${value}`);
      }
      merged[name] = value;
    }
    merged.attempts = Math.floor(merged.attempts);
    this.options = merged;
  }

  /**
   * Runs `attempt` until it succeeds, fails for good (not transient), the
   * tries or the time run out, or `signal` fires. A try with no progress for
   * `requestTimeout` is abandoned (its signal fires; a try that ignores it is
   * left behind) and counts as a transient failure. Between tries it waits a
   * random time up to a doubling ceiling, or what the store's Retry-After
   * asked. The last failure is thrown as a StoreError naming the operation,
   * the key, the last status and the tries made.
   */
  async run<T>(target: RequestTarget, attempt: (context: RequestContext) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const { attempts, baseDelayMs, maxDelayMs, maxElapsedMs, requestTimeout } = this.options;
    const started = Date.now();
    let failures = 0;
    for (let tries = 1; ; tries++) {
      signal?.throwIfAborted();
      const controller = new AbortController();
      const forget = signal && whenAborted(signal, () => controller.abort(signal.reason));
      let stalled = false;
      let kept = false;
      let last = Date.now();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const watch = (ms: number) => {
        timer = setTimeout(() => {
          const idle = Date.now() - last;
          if (idle < requestTimeout) return watch(requestTimeout - idle);
          stalled = true;
          controller.abort(new StoreError(`${describeTarget(target)}: no progress for ${requestTimeout} ms`, { ...target, retryable: true, code: 'RequestTimeout' }));
        }, ms);
      };
      watch(requestTimeout);
      const context: RequestContext = {
        signal: controller.signal,
        progress: () => void (last = Date.now()),
        kept: () => void (kept = true),
      };
      try {
        return await abandonable(attempt(context), controller.signal);
      } catch (thrown) {
        if (signal?.aborted) throw signal.reason;
        const error = stalled ? controller.signal.reason : thrown;
        failures = kept ? 1 : failures + 1;
        const wait = backoff(error, failures, baseDelayMs, maxDelayMs);
        const transient = stalled || isTransient(error);
        if (!transient || failures >= attempts || Date.now() - started + wait > maxElapsedMs) throw finalError(target, error, tries, transient);
        await sleep(wait, signal);
      } finally {
        clearTimeout(timer);
        forget?.();
      }
    }
  }
}

/** The default policy, for stores made without one. */
export const defaultPolicy = new RequestPolicy();

/** A policy from options, a policy, or the default. */
export function requestPolicy(policy?: RequestPolicy | RequestPolicyOptions): RequestPolicy {
  if (policy instanceof RequestPolicy) return policy;
  return policy ? new RequestPolicy(policy) : defaultPolicy;
}

/** "get k", "upload part 3 of k": how messages name a request. */
export function describeTarget(target: RequestTarget): string {
  return target.part === undefined ? `${target.operation} ${target.key}` : `${target.operation} ${target.part} of ${target.key}`;
}

/** The try's own promise, or its signal's reason once the signal fires: a try that ignores its signal cannot hold the request. */
function abandonable<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      work.catch(() => undefined);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => (signal.removeEventListener('abort', onAbort), resolve(value)),
      (error) => (signal.removeEventListener('abort', onAbort), reject(error)),
    );
  });
}

/** What the store asked for (Retry-After), else full jitter under a doubling ceiling. */
function backoff(error: unknown, failures: number, base: number, max: number): number {
  const asked = error instanceof StoreError ? error.details.retryAfterMs : undefined;
  if (asked !== undefined) return asked;
  return Math.random() * Math.min(max, base * 2 ** (failures - 1));
}

/** The error a request ends with: a StoreError saying what, where, the last status and how many tries. */
function finalError(target: RequestTarget, error: unknown, tries: number, transient: boolean): unknown {
  const suffix = tries > 1 ? ` (after ${tries} tries)` : '';
  if (!transient && !(error instanceof StoreError)) return error; // not a request failure (a bad key, a bug): as it is
  if (error instanceof StoreError) {
    if (!suffix) return error;
    return new StoreError(`${error.message}${suffix}`, { ...error.details }, error);
  }
  return new StoreError(`${describeTarget(target)}: ${networkMessage(error)}${suffix}`, { ...target, retryable: transient }, error);
}

/** An error's message with its cause's: fetch's "fetch failed" says little, its cause ("other side closed", ECONNRESET) says what broke. */
export function networkMessage(error: unknown): string {
  const message = (error as Error)?.message ?? String(error);
  const cause = (error as { cause?: { message?: string; code?: string } })?.cause;
  const detail = cause?.message ?? cause?.code;
  return detail && detail !== message ? `${message} (${detail})` : message;
}

/** Waits `ms`, or rejects with the signal's reason when it fires first. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      forget?.();
      resolve();
    }, ms);
    const forget = signal && whenAborted(signal, () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });
}

/** What waits on each caller's signal: one listener a signal, however many requests share it. */
const abortWaiters = new WeakMap<AbortSignal, Set<() => void>>();

/**
 * Calls `onAbort` when `signal` aborts; returns the call that forgets it.
 * Requests that share a signal (an upload's parts, a compaction's copies)
 * share its one listener: a listener each would pass Node's limit of 10
 * and print a leak warning, with nothing leaking.
 */
function whenAborted(signal: AbortSignal, onAbort: () => void): () => void {
  let waiters = abortWaiters.get(signal);
  if (!waiters) {
    const all = new Set<() => void>();
    abortWaiters.set(signal, all);
    signal.addEventListener('abort', () => {
      for (const waiter of [...all]) waiter();
      all.clear();
    }, { once: true });
    waiters = all;
  }
  waiters.add(onAbort);
  return () => void waiters.delete(onAbort);
}

/** Reads the Retry-After header (seconds, or an HTTP date) as ms. */
export function retryAfterMs(header: string | null): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/**
 * A stream of an object from `offset` on that survives breaks: a read that
 * fails or stalls reopens the object from the byte where it stopped, through
 * the policy. `open` makes one request for the object from a given offset
 * (undefined when there is no object).
 */
export async function resumableStream(
  policy: RequestPolicy,
  target: RequestTarget,
  open: (offset: number, context: RequestContext) => Promise<ReadableStream<Uint8Array> | undefined>,
  signal?: AbortSignal,
): Promise<ReadableStream<Uint8Array> | undefined> {
  let delivered = 0;
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  const drop = () => {
    reader?.cancel().catch(() => undefined);
    reader = undefined;
  };
  const first = await policy.run(target, async (context) => open(0, context), signal);
  if (!first) return undefined;
  reader = first.getReader();
  return new ReadableStream<Uint8Array>({
    pull: (controller) =>
      policy.run(target, async (context) => {
        try {
          if (!reader) {
            const stream = await open(delivered, context);
            if (!stream) throw new StoreError(`${describeTarget(target)}: the object went away at byte ${delivered}`, { ...target, status: 404, retryable: false });
            reader = stream.getReader();
          }
          const { done, value } = await abandonable(reader.read(), context.signal);
          if (done) return controller.close();
          delivered += value.length;
          context.kept();
          controller.enqueue(value);
        } catch (error) {
          drop();
          throw error;
        }
      }, signal),
    cancel: drop,
  });
}
