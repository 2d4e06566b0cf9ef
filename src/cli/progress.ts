/** A one-line progress display on a TTY stream; silent elsewhere. */
export class ProgressLine {
  private last = 0;
  private shown = false;

  constructor(private readonly stream: { isTTY?: boolean; write(text: string): unknown } | undefined) {}

  get enabled(): boolean {
    return this.stream?.isTTY === true;
  }

  /** Shows `text` (a function: only made when shown, at most every 100 ms). */
  update(text: string | (() => string), force = false): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (!force && now - this.last < 100) return;
    this.last = now;
    this.shown = true;
    this.stream!.write(`\r\x1b[K${typeof text === 'function' ? text() : text}`);
  }

  done(): void {
    if (this.shown) this.stream!.write('\r\x1b[K');
    this.shown = false;
  }
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}
