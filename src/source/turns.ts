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

  /** Lets the event loop in if the slice is over. */
  async pause(): Promise<void> {
    if (this.due()) await this.take();
  }

  /** Whether the slice is over (then `take` a turn): a loop that checks first awaits nothing in between. */
  due(): boolean {
    return Date.now() - this.since >= this.sliceMs;
  }

  /** Lets the event loop in now. */
  async take(): Promise<void> {
    const immediate = (globalThis as { setImmediate?: (fn: () => void) => unknown }).setImmediate;
    await new Promise<void>((resolve) => (immediate ? immediate(resolve) : setTimeout(resolve, 0)));
    this.since = Date.now();
  }
}
