import { StoreError, type ObjectInfo, type ObjectStore } from './store.js';

/** The parts of a Workers R2 binding (`env.BUCKET`) this store uses. */
export interface R2BucketLike {
  createMultipartUpload(key: string): Promise<R2MultipartUploadLike>;
  resumeMultipartUpload(key: string, uploadId: string): R2MultipartUploadLike;
  put(key: string, value: Uint8Array | ArrayBuffer): Promise<unknown>;
  head(key: string): Promise<{ key: string; size: number } | null>;
  get(key: string, options?: { range?: { offset: number; length: number } }): Promise<{ body: ReadableStream<Uint8Array>; arrayBuffer(): Promise<ArrayBuffer> } | null>;
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
}

/** A store over a Workers R2 binding: no URLs, no credentials. */
export function r2Store(bucket: R2BucketLike, options: R2StoreOptions = {}): ObjectStore {
  const prefix = (options.prefix ?? '').replace(/^\/+|\/+$/g, '');
  const full = (key: string) => (prefix ? `${prefix}/${key}` : key);
  const location = `${options.name ?? 'r2://binding'}${prefix ? `/${prefix}` : ''}`;

  /** Binding failures carry no status: they are taken as transient (the uploader's bound on tries still holds). */
  async function call<T>(operation: string, key: string, run: () => Promise<T>, part?: number): Promise<T> {
    try {
      return await run();
    } catch (cause) {
      if (cause instanceof StoreError) throw cause;
      throw new StoreError(`${operation} ${key}: ${(cause as Error).message}`, { operation, key, retryable: true, part }, cause);
    }
  }

  return {
    location,
    createMultipartUpload: (key) => call('create multipart upload', key, async () => (await bucket.createMultipartUpload(full(key))).uploadId),
    uploadPart: (key, uploadId, partNumber, body) =>
      call('upload part', key, async () => (await bucket.resumeMultipartUpload(full(key), uploadId).uploadPart(partNumber, body)).etag, partNumber),
    completeMultipartUpload: (key, uploadId, parts) =>
      call('complete multipart upload', key, async () => void (await bucket.resumeMultipartUpload(full(key), uploadId).complete(parts))),
    abortMultipartUpload: (key, uploadId) => call('abort multipart upload', key, () => bucket.resumeMultipartUpload(full(key), uploadId).abort()),
    put: (key, body) => call('put', key, async () => void (await bucket.put(full(key), body))),
    head: (key) =>
      call('head', key, async (): Promise<ObjectInfo | undefined> => {
        const object = await bucket.head(full(key));
        return object ? { key, size: object.size } : undefined;
      }),
    getRange: (key, offset, length) =>
      call('get', key, async () => {
        if (length === 0) return new Uint8Array(0);
        const object = await bucket.get(full(key), { range: { offset, length } });
        if (!object) throw new StoreError(`get ${key}: no such object`, { operation: 'get', key, status: 404, retryable: false });
        const bytes = new Uint8Array(await object.arrayBuffer());
        if (bytes.length !== length) throw new Error(`${bytes.length} bytes at ${offset}, wanted ${length}`);
        return bytes;
      }),
    get: (key) => call('get', key, async () => (await bucket.get(full(key)))?.body),
    async *list(listPrefix) {
      let cursor: string | undefined;
      do {
        const page = await call('list', listPrefix, () => bucket.list({ prefix: full(listPrefix), cursor }));
        for (const object of page.objects) yield { key: prefix ? object.key.slice(prefix.length + 1) : object.key, size: object.size };
        cursor = page.truncated ? page.cursor : undefined;
      } while (cursor);
    },
    delete: (key) => call('delete', key, () => bucket.delete(full(key))),
  };
}
