import { requestPolicy, resumableStream, type RequestPolicy, type RequestPolicyOptions, type RequestTarget } from './policy.js';
import { StoreError, type ObjectInfo, type ObjectStore } from './store.js';

/** The parts of a Workers R2 binding (`env.BUCKET`) this store uses. */
export interface R2BucketLike {
  createMultipartUpload(key: string): Promise<R2MultipartUploadLike>;
  resumeMultipartUpload(key: string, uploadId: string): R2MultipartUploadLike;
  put(key: string, value: Uint8Array | ArrayBuffer): Promise<unknown>;
  head(key: string): Promise<{ key: string; size: number } | null>;
  get(key: string, options?: { range?: { offset: number; length?: number } }): Promise<{ body: ReadableStream<Uint8Array>; arrayBuffer(): Promise<ArrayBuffer> } | null>;
  list(options?: { prefix?: string; cursor?: string; limit?: number }): Promise<{ objects: { key: string; size: number }[]; truncated: boolean; cursor?: string }>;
  delete(keys: string | string[]): Promise<void>;
}

export interface R2MultipartUploadLike {
  readonly uploadId: string;
  uploadPart(partNumber: number, value: Uint8Array | ArrayBuffer): Promise<{ partNumber: number; etag: string }>;
  abort(): Promise<void>;
  complete(parts: { partNumber: number; etag: string }[]): Promise<unknown>;
}

export interface R2StoreOptions {
  /** Keys are stored under this prefix. */
  prefix?: string;
  /** For messages (default "r2://binding"). */
  name?: string;
  /** How every call is tried: retries, backoff, the stall timeout (default: 6 tries, 30 s without progress). */
  policy?: RequestPolicy | RequestPolicyOptions;
}

/** A store over a Workers R2 binding: no URLs, no credentials. */
export function r2Store(bucket: R2BucketLike, options: R2StoreOptions = {}): ObjectStore {
  const prefix = (options.prefix ?? '').replace(/^\/+|\/+$/g, '');
  const full = (key: string) => (prefix ? `${prefix}/${key}` : key);
  const location = `${options.name ?? 'r2://binding'}${prefix ? `/${prefix}` : ''}`;

  const policy = requestPolicy(options.policy);

  /**
   * One binding call through the policy. Binding failures carry no status:
   * they are taken as transient (the policy's bound on tries still holds).
   * The binding takes no signal: a stalled call is left behind, not waited for.
   */
  function call<T>(target: RequestTarget, run: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return policy.run(target, async () => {
      try {
        return await run();
      } catch (cause) {
        if (cause instanceof StoreError) throw cause;
        throw new StoreError(`${target.operation} ${target.key}: ${(cause as Error).message}`, { ...target, retryable: true }, cause);
      }
    }, signal);
  }

  return {
    location,
    createMultipartUpload: (key, _partSize, signal) =>
      call({ operation: 'create multipart upload', key }, async () => (await bucket.createMultipartUpload(full(key))).uploadId, signal),
    uploadPart: (key, uploadId, partNumber, body, signal) =>
      call({ operation: 'upload part', key, part: partNumber }, async () => (await bucket.resumeMultipartUpload(full(key), uploadId).uploadPart(partNumber, body)).etag, signal),
    completeMultipartUpload: (key, uploadId, parts, signal) =>
      call({ operation: 'complete multipart upload', key }, async () => void (await bucket.resumeMultipartUpload(full(key), uploadId).complete(parts)), signal),
    abortMultipartUpload: (key, uploadId, signal) =>
      call({ operation: 'abort multipart upload', key }, () => bucket.resumeMultipartUpload(full(key), uploadId).abort(), signal),
    put: (key, body, signal) => call({ operation: 'put', key }, async () => void (await bucket.put(full(key), body)), signal),
    head: (key, signal) =>
      call({ operation: 'head', key }, async (): Promise<ObjectInfo | undefined> => {
        const object = await bucket.head(full(key));
        return object ? { key, size: object.size } : undefined;
      }, signal),
    getRange: (key, offset, length, signal) =>
      call({ operation: 'get', key }, async () => {
        if (length === 0) return new Uint8Array(0);
        const object = await bucket.get(full(key), { range: { offset, length } });
        if (!object) throw new StoreError(`get ${key}: no such object`, { operation: 'get', key, status: 404, retryable: false });
        const bytes = new Uint8Array(await object.arrayBuffer());
        if (bytes.length !== length) throw new Error(`${bytes.length} bytes at ${offset}, wanted ${length}`);
        return bytes;
      }, signal),
    get: (key, signal) =>
      resumableStream(policy, { operation: 'get', key }, async (offset) => {
        try {
          return (await bucket.get(full(key), offset > 0 ? { range: { offset } } : undefined))?.body;
        } catch (cause) {
          throw new StoreError(`get ${key}: ${(cause as Error).message}`, { operation: 'get', key, retryable: true }, cause);
        }
      }, signal),
    async *list(listPrefix, signal) {
      let cursor: string | undefined;
      do {
        const page = await call({ operation: 'list', key: listPrefix }, () => bucket.list({ prefix: full(listPrefix), cursor }), signal);
        for (const object of page.objects) yield { key: prefix ? object.key.slice(prefix.length + 1) : object.key, size: object.size };
        cursor = page.truncated ? page.cursor : undefined;
      } while (cursor);
    },
    delete: (key, signal) => call({ operation: 'delete', key }, () => bucket.delete(full(key)), signal),
  };
}
