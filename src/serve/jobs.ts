import { randomUUID } from 'node:crypto';
import { formatBytes } from '../cli/progress.js';
import type { RestoreBackupOptions, RestoreResult } from '../node/restore.js';
import type { JobStatus } from './pages.js';

/** Restores the server started, by id: their progress for the page to show, and a way to cancel them. */
export class RestoreJobs {
  readonly #jobs = new Map<string, Job>();

  /** Finished jobs kept to be looked at. */
  constructor(private readonly keep = 32) {}

  /** Starts `run` (restoreBackup with these options filled in); resolves the job's id at once. */
  start(backup: string, dir: string, entries: number, run: (options: Pick<RestoreBackupOptions, 'onProgress' | 'signal'>) => Promise<RestoreResult>): string {
    const id = randomUUID();
    const job = new Job(backup, dir, entries);
    this.#jobs.set(id, job);
    job.done = run({ signal: job.controller.signal, onProgress: (p) => job.progress(p) }).then(
      (result) => job.finish(result),
      (error: unknown) => job.fail(error),
    );
    this.#trim();
    return id;
  }

  get(id: string): Job | undefined {
    return this.#jobs.get(id);
  }

  /** Cancels every running job and waits for each to end (a cancelled restore leaves its target as it was). */
  async stop(): Promise<void> {
    for (const job of this.#jobs.values()) job.controller.abort();
    await Promise.allSettled([...this.#jobs.values()].map((job) => job.done));
  }

  #trim(): void {
    const finished = [...this.#jobs].filter(([, job]) => job.state !== 'running');
    for (const [id] of finished.slice(0, Math.max(0, finished.length - this.keep))) this.#jobs.delete(id);
  }
}

export class Job {
  state: JobStatus['state'] = 'running';
  readonly controller = new AbortController();
  readonly started = Date.now();
  done: Promise<void> = Promise.resolve();
  #finished: number | undefined;
  #downloaded = 0;
  #extracted = 0;
  #total = 0;
  #entries = 0;
  #message = 'restoring';

  /** `entries`: the backup's (its handle's count), for the progress of the writing. */
  constructor(readonly backup: string, readonly dir: string, readonly entriesTotal: number) {}

  progress(p: Parameters<NonNullable<RestoreBackupOptions['onProgress']>>[0]): void {
    this.#total = p.total;
    if (p.phase === 'download') this.#downloaded = p.bytes;
    else {
      this.#extracted = p.bytes;
      if (p.entries !== undefined) this.#entries = p.entries;
    }
  }

  finish(result: RestoreResult): void {
    this.state = 'done';
    this.#finished = Date.now();
    this.#entries = this.entriesTotal;
    this.#downloaded = Math.max(this.#downloaded, this.#total);
    this.#extracted = Math.max(this.#extracted, this.#total);
    this.#message = `Restored ${result.entries} entries, ${formatBytes(result.bytes)}, into ${result.dir}.`;
  }

  fail(error: unknown): void {
    this.state = 'failed';
    this.#finished = Date.now();
    const code = (error as { code?: string })?.code;
    this.#message = `${(error as Error)?.message ?? String(error)}${code ? ` [${code}]` : ''}`;
  }

  status(): JobStatus {
    const elapsed = ((this.#finished ?? Date.now()) - this.started) / 1000;
    return {
      state: this.state,
      backup: this.backup,
      dir: this.dir,
      downloaded: this.#downloaded,
      extracted: this.#extracted,
      total: this.#total,
      entries: this.#entries,
      entriesTotal: this.entriesTotal,
      downloadedText: `${formatBytes(this.#downloaded)} of ${formatBytes(this.#total)}`,
      extractedText: `${formatBytes(this.#extracted)}, ${this.#entries} of ${this.entriesTotal} entries`,
      elapsedText: `${elapsed.toFixed(1)} s`,
      message: this.#message,
    };
  }
}
