import { BackupError } from '../errors.js';
import { MAX_PARTS, StoreError, type CompletedPart, type CopySource, type ObjectStore } from './store.js';

/** R2's (and S3's) smallest part but the last. */
export const MIN_PART_SIZE = 5 * 1024 * 1024;
export { MAX_PARTS };
const MiB = 1024 * 1024;
/** Bytes of a copied range that are fetched and sent (around its whole parts) go in about this many ranged GETs a part, of whole MiBs. */
const FETCH_PIECE = MiB;
const FETCHES_AT_ONCE = 4;

/**
 * The part size for a stream of about `expectedSize` bytes: at least 5 MiB,
 * whole MiB, and large enough that 9,000 parts hold it, leaving a tenth of
 * the 10,000 for a stream that comes out larger than expected.
 */
export function choosePartSize(expectedSize: number): number {
  return Math.max(MIN_PART_SIZE, Math.ceil(expectedSize / 9_000 / MiB) * MiB);
}

export interface UploadProgress {
  /** Bytes written into the upload so far. */
  bytesProduced: number;
  /** Bytes the store has acknowledged. */
  bytesAcknowledged: number;
  partsDone: number;
}

export interface StreamUploadOptions {
  store: ObjectStore;
  key: string;
  /** About how many bytes will come; sets the part size (default: the smallest part size). */
  expectedSize?: number;
  /** Overrides the part size chosen from `expectedSize` (>= 5 MiB). */
  partSize?: number;
  /** Parts uploading at once (default 8). Memory stays within (concurrency + 1) parts. */
  concurrency?: number;
  signal?: AbortSignal;
  onProgress?: (progress: UploadProgress) => void;
}

export interface UploadResult {
  key: string;
  size: number;
  /** 0 for a single PUT. */
  parts: number;
  partSize: number;
}

/**
 * Uploads an ordered byte stream to a store as it is produced: a multipart
 * upload of equal parts (the last may be smaller), `concurrency` at a time,
 * each part kept until the store acknowledges it so a retry re-sends the
 * same bytes. Part 1 is kept until the end, when `patchHead` has given the
 * bytes that replace the start of the stream; it goes up once every other
 * part has been handed out, beside the last of them. A stream
 * no longer than one part is a single PUT. Every failure aborts the
 * multipart upload and rejects with BACKUP_CREATE_ERROR naming the part and
 * the status; success is reported only after a HEAD shows the object whole.
 */
export class StreamUpload {
  readonly partSize: number;
  private readonly store: ObjectStore;
  private readonly key: string;
  private readonly concurrency: number;
  private readonly controller = new AbortController();
  private current: Uint8Array | undefined;
  private fill = 0;
  private partNumber = 1;
  private first: Uint8Array | undefined;
  private head: Uint8Array | undefined;
  private uploadId: Promise<string> | undefined;
  private readonly running = new Set<Promise<void>>();
  private readonly etags = new Map<number, string>();
  /** Part buffers the store has acknowledged, for reuse: memory stays at the bound without waiting for the GC. */
  private readonly spare: Uint8Array[] = [];
  private failure: BackupError | undefined;
  /** Whether the store makes parts from stored bytes (false once it answered 501 NotImplemented). */
  private copies = true;
  /** Bytes still being fetched into a part buffer (copy), by the buffer. */
  private readonly filling = new Map<ArrayBufferLike, Promise<void>>();
  private finished = false;
  private readonly progress: UploadProgress = { bytesProduced: 0, bytesAcknowledged: 0, partsDone: 0 };

  constructor(private readonly options: StreamUploadOptions) {
    this.store = options.store;
    this.key = options.key;
    this.partSize = options.partSize ?? choosePartSize(options.expectedSize ?? 0);
    this.concurrency = options.concurrency ?? 8;
    if (!Number.isInteger(this.partSize) || this.partSize < MIN_PART_SIZE) {
      throw new BackupError('INVALID_BACKUP_CONFIG', `part size ${this.partSize} is below the minimum of ${MIN_PART_SIZE} bytes`, { key: this.key });
    }
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) {
      throw new BackupError('INVALID_BACKUP_CONFIG', `upload concurrency must be a positive integer, not ${this.concurrency}`, { key: this.key });
    }
    const { signal } = options;
    if (signal) {
      if (signal.aborted) this.controller.abort(signal.reason);
      else signal.addEventListener('abort', () => this.controller.abort(signal.reason), { once: true });
    }
  }

  /** Takes the next bytes of the stream; resolves when there is room for more. */
  /**
   * Creates the multipart upload now when the stream is expected to need
   * parts (`expectedSize`), so that no part waits for it; otherwise does
   * nothing. `write` does it too.
   */
  prepare(): void {
    if (!this.uploadId && (this.options.expectedSize ?? 0) > this.partSize && !this.controller.signal.aborted) this.createUpload();
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.prepare();
    let at = 0;
    while (at < chunk.length) {
      this.check();
      if (!this.current) {
        // Memory bound: the parts in flight, plus part 1, plus the one being filled only when a slot is free.
        while (this.running.size >= this.concurrency) await Promise.race(this.running);
        this.check();
        this.current = this.spare.pop() ?? new Uint8Array(this.partSize);
        this.fill = 0;
      }
      const n = Math.min(chunk.length - at, this.partSize - this.fill);
      this.current.set(chunk.subarray(at, at + n), this.fill);
      this.fill += n;
      at += n;
      this.progress.bytesProduced += n;
      if (this.fill === this.partSize) {
        this.handOut(this.current, this.partNumber++);
        this.current = undefined;
        this.fill = 0;
      }
    }
    this.options.onProgress?.({ ...this.progress });
  }

  /**
   * Takes bytes of an object already in the store as the stream's next
   * bytes. The whole parts among them are made on the store's side
   * (ObjectStore.uploadPartCopy) and never pass through here; the bytes
   * before the first part boundary (all of part 1: it carries the head)
   * and after the last one are fetched by range into the parts they fall
   * in while the stream goes on, each part sent once its bytes are there.
   * A store that cannot copy gets every byte fetched and sent.
   */
  async copy(source: CopySource): Promise<void> {
    this.prepare();
    const end = source.offset + source.length;
    const toBoundary = this.current ? this.partSize - this.fill : this.partNumber === 1 ? this.partSize : 0;
    let at = this.fetchInto(source.key, source.offset, Math.min(end, source.offset + toBoundary));
    while (end - at >= this.partSize && this.copies && this.store.uploadPartCopy) {
      await this.slot();
      this.handOutCopy({ key: source.key, offset: at, length: this.partSize }, this.partNumber++);
      at += this.partSize;
      this.progress.bytesProduced += this.partSize;
    }
    while (at < end) {
      await this.slot();
      at = this.fetchInto(source.key, at, end);
    }
  }

  /** Waits until a part may be taken on (memory and requests stay within `concurrency`). */
  private async slot(): Promise<void> {
    this.check();
    while (this.running.size >= this.concurrency) await Promise.race(this.running);
    this.check();
  }

  /**
   * Takes bytes [from, to) of a stored object as the stream's next bytes,
   * as far as the part being filled goes (a new part when none is): they
   * are fetched into it in the background. Returns where it stopped.
   */
  private fetchInto(key: string, from: number, to: number): number {
    if (from >= to) return from;
    this.current ??= this.spare.pop() ?? new Uint8Array(this.partSize);
    const n = Math.min(to - from, this.partSize - this.fill);
    const part = this.current;
    const at = this.fill;
    const pieces: Promise<void>[] = [];
    // A few ranged GETs at once, whole MiBs each.
    const piece = FETCH_PIECE * Math.ceil(n / FETCH_PIECE / FETCHES_AT_ONCE);
    for (let p = 0; p < n; p += piece) {
      const length = Math.min(n - p, piece);
      pieces.push(this.call('get', undefined, () => this.store.getRange(key, from + p, length, this.controller.signal)).then((bytes) => part.set(bytes, at + p)));
    }
    const filled = Promise.all([this.filling.get(part.buffer), ...pieces]).then(() => undefined);
    filled.catch(() => undefined); // awaited before the part is sent
    this.filling.set(part.buffer, filled);
    this.fill += n;
    this.progress.bytesProduced += n;
    if (this.fill === this.partSize) {
      this.handOut(part, this.partNumber++);
      this.current = undefined;
      this.fill = 0;
    }
    return from + n;
  }

  /** Waits for the bytes being fetched into a part (see fetchInto). */
  private async filled(part: Uint8Array): Promise<void> {
    const filling = this.filling.get(part.buffer);
    if (!filling) return;
    await filling;
    this.filling.delete(part.buffer);
  }

  private handOutCopy(source: CopySource, partNumber: number): void {
    this.launch(partNumber, () => this.sendCopy(source, partNumber));
  }

  /** Starts sending a part, tracked among those running. */
  private launch(partNumber: number, send: () => Promise<void>): void {
    if (partNumber > MAX_PARTS) {
      throw this.fail(new BackupError('BACKUP_CREATE_ERROR', `${this.key} needs more than ${MAX_PARTS} parts of ${this.partSize} bytes: the stream is larger than expected`, { key: this.key, part: partNumber }));
    }
    this.createUpload();
    const task = send().catch((error: unknown) => {
      this.fail(this.asError(error));
    });
    this.running.add(task);
    void task.finally(() => this.running.delete(task));
  }

  /** One part copied on the store's side; fetched and sent when the store turns out not to copy (501). */
  private async sendCopy(source: CopySource, partNumber: number): Promise<void> {
    const uploadId = await this.uploadId!;
    let etag: string;
    try {
      etag = await this.call('copy part', partNumber, () => this.store.uploadPartCopy!(this.key, uploadId, partNumber, source, this.controller.signal));
    } catch (error) {
      if (!(error instanceof BackupError && isNotImplemented(error.cause))) throw error;
      this.copies = false;
      const bytes = await this.call('get', undefined, () => this.store.getRange(source.key, source.offset, source.length, this.controller.signal));
      etag = await this.call('upload part', partNumber, () => this.store.uploadPart(this.key, uploadId, partNumber, bytes, this.controller.signal));
    }
    this.etags.set(partNumber, etag);
    this.acknowledge(source.length);
  }

  /** The bytes that replace the start of the stream (e.g. a header known only at the end); they must fit in part 1. */
  patchHead(bytes: Uint8Array): void {
    if (bytes.length > this.partSize) throw new BackupError('BACKUP_CREATE_ERROR', `a head of ${bytes.length} bytes does not fit in part 1`, { key: this.key });
    this.head = bytes.slice();
    // Part 1 is whole and more follows it (a multipart upload for sure): it goes up now, not at complete().
    if (this.first && (this.partNumber > 2 || this.fill > 0) && !this.failure) {
      const first = this.patched(this.first);
      this.first = undefined;
      this.launch(1, () => this.sendPart(first, 1));
    }
  }

  /** Sends what is left and part 1 (now that its head is known), completes the upload and checks the object's size. */
  async complete(): Promise<UploadResult> {
    try {
      this.check();
      // No more than one part: a single PUT.
      if (this.partNumber === 1) return await this.putWhole(this.current ? this.current.subarray(0, this.fill) : new Uint8Array(0));
      if (this.partNumber === 2 && !this.current) return await this.putWhole(this.first!);
      if (this.current && this.fill > 0) this.handOut(this.current.subarray(0, this.fill), this.partNumber++);
      this.current = undefined;
      const total = this.progress.bytesProduced;
      // Part 1 goes up beside the parts still in flight, not after them: the link stays full to the end (patchHead may have sent it).
      const first = this.first && this.patched(this.first);
      this.first = undefined;
      await Promise.all([first && this.sendPart(first, 1), this.settle()]);
      this.check();
      const parts: CompletedPart[] = [...this.etags].sort(([a], [b]) => a - b).map(([partNumber, etag]) => ({ partNumber, etag }));
      const uploadId = await this.uploadId!;
      await this.call('complete', undefined, () => this.store.completeMultipartUpload(this.key, uploadId, parts, this.controller.signal)).catch((error: BackupError) => {
        // A retried complete whose first answer was lost finds the upload gone (404 NoSuchUpload): the HEAD below tells.
        if (error.status !== 404) throw error;
      });
      this.finished = true;
      await this.checkSize(total);
      return { key: this.key, size: total, parts: parts.length, partSize: this.partSize };
    } catch (error) {
      await this.abort(error);
      throw this.failure;
    }
  }

  /**
   * Gives up: stops what is in flight and aborts the multipart upload (best
   * effort, tried twice). `reason` becomes the error `complete` and `write` throw.
   */
  async abort(reason?: unknown): Promise<void> {
    this.failure ??= this.asError(reason ?? new Error('the upload was abandoned'));
    if (!this.controller.signal.aborted) this.controller.abort(this.failure);
    this.current = undefined;
    this.first = undefined;
    await Promise.allSettled(this.running);
    if (this.finished) {
      // Completed, but found wrong afterwards: no object is better than a bad one.
      await this.store.delete(this.key).catch(() => undefined);
    } else {
      await this.abortUpload();
    }
  }

  private createUpload(): void {
    if (this.uploadId) return;
    this.uploadId = this.call('create', undefined, () => this.store.createMultipartUpload(this.key, this.partSize, this.controller.signal));
    this.uploadId.catch(() => undefined); // awaited by the parts, or by abortUpload
  }

  /** Aborts the multipart upload, if one was created (best effort, tried twice). */
  private async abortUpload(): Promise<void> {
    const uploadId = await this.uploadId?.catch(() => undefined);
    if (!uploadId) return;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await this.store.abortMultipartUpload(this.key, uploadId);
        return;
      } catch {
        // best effort
      }
    }
  }

  private async putWhole(bytes: Uint8Array): Promise<UploadResult> {
    await this.filled(bytes);
    const body = this.patched(bytes);
    this.current = undefined;
    this.first = undefined;
    // A multipart upload created for a stream that came out smaller than expected is aborted beside the PUT.
    const aborting = this.abortUpload();
    await this.call('put', undefined, () => this.store.put(this.key, body, this.controller.signal)).finally(() => aborting);
    this.finished = true;
    this.acknowledge(body.length);
    // No HEAD after it: a PUT answered 2xx stored exactly the Content-Length it sent (a multipart upload is checked
    // after CompleteMultipartUpload, which can answer 200 and fail).
    return { key: this.key, size: body.length, parts: 0, partSize: this.partSize };
  }

  private patched(part: Uint8Array): Uint8Array {
    if (this.head) {
      if (this.head.length > part.length) throw new BackupError('BACKUP_CREATE_ERROR', `a head of ${this.head.length} bytes is longer than the ${part.length}-byte stream`, { key: this.key });
      part.set(this.head, 0);
    }
    return part;
  }

  private handOut(bytes: Uint8Array, partNumber: number): void {
    if (partNumber === 1) {
      this.first = bytes;
      return;
    }
    this.launch(partNumber, () => this.sendPart(bytes, partNumber));
  }

  private async sendPart(bytes: Uint8Array, partNumber: number): Promise<void> {
    await this.filled(bytes);
    const uploadId = await this.uploadId!;
    const etag = await this.call('upload part', partNumber, () => this.store.uploadPart(this.key, uploadId, partNumber, bytes, this.controller.signal));
    this.etags.set(partNumber, etag);
    this.acknowledge(bytes.length);
    if (partNumber !== 1 && bytes.byteLength === this.partSize && bytes.byteOffset === 0 && this.spare.length < this.concurrency) {
      this.spare.push(new Uint8Array(bytes.buffer, 0, this.partSize));
    }
  }

  private acknowledge(bytes: number): void {
    this.progress.bytesAcknowledged += bytes;
    this.progress.partsDone++;
    this.options.onProgress?.({ ...this.progress });
  }

  private async checkSize(expected: number): Promise<void> {
    const info = await this.call('head', undefined, () => this.store.head(this.key, this.controller.signal));
    if (!info || info.size !== expected) {
      throw new BackupError('BACKUP_CREATE_ERROR', `${this.store.location}/${this.key} is ${info ? `${info.size} bytes` : 'missing'} after the upload, expected ${expected}`, { key: this.key });
    }
  }

  /**
   * One store operation (the store retries it under its own policy);
   * failures become BACKUP_CREATE_ERROR naming the operation, part and status.
   */
  private async call<T>(operation: string, part: number | undefined, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      if (error instanceof BackupError) throw error;
      if (this.controller.signal.aborted) throw this.fail(this.asError(this.controller.signal.reason));
      const status = error instanceof StoreError ? error.status : undefined;
      const where = part === undefined ? operation : `${operation} ${part}`;
      throw new BackupError(
        'BACKUP_CREATE_ERROR',
        `upload of ${this.key} to ${this.store.location} failed at ${where}${status ? ` (HTTP ${status})` : ''}: ${(error as Error).message}`,
        { key: this.key, part, status, cause: error },
      );
    }
  }

  private async settle(): Promise<void> {
    while (this.running.size > 0) await Promise.race(this.running);
  }

  private check(): void {
    if (this.failure) throw this.failure;
    if (this.controller.signal.aborted) throw this.fail(this.asError(this.controller.signal.reason));
  }

  private fail(error: BackupError): BackupError {
    this.failure ??= error;
    if (!this.controller.signal.aborted) this.controller.abort(this.failure);
    return this.failure;
  }

  private asError(reason: unknown): BackupError {
    if (reason instanceof BackupError) return reason;
    const aborted = this.options.signal?.aborted && reason === this.options.signal.reason;
    const message = aborted ? 'the upload was aborted' : (reason as Error)?.message ?? String(reason);
    return new BackupError('BACKUP_CREATE_ERROR', `upload of ${this.key} to ${this.store.location} failed: ${message}`, { key: this.key, cause: reason });
  }
}

/** A store's answer that it has no such request (501, or S3's NotImplemented code). */
function isNotImplemented(error: unknown): boolean {
  return error instanceof StoreError && (error.status === 501 || error.details.code === 'NotImplemented');
}
