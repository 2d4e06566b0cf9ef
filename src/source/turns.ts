/** The longest a walk or a read of a synchronous source runs without letting the event loop in, in ms (by default). */
const YIELD_AFTER_MS = 4;

/**
 * Lets the event loop in every few milliseconds. Calls to a synchronous
 * source (the Node one: sync calls behind promises) complete at once, so
 * without this a walk or a data phase would run on microtasks alone for
 * long stretches: the requests in flight beside it (their presigning, their
 * sockets) and the compression workers' replies would wait for it.
 */
export class EventLoopTurns {
  private since = Date.now();

  /** `sliceMs`: how long it may run between turns (default 4 ms). */
  constructor(private readonly sliceMs = YIELD_AFTER_MS) {}

  async pause(): Promise<void> {
    if (Date.now() - this.since < this.sliceMs) return;
    const immediate = (globalThis as { setImmediate?: (fn: () => void) => unknown }).setImmediate;
    await new Promise<void>((resolve) => (immediate ? immediate(resolve) : setTimeout(resolve, 0)));
    this.since = Date.now();
  }
}
