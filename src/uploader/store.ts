/**
 * Object storage as the uploader and the backup functions see it: multipart
 * uploads, single puts, ranged reads, head, list, delete. Implementations:
 * S3-compatible through presigned URLs, the Workers R2 binding, a local
 * directory (Node). Keys are relative to the store's prefix.
 */
export interface ObjectStore {
  /** Where the store points, for messages ("s3://bucket/prefix", "file:///dir"). */
  readonly location: string;
  /**
   * Starts a multipart upload; returns its id. `partSize` is the size of
   * every part but the last (a local store uses it to place parts).
   */
  createMultipartUpload(key: string, partSize: number, signal?: AbortSignal): Promise<string>;
  /** Uploads one part; returns its ETag exactly as the store gave it. */
  uploadPart(key: string, uploadId: string, partNumber: number, body: Uint8Array, signal?: AbortSignal): Promise<string>;
  /**
   * Makes one part of an upload from `length` bytes of another object at
   * `offset`, on the store's side (S3's UploadPartCopy): the bytes never
   * travel. Returns the part's ETag. Absent where the store has no such
   * request (an R2 binding); a store that answers 501 NotImplemented has
   * none either, and the uploader sends the bytes itself.
   */
  uploadPartCopy?(key: string, uploadId: string, partNumber: number, source: CopySource, signal?: AbortSignal): Promise<string>;
  /** Completes the upload from its parts, listed in ascending part order. */
  completeMultipartUpload(key: string, uploadId: string, parts: CompletedPart[], signal?: AbortSignal): Promise<void>;
  abortMultipartUpload(key: string, uploadId: string, signal?: AbortSignal): Promise<void>;
  /** Stores a whole object at once. */
  put(key: string, body: Uint8Array, signal?: AbortSignal): Promise<void>;
  /** The object's size, or undefined when there is none. */
  head(key: string, signal?: AbortSignal): Promise<ObjectInfo | undefined>;
  /** Exactly `length` bytes from `offset`. */
  getRange(key: string, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array>;
  /** The whole object as a stream, or undefined when there is none. */
  get(key: string, signal?: AbortSignal): Promise<ReadableStream<Uint8Array> | undefined>;
  /** Every object whose key starts with `prefix`. */
  list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo>;
  /** Removes an object (no error when it does not exist). */
  delete(key: string, signal?: AbortSignal): Promise<void>;
  /**
   * What is wrong with the store itself, worth a warning (a local store
   * others can read); createBackup lists it in the handle's `warnings`.
   */
  audit?(): Promise<string[]>;
}

/** Bytes of a stored object, for a part copied on the store's side. */
export interface CopySource {
  key: string;
  offset: number;
  length: number;
}

export interface CompletedPart {
  partNumber: number;
  etag: string;
}

export interface ObjectInfo {
  key: string;
  size: number;
}

/**
 * A store operation that failed: the operation, the key, the HTTP status
 * where there was one, and whether trying again may help (5xx, 429,
 * network errors) or not (other 4xx, a malformed answer).
 */
export class StoreError extends Error {
  override readonly name = 'StoreError';

  constructor(
    message: string,
    readonly details: {
      operation: string;
      key: string;
      status?: number;
      retryable: boolean;
      part?: number;
      /** The store's own error code (S3's <Code>), or the errno. */
      code?: string;
      /** How long the store asked to wait before trying again (Retry-After). */
      retryAfterMs?: number;
    },
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
  }

  get status(): number | undefined {
    return this.details.status;
  }

  get retryable(): boolean {
    return this.details.retryable;
  }
}

/** R2's (and S3's) most parts in one upload. */
export const MAX_PARTS = 10_000;

/** Whether an HTTP status is worth a retry (501 Not Implemented never is: the store has no such request). */
export function isRetryableStatus(status: number): boolean {
  return (status >= 500 && status !== 501) || status === 429 || status === 408;
}
