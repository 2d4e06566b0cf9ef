/** Where progress goes: shown only when it is a TTY (`columns` wide, else 80). */
export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(text: string): unknown;
}

/** A one-line progress display on a TTY stream; silent elsewhere. */
export class ProgressLine {
  private last = -Infinity;
  private shown = false;

  constructor(
    private readonly stream: ProgressStream | undefined,
    private readonly now: () => number = Date.now,
  ) {}

  get enabled(): boolean {
    return this.stream?.isTTY === true;
  }

  /** Shows `text` (a function: only made when shown, at most every 100 ms unless forced); true when it did. */
  update(text: string | (() => string), force = false): boolean {
    if (!this.enabled) return false;
    const now = this.now();
    if (!force && now - this.last < 100) return false;
    this.last = now;
    this.shown = true;
    this.stream!.write(`\r\x1b[K${typeof text === 'function' ? text() : text}`);
    return true;
  }

  done(): void {
    if (this.shown) this.stream!.write('\r\x1b[K');
    this.shown = false;
  }
}

/** What a progress bar shows: a phase, and how far it is towards its total when there is one. */
export interface ProgressState {
  /** The phase's label: walk, compress, tables, upload, download, extract... */
  phase: string;
  /** Bytes done (or, `unit: 'entries'`, things counted). */
  done: number;
  /** What `done` ends at, when known: then a bar, the percentage, the rate and the time left. */
  total?: number;
  unit?: 'bytes' | 'entries';
  /** Anything else worth a glance (files so far, bytes stored...). */
  detail?: string;
}

/** The rate is the progress over this much of the recent past. */
const RATE_WINDOW_MS = 5_000;
const BAR_WIDTH = 24;
const EIGHTHS = ['', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];

/**
 * A progress bar on a TTY: the phase, a bar with its percentage, the bytes
 * done of the total, the rate over the last seconds and the time left; a
 * phase with no total shows its count. Silent elsewhere (see ProgressLine).
 * Its own small renderer: the progress packages on npm bring dependencies
 * (and install weight) for what is one line of text here.
 */
export class ProgressBar {
  private readonly line: ProgressLine;
  private phase: string | undefined;
  private last: ProgressState | undefined;
  /** Whether `last` is what the line shows. */
  private drawn = false;
  /** (time, done) of the current phase, oldest first, over the rate window. */
  private samples: [number, number][] = [];

  constructor(
    private readonly stream: ProgressStream | undefined,
    private readonly now: () => number = Date.now,
  ) {
    this.line = new ProgressLine(stream, now);
  }

  get enabled(): boolean {
    return this.line.enabled;
  }

  /** Shows `state` (at most every 100 ms, unless forced: a new phase always is). */
  update(state: ProgressState, force = false): void {
    if (!this.enabled) return;
    const now = this.now();
    this.last = state;
    if (state.phase !== this.phase) {
      this.phase = state.phase;
      this.samples = [];
      force = true;
    }
    this.samples.push([now, state.done]);
    while (this.samples.length > 2 && now - this.samples[1]![0] >= RATE_WINDOW_MS) this.samples.shift();
    this.drawn = this.line.update(() => renderProgress(state, this.rate(), this.stream?.columns ?? 80), force);
  }

  /** Units per second over the window; undefined until it has spanned half a second. */
  private rate(): number | undefined {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last || last[0] - first[0] < 500) return undefined;
    return ((last[1] - first[1]) * 1000) / (last[0] - first[0]);
  }

  /** Leaves the bar on its line as it ended: the last state, drawn if it was skipped. */
  done(): void {
    if (!this.enabled || !this.last) return;
    this.stream!.write(this.drawn ? '\n' : `\r\x1b[K${renderProgress(this.last, this.rate(), this.stream?.columns ?? 80)}\n`);
    this.last = undefined;
  }
}

/** One frame: `phase  42% ▕█████▍     ▏ 97.3 MiB / 231.0 MiB  45.2 MiB/s  ETA 0:03  1234 files`, cut to `columns` - 1. */
export function renderProgress(state: ProgressState, rate: number | undefined, columns = 80): string {
  const amount = (n: number) => (state.unit === 'entries' ? `${n}` : formatBytes(n));
  const parts = [state.phase.padEnd(8)];
  const { total } = state;
  if (total !== undefined) {
    const fraction = total > 0 ? Math.min(1, Math.max(0, state.done / total)) : 1;
    const eighths = Math.floor(fraction * BAR_WIDTH * 8);
    const bar = '█'.repeat(eighths >> 3) + EIGHTHS[eighths & 7];
    parts.push(`${String(Math.floor(fraction * 100)).padStart(3)}% ▕${bar.padEnd(BAR_WIDTH)}▏`, `${amount(state.done)} / ${amount(total)}${state.unit === 'entries' ? ' entries' : ''}`);
  } else {
    parts.push(state.unit === 'entries' ? `${state.done} entries` : amount(state.done));
  }
  if (rate !== undefined && rate > 0) {
    parts.push(state.unit === 'entries' ? `${Math.round(rate)}/s` : `${formatBytes(rate)}/s`);
    if (total !== undefined && state.done < total) parts.push(`ETA ${formatDuration((total - state.done) / rate)}`);
  }
  if (state.detail) parts.push(state.detail);
  const text = parts.join('  ');
  return text.length < columns ? text : text.slice(0, Math.max(columns - 1, 0));
}

/** Seconds as m:ss, or h:mm:ss from an hour. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.ceil(seconds));
  const mm = String(Math.floor((s % 3600) / 60));
  const ss = String(s % 60).padStart(2, '0');
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mm.padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

/** The one line a command ends with on stderr: `what: parts, ..., in 1.2s`. */
export function summaryLine(what: string, parts: string[], startedAt: number, now = Date.now()): string {
  return `${what}: ${[...parts, `in ${((now - startedAt) / 1000).toFixed(1)}s`].join(', ')}\n`;
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

/** What a writer reports (pack), and a backup besides (bytesUploaded). */
interface WritingProgress {
  phase: string;
  entries: number;
  files: number;
  bytesRead: number;
  bytesWritten: number;
  totalBytes: number;
  bytesUploaded?: number;
}

/**
 * The bar of an image being written: the walk counts entries; compress
 * (the files read and compressed) and tables go by the files' bytes, which
 * end at their total; a backup's upload goes by the image's bytes the store
 * has acknowledged.
 */
export function writingState(p: WritingProgress): ProgressState {
  const stored = p.bytesUploaded === undefined ? '' : `, ${formatBytes(p.bytesUploaded)} stored`;
  switch (p.phase) {
    case 'walk':
      return { phase: 'walk', done: p.entries, unit: 'entries' };
    case 'data':
      return { phase: 'compress', done: p.bytesRead, total: p.totalBytes, detail: `${p.files} files${stored}` };
    case 'upload':
      return { phase: 'upload', done: p.bytesUploaded ?? 0, total: p.bytesWritten, detail: `image ${formatBytes(p.bytesWritten)}` };
    default:
      return { phase: p.phase, done: p.bytesRead, total: p.totalBytes, detail: `${p.files} files${stored}` };
  }
}
