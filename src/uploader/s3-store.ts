import { AwsClient } from 'aws4fetch';
import { BackupError } from '../errors.js';
import { describeTarget, networkMessage, requestPolicy, resumableStream, retryAfterMs, type RequestContext, type RequestPolicy, type RequestPolicyOptions, type RequestTarget } from './policy.js';
import { isRetryableStatus, MAX_PARTS, StoreError, type CompletedPart, type ObjectInfo, type ObjectStore } from './store.js';
import { escapeXml, xmlElements, xmlValue } from './xml.js';

/** What a presigned URL is for: the method, the object key (full, prefix included; '' for the bucket) and the query. */
export interface PresignRequest {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE';
  key: string;
  query?: Record<string, string>;
  /** Headers the request sends that the signature must cover (UploadPartCopy's x-amz-copy-source and its range). */
  headers?: Record<string, string>;
}

/**
 * Makes presigned URLs. The uploader sees only URLs, so a presigner can run
 * where the secret is (e.g. a server answering with URLs) while the upload
 * runs elsewhere.
 */
export type Presigner = (request: PresignRequest) => Promise<string>;

export interface AwsPresignerOptions {
  /** e.g. https://<account>.r2.cloudflarestorage.com, https://s3.us-east-1.amazonaws.com, http://127.0.0.1:9000 */
  endpoint: string;
  bucket: string;
  /** Default 'auto' (R2); S3 wants the bucket's region. */
  region?: string;
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** Seconds a URL stays valid (default 900, at most 7 days). */
  expiresIn?: number;
}

/** Encodes a key for a URL path, keeping "/" (RFC 3986: also !'()*). */
export function encodeKey(key: string): string {
  return key
    .split('/')
    .map((part) => encodeURIComponent(part).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`))
    .join('/');
}

/** The default presigner: SigV4 query signing with aws4fetch, path-style URLs. */
export function awsPresigner(options: AwsPresignerOptions): Presigner {
  const expiresIn = options.expiresIn ?? 900;
  if (!Number.isInteger(expiresIn) || expiresIn < 1 || expiresIn > 604_800) {
    throw new BackupError('INVALID_BACKUP_CONFIG', `expiresIn must be 1..604800 seconds, not ${expiresIn}`);
  }
  const client = new AwsClient({
    accessKeyId: options.accessKeyId,
    secretAccessKey: options.secretAccessKey,
    sessionToken: options.sessionToken,
    service: 's3',
    region: options.region ?? 'auto',
  });
  const base = options.endpoint.replace(/\/+$/, '');
  return async ({ method, key, query, headers }) => {
    const url = new URL(`${base}/${encodeURIComponent(options.bucket)}${key ? `/${encodeKey(key)}` : ''}`);
    for (const [name, value] of Object.entries(query ?? {})) url.searchParams.set(name, value);
    url.searchParams.set('X-Amz-Expires', String(expiresIn));
    const signed = await client.sign(url.toString(), { method, headers, aws: { signQuery: true } });
    return signed.url;
  };
}

export interface S3StoreOptions {
  /** Used for messages, and with credentials to make the default presigner. */
  endpoint: string;
  bucket: string;
  /** Keys are stored under this prefix ("backups" puts key k at "backups/k"). */
  prefix?: string;
  region?: string;
  /** Credentials for the default presigner; default: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or R2_ACCESS_KEY_ID / R2_SECRET_ACCESS_KEY. */
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  /** Seconds presigned URLs stay valid (default 900). */
  expiresIn?: number;
  /** Your own presigner instead (the store then needs no credentials). */
  presigner?: Presigner;
  /**
   * Seconds a presigned URL is used again for the same request (default 60;
   * at most half of `expiresIn`; 0: sign every request). Ranged GETs of one
   * object share a URL (the range is a header, not signed).
   */
  reuseUrlsFor?: number;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
  /** How every request is tried: retries, backoff, the stall timeout (default: 6 tries, 30 s without progress). */
  policy?: RequestPolicy | RequestPolicyOptions;
}

/** Node's fetch (undici) copies buffer bodies; Workers' fetch wants a known length, which a buffer has. */
const copiesBodies =
  typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node === 'string' &&
  (globalThis as { navigator?: { userAgent?: string } }).navigator?.userAgent !== 'Cloudflare-Workers';

/** A request body is handed to fetch this much at a time, each piece a sign of progress. */
const BODY_PIECE = 256 * 1024;

/**
 * A request body that fetch does not copy: fetch copies a Uint8Array body
 * (the spec's "extract a body" takes a copy), which would double the
 * uploader's memory; a stream of views with its length declared is sent as
 * is, and each piece it hands out tells the policy the request is moving.
 */
function sized(body: Uint8Array, context: RequestContext): RequestInit {
  const headers = { 'content-length': String(body.length) };
  if (!copiesBodies) return { body: body as Uint8Array<ArrayBuffer>, headers };
  let at = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      context.progress();
      if (at >= body.length) return controller.close();
      controller.enqueue(body.subarray(at, at + BODY_PIECE));
      at += BODY_PIECE;
    },
  });
  return { body: stream, headers, duplex: 'half' } as RequestInit;
}

/**
 * Reads a response body into `into` from `at`; returns where it ended.
 * Each piece is progress the policy keeps: a try that breaks off later
 * resumes from there.
 */
async function readInto(response: Response, into: Uint8Array, at: number, context: RequestContext, kept: (end: number) => void): Promise<number> {
  if (!response.body) return at;
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return at;
      if (at + value.length > into.length) throw new Error(`the answer runs past the ${into.length} bytes asked for`);
      into.set(value, at);
      at += value.length;
      context.progress();
      context.kept();
      kept(at);
    }
  } finally {
    reader.releaseLock();
  }
}

/** Reads the credentials the usual environment variables hold, where the runtime has an environment. */
function environmentCredentials(): { accessKeyId?: string; secretAccessKey?: string; sessionToken?: string } {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};
  return {
    accessKeyId: env.AWS_ACCESS_KEY_ID ?? env.R2_ACCESS_KEY_ID,
    secretAccessKey: env.AWS_SECRET_ACCESS_KEY ?? env.R2_SECRET_ACCESS_KEY,
    sessionToken: env.AWS_SESSION_TOKEN,
  };
}

/**
 * An S3-compatible store (R2, S3, MinIO...) driven through presigned URLs:
 * every request is a plain fetch of a URL the presigner made.
 */
export function s3Store(options: S3StoreOptions): ObjectStore {
  const prefix = (options.prefix ?? '').replace(/^\/+|\/+$/g, '');
  const full = (key: string) => (prefix ? `${prefix}/${key}` : key);
  const doFetch = options.fetch ?? ((input, init) => fetch(input, init));
  let presign = options.presigner;
  if (!presign) {
    const env = environmentCredentials();
    const accessKeyId = options.accessKeyId ?? env.accessKeyId;
    const secretAccessKey = options.secretAccessKey ?? env.secretAccessKey;
    if (!accessKeyId || !secretAccessKey) {
      throw new BackupError('INVALID_BACKUP_CONFIG', `no credentials for s3://${options.bucket}: pass accessKeyId and secretAccessKey, set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or R2_ACCESS_KEY_ID/R2_SECRET_ACCESS_KEY), or pass a presigner`);
    }
    presign = awsPresigner({ ...options, accessKeyId, secretAccessKey, sessionToken: options.sessionToken ?? env.sessionToken });
  }
  const location = `s3://${options.bucket}${prefix ? `/${prefix}` : ''} at ${options.endpoint}`;
  const reuseMs = 1000 * Math.min(options.reuseUrlsFor ?? 60, options.presigner ? Infinity : (options.expiresIn ?? 900) / 2);
  const urls = new UrlCache(presign, reuseMs);

  const policy = requestPolicy(options.policy);

  /**
   * One try of a request: presigns, fetches and hands the response to
   * `handle`. Non-2xx answers (but the `allowed` ones) become StoreErrors
   * carrying the status, the S3 error code and any Retry-After; a
   * connection that breaks, before or during the body, is a transient
   * StoreError.
   */
  async function once<T>(
    target: RequestTarget, req: PresignRequest, send: Send, context: RequestContext,
    handle: (response: Response) => Promise<T>,
  ): Promise<T> {
    const { operation, key, part } = target;
    const url = await urls.get(req);
    // The parts of an upload come in order: their URLs are signed a few ahead, off the request's path.
    if (req.query?.partNumber && !req.headers) urls.signAhead(req, SIGN_AHEAD);
    const body = send.body instanceof Uint8Array ? sized(send.body, context) : { body: send.body };
    let response: Response;
    try {
      response = await doFetch(url, { method: req.method, ...body, headers: { ...(body.headers as object), ...send.headers }, signal: context.signal });
    } catch (cause) {
      throw new StoreError(`${describeTarget(target)}: ${networkMessage(cause)}`, { operation, key, retryable: true, part }, cause);
    }
    context.progress();
    if (!response.ok && !send.allowed?.includes(response.status)) {
      const text = await response.text().catch(() => '');
      const code = xmlValue(text, 'Code');
      const message = xmlValue(text, 'Message');
      throw new StoreError(
        `${describeTarget(target)}: HTTP ${response.status}${code ? ` ${code}` : ''}${message ? `: ${message}` : ''}`,
        { operation, key, status: response.status, retryable: isRetryableStatus(response.status), part, code, retryAfterMs: retryAfterMs(response.headers.get('retry-after')) },
      );
    }
    try {
      return await handle(response);
    } catch (cause) {
      if (cause instanceof StoreError) throw cause;
      await response.body?.cancel().catch(() => undefined);
      throw new StoreError(`${describeTarget(target)}: ${networkMessage(cause)}`, { operation, key, status: response.status, retryable: true, part }, cause);
    }
  }

  /** A request through the policy, each try made by `once`. */
  const call = <T>(target: RequestTarget, req: PresignRequest, send: Send, signal: AbortSignal | undefined, handle: (response: Response, context: RequestContext) => Promise<T>) =>
    policy.run(target, (context) => once(target, req, send, context, (response) => handle(response, context)), signal);

  /** A 200 whose body is an <Error> (CompleteMultipartUpload does this) is a failure too. */
  async function xmlBody(target: RequestTarget, response: Response): Promise<string> {
    const body = await response.text();
    if (/<Error[\s>]/.test(body)) {
      const code = xmlValue(body, 'Code');
      throw new StoreError(`${describeTarget(target)}: the store answered ${response.status} with an error: ${code ?? 'unknown'}: ${xmlValue(body, 'Message') ?? ''}`, {
        ...target, status: response.status, retryable: code === 'InternalError' || code === 'SlowDown' || code === 'ServiceUnavailable', code,
      });
    }
    return body;
  }

  return {
    location,

    createMultipartUpload: (key, _partSize, signal) =>
      call({ operation: 'create multipart upload', key }, { method: 'POST', key: full(key), query: { uploads: '' } }, {}, signal, async (response) => {
        const uploadId = xmlValue(await xmlBody({ operation: 'create multipart upload', key }, response), 'UploadId');
        if (!uploadId) throw new StoreError(`create multipart upload ${key}: no UploadId in the answer`, { operation: 'create multipart upload', key, retryable: false });
        return uploadId;
      }),

    uploadPart: (key, uploadId, partNumber, body, signal) =>
      call({ operation: 'upload part', key, part: partNumber }, { method: 'PUT', key: full(key), query: { partNumber: String(partNumber), uploadId } }, { body }, signal, async (response) => {
        await drain(response);
        const etag = response.headers.get('etag');
        if (!etag) throw new StoreError(`upload part ${partNumber} of ${key}: the answer has no ETag`, { operation: 'upload part', key, part: partNumber, status: response.status, retryable: false });
        return etag;
      }),

    uploadPartCopy: (key, uploadId, partNumber, source, signal) => {
      const target = { operation: 'copy part', key, part: partNumber };
      // The source is named as /bucket/key, its key URL-encoded; the range is inclusive.
      const headers = {
        'x-amz-copy-source': `/${options.bucket}/${encodeKey(full(source.key))}`,
        'x-amz-copy-source-range': `bytes=${source.offset}-${source.offset + source.length - 1}`,
      };
      return call(target, { method: 'PUT', key: full(key), query: { partNumber: String(partNumber), uploadId }, headers }, { headers }, signal, async (response) => {
        // Like CompleteMultipartUpload, a copy can answer 200 with an <Error> body.
        const etag = xmlValue(await xmlBody(target, response), 'ETag') ?? response.headers.get('etag');
        if (!etag) throw new StoreError(`copy part ${partNumber} of ${key}: the answer has no ETag`, { ...target, status: response.status, retryable: false });
        return etag.replace(/&quot;/g, '"');
      });
    },

    completeMultipartUpload: (key, uploadId, parts, signal) => {
      const xml = `<CompleteMultipartUpload>${parts.map((p) => `<Part><PartNumber>${p.partNumber}</PartNumber><ETag>${escapeXml(p.etag)}</ETag></Part>`).join('')}</CompleteMultipartUpload>`;
      const target = { operation: 'complete multipart upload', key };
      return call(target, { method: 'POST', key: full(key), query: { uploadId } }, { body: xml, headers: { 'content-type': 'application/xml' } }, signal, async (response) => {
        await xmlBody(target, response);
      });
    },

    abortMultipartUpload: (key, uploadId, signal) =>
      call({ operation: 'abort multipart upload', key }, { method: 'DELETE', key: full(key), query: { uploadId } }, { allowed: [404] }, signal, drain),

    put: (key, body, signal) => call({ operation: 'put', key }, { method: 'PUT', key: full(key) }, { body }, signal, drain),

    head: (key, signal) =>
      call({ operation: 'head', key }, { method: 'HEAD', key: full(key) }, { allowed: [404] }, signal, async (response): Promise<ObjectInfo | undefined> => {
        await drain(response);
        if (response.status === 404) return undefined;
        return { key, size: Number(response.headers.get('content-length')) };
      }),

    getRange(key, offset, length, signal) {
      if (length === 0) return Promise.resolve(new Uint8Array(0));
      // Filled across tries: a range that breaks off is asked for again from the byte where it stopped.
      const bytes = new Uint8Array(length);
      let filled = 0;
      return policy.run({ operation: 'get', key }, (context) => {
        const from = offset + filled;
        return once({ operation: 'get', key }, { method: 'GET', key: full(key) }, { headers: { range: `bytes=${from}-${offset + length - 1}` } }, context, async (response) => {
          if (response.status === 200) {
            // A store that ignores Range answers with everything: take the slice.
            const all = new Uint8Array(await response.arrayBuffer());
            bytes.set(all.subarray(from, offset + length), filled);
            filled += Math.max(0, Math.min(all.length, offset + length) - from);
          } else {
            filled = await readInto(response, bytes, filled, context, (end) => void (filled = end));
          }
          if (filled !== length) {
            throw new StoreError(`get ${key}: the answer broke off at byte ${offset + filled} of ${offset}..${offset + length}`, { operation: 'get', key, status: response.status, retryable: true });
          }
          return bytes;
        });
      }, signal);
    },

    get: (key, signal) =>
      resumableStream(policy, { operation: 'get', key }, (offset, context) =>
        once({ operation: 'get', key }, { method: 'GET', key: full(key) }, { headers: offset > 0 ? { range: `bytes=${offset}-` } : undefined, allowed: [404] }, context, async (response) => {
          if (response.status === 404) {
            await drain(response);
            return undefined;
          }
          if (offset > 0 && response.status !== 206) {
            await drain(response);
            throw new StoreError(`get ${key}: the store ignored the range from ${offset}`, { operation: 'get', key, status: response.status, retryable: false });
          }
          return response.body ?? new ReadableStream<Uint8Array>({ start: (c) => c.close() });
        }), signal),

    async *list(listPrefix, signal) {
      let token: string | undefined;
      const target = { operation: 'list', key: listPrefix };
      do {
        const query: Record<string, string> = { 'list-type': '2', prefix: full(listPrefix) };
        if (token) query['continuation-token'] = token;
        const body = await call(target, { method: 'GET', key: '', query }, {}, signal, (response) => xmlBody(target, response));
        for (const item of xmlElements(body, 'Contents')) {
          const key = xmlValue(item, 'Key')!;
          yield { key: prefix ? key.slice(prefix.length + 1) : key, size: Number(xmlValue(item, 'Size')) };
        }
        token = xmlValue(body, 'IsTruncated') === 'true' ? xmlValue(body, 'NextContinuationToken') : undefined;
      } while (token);
    },

    delete: (key, signal) => call({ operation: 'delete', key }, { method: 'DELETE', key: full(key) }, { allowed: [404] }, signal, drain),
  };
}

/** Part URLs signed ahead of the part that asks for one. */
const SIGN_AHEAD = 8;
/** URLs kept at most. */
const MAX_URLS = 512;

/**
 * Presigned URLs, kept for a while and used again for the same request:
 * signing costs several asynchronous crypto steps, each a turn of a busy
 * event loop, which a part or a ranged GET need not wait for.
 */
/** A URL is not used again within this long of its expiry. */
const EXPIRY_MARGIN_MS = 10_000;

/** When a SigV4 presigned URL expires (ms since the epoch); Infinity when it does not say. */
function signedUntil(url: string): number {
  const query = new URL(url).searchParams;
  const date = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(query.get('X-Amz-Date') ?? '');
  const expires = Number(query.get('X-Amz-Expires'));
  if (!date || !Number.isFinite(expires)) return Infinity;
  const [, y, mo, d, h, mi, se] = date.map(Number) as number[];
  return Date.UTC(y!, mo! - 1, d!, h!, mi!, se!) + expires * 1000;
}

class UrlCache {
  private readonly urls = new Map<string, { url: Promise<string>; until: number }>();

  constructor(private readonly presign: Presigner, private readonly reuseMs: number) {}

  get(req: PresignRequest): Promise<string> {
    if (this.reuseMs <= 0) return this.presign(req);
    const id = `${req.method} ${req.key}?${new URLSearchParams(req.query).toString()} ${JSON.stringify(req.headers ?? {})}`;
    const now = Date.now();
    const kept = this.urls.get(id);
    if (kept && kept.until > now) return kept.url;
    const url = this.presign(req);
    url.catch(() => this.urls.delete(id));
    this.urls.delete(id);
    const entry = { url, until: now + this.reuseMs };
    // Never past the URL's own expiry (X-Amz-Date + X-Amz-Expires, less a margin): a presigner elsewhere may sign for less.
    url.then((signed) => (entry.until = Math.min(entry.until, signedUntil(signed) - EXPIRY_MARGIN_MS)), () => undefined);
    this.urls.set(id, entry);
    if (this.urls.size > MAX_URLS) this.urls.delete(this.urls.keys().next().value!);
    return url;
  }

  /** Signs the URLs of the next `count` parts after a part request's, and of part 1 (which goes up at the end). */
  signAhead(req: PresignRequest, count: number): void {
    if (this.reuseMs <= 0) return;
    const part = Number(req.query!.partNumber);
    for (const n of [1, ...Array.from({ length: count }, (_, i) => part + 1 + i)]) {
      if (n > MAX_PARTS) break;
      this.get({ ...req, query: { ...req.query, partNumber: String(n) } }).catch(() => undefined);
    }
  }
}

/** What one request sends, besides its URL. */
interface Send {
  body?: Uint8Array | string;
  headers?: Record<string, string>;
  /** Statuses besides 2xx that are answers, not failures (404 for head, get, delete). */
  allowed?: number[];
}

/** Answers whose body nobody reads are drained, so the connection goes back to the pool. */
async function drain(response: Response): Promise<void> {
  await response.body?.cancel();
}

export type { CompletedPart };
