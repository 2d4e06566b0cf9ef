import { AwsClient } from 'aws4fetch';
import { BackupError } from '../errors.js';
import { isRetryableStatus, StoreError, type CompletedPart, type ObjectInfo, type ObjectStore } from './store.js';
import { escapeXml, xmlElements, xmlValue } from './xml.js';

/** What a presigned URL is for: the method, the object key (full, prefix included; '' for the bucket) and the query. */
export interface PresignRequest {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE';
  key: string;
  query?: Record<string, string>;
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
  return async ({ method, key, query }) => {
    const url = new URL(`${base}/${encodeURIComponent(options.bucket)}${key ? `/${encodeKey(key)}` : ''}`);
    for (const [name, value] of Object.entries(query ?? {})) url.searchParams.set(name, value);
    url.searchParams.set('X-Amz-Expires', String(expiresIn));
    const signed = await client.sign(url.toString(), { method, aws: { signQuery: true } });
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
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
}

/** Node's fetch (undici) copies buffer bodies; Workers' fetch wants a known length, which a buffer has. */
const copiesBodies =
  typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node === 'string' &&
  (globalThis as { navigator?: { userAgent?: string } }).navigator?.userAgent !== 'Cloudflare-Workers';

/**
 * A request body that fetch does not copy: fetch copies a Uint8Array body
 * (the spec's "extract a body" takes a copy), which would double the
 * uploader's memory; a one-chunk stream with its length declared is sent as is.
 */
function sized(body: Uint8Array): RequestInit {
  if (!copiesBodies) return { body: body as Uint8Array<ArrayBuffer>, headers: { 'content-length': String(body.length) } };
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      controller.enqueue(body);
      controller.close();
    },
  });
  return { body: stream, headers: { 'content-length': String(body.length) }, duplex: 'half' } as RequestInit;
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

  /** One request; non-2xx answers (but the `allowed` ones) become StoreErrors carrying the status and the S3 error code. */
  async function request(
    operation: string, key: string, req: PresignRequest, init: RequestInit & { signal?: AbortSignal }, allowed: number[] = [], part?: number,
  ): Promise<Response> {
    const url = await presign!(req);
    let response: Response;
    try {
      response = await doFetch(url, { method: req.method, ...init });
    } catch (cause) {
      if (init.signal?.aborted) throw cause;
      throw new StoreError(`${operation} ${key}: ${(cause as Error).message}`, { operation, key, retryable: true, part }, cause);
    }
    if (response.ok || allowed.includes(response.status)) return response;
    const body = await response.text().catch(() => '');
    const code = xmlValue(body, 'Code');
    const message = xmlValue(body, 'Message');
    throw new StoreError(
      `${operation} ${key}: HTTP ${response.status}${code ? ` ${code}` : ''}${message ? `: ${message}` : ''}`,
      { operation, key, status: response.status, retryable: isRetryableStatus(response.status), part, code },
    );
  }

  /** A 200 whose body is an <Error> (CompleteMultipartUpload does this) is a failure too. */
  async function xmlBody(operation: string, key: string, response: Response): Promise<string> {
    const body = await response.text();
    if (/<Error[\s>]/.test(body)) {
      const code = xmlValue(body, 'Code');
      throw new StoreError(`${operation} ${key}: the store answered ${response.status} with an error: ${code ?? 'unknown'}: ${xmlValue(body, 'Message') ?? ''}`, {
        operation, key, status: response.status, retryable: code === 'InternalError' || code === 'SlowDown' || code === 'ServiceUnavailable', code,
      });
    }
    return body;
  }

  return {
    location,

    async createMultipartUpload(key, _partSize, signal) {
      const response = await request('create multipart upload', key, { method: 'POST', key: full(key), query: { uploads: '' } }, { signal });
      const uploadId = xmlValue(await xmlBody('create multipart upload', key, response), 'UploadId');
      if (!uploadId) throw new StoreError(`create multipart upload ${key}: no UploadId in the answer`, { operation: 'create multipart upload', key, retryable: false });
      return uploadId;
    },

    async uploadPart(key, uploadId, partNumber, body, signal) {
      const response = await request(
        'upload part', key, { method: 'PUT', key: full(key), query: { partNumber: String(partNumber), uploadId } },
        { ...sized(body), signal }, [], partNumber,
      );
      await response.body?.cancel();
      const etag = response.headers.get('etag');
      if (!etag) throw new StoreError(`upload part ${partNumber} of ${key}: the answer has no ETag`, { operation: 'upload part', key, part: partNumber, status: response.status, retryable: false });
      return etag;
    },

    async completeMultipartUpload(key, uploadId, parts, signal) {
      const xml = `<CompleteMultipartUpload>${parts.map((p) => `<Part><PartNumber>${p.partNumber}</PartNumber><ETag>${escapeXml(p.etag)}</ETag></Part>`).join('')}</CompleteMultipartUpload>`;
      const response = await request('complete multipart upload', key, { method: 'POST', key: full(key), query: { uploadId } }, {
        body: xml, signal, headers: { 'content-type': 'application/xml' },
      });
      await xmlBody('complete multipart upload', key, response);
    },

    async abortMultipartUpload(key, uploadId, signal) {
      const response = await request('abort multipart upload', key, { method: 'DELETE', key: full(key), query: { uploadId } }, { signal }, [404]);
      await response.body?.cancel();
    },

    async put(key, body, signal) {
      const response = await request('put', key, { method: 'PUT', key: full(key) }, { ...sized(body), signal });
      await response.body?.cancel();
    },

    async head(key, signal): Promise<ObjectInfo | undefined> {
      const response = await request('head', key, { method: 'HEAD', key: full(key) }, { signal }, [404]);
      await response.body?.cancel();
      if (response.status === 404) return undefined;
      return { key, size: Number(response.headers.get('content-length')) };
    },

    async getRange(key, offset, length, signal) {
      if (length === 0) return new Uint8Array(0);
      const response = await request('get', key, { method: 'GET', key: full(key) }, { signal, headers: { range: `bytes=${offset}-${offset + length - 1}` } });
      const bytes = new Uint8Array(await response.arrayBuffer());
      // A store that ignores Range answers 200 with everything: take the slice.
      const slice = response.status === 200 ? bytes.subarray(offset, offset + length) : bytes;
      if (slice.length !== length) {
        throw new StoreError(`get ${key}: ${slice.length} bytes at ${offset}, wanted ${length}`, { operation: 'get', key, status: response.status, retryable: true });
      }
      return slice;
    },

    async get(key, signal) {
      const response = await request('get', key, { method: 'GET', key: full(key) }, { signal }, [404]);
      if (response.status === 404) {
        await response.body?.cancel();
        return undefined;
      }
      return response.body ?? new ReadableStream({ start: (c) => c.close() });
    },

    async *list(listPrefix, signal) {
      let token: string | undefined;
      do {
        const query: Record<string, string> = { 'list-type': '2', prefix: full(listPrefix) };
        if (token) query['continuation-token'] = token;
        const response = await request('list', listPrefix, { method: 'GET', key: '', query }, { signal });
        const body = await xmlBody('list', listPrefix, response);
        for (const item of xmlElements(body, 'Contents')) {
          const key = xmlValue(item, 'Key')!;
          yield { key: prefix ? key.slice(prefix.length + 1) : key, size: Number(xmlValue(item, 'Size')) };
        }
        token = xmlValue(body, 'IsTruncated') === 'true' ? xmlValue(body, 'NextContinuationToken') : undefined;
      } while (token);
    },

    async delete(key, signal) {
      const response = await request('delete', key, { method: 'DELETE', key: full(key) }, { signal }, [404]);
      await response.body?.cancel();
    },
  } satisfies ObjectStore & { location: string } as ObjectStore;
}

export type { CompletedPart };
