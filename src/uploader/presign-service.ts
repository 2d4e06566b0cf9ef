import { BackupError } from '../errors.js';
import { awsPresigner, encodeKey, type AwsPresignerOptions, type Presigner, type PresignRequest } from './s3-store.js';
import { MAX_PARTS } from './store.js';

/**
 * The Worker side of "the Worker holds the keys": a presign service that
 * keeps the bucket credentials and signs URLs for a holder of a capability
 * token, only for the operations the token allows and only for keys under
 * its prefix. Web APIs only (fetch's Request and Response, WebCrypto), so it
 * runs in a Worker's fetch handler, in Node and in any runtime with them.
 */

/** What a token may allow: write (create, part, complete, abort, put, head), read (get, head, list), delete. */
export type Capability = 'write' | 'read' | 'delete';

/** The S3 request a presign request is for, as derived from its method, key and query. */
export type PresignOperation = 'create' | 'part' | 'copy' | 'complete' | 'abort' | 'put' | 'head' | 'get' | 'list' | 'delete';

const CAPABILITIES: readonly Capability[] = ['write', 'read', 'delete'];

/** Which capabilities allow an operation (head: what was written is checked, so write allows it too). */
const ALLOWED_BY: Record<PresignOperation, readonly Capability[]> = {
  create: ['write'], part: ['write'], copy: ['write'], complete: ['write'], abort: ['write'], put: ['write'],
  head: ['write', 'read'], get: ['read'], list: ['read'], delete: ['delete'],
};

/** The bucket and its credentials (as awsPresigner takes them; the URLs' lifetime is `urlTtl`), and the token settings. */
export interface PresignServiceOptions extends Omit<AwsPresignerOptions, 'expiresIn'> {
  /** The HMAC-SHA256 key tokens are made and checked with: at least 32 bytes (a string counts its UTF-8 bytes), or a CryptoKey for HMAC SHA-256. */
  signingKey: string | Uint8Array | CryptoKey;
  /** Seconds a signed URL stays valid (default 300, at most 3600); never past its token's expiry. */
  urlTtl?: number;
  /** The longest token issueToken makes, in seconds (default 7 days). */
  maxTokenTtl?: number;
  /** The clock tokens are issued and checked by, in ms (default Date.now). */
  now?: () => number;
}

/** What a token grants. */
export interface TokenGrant {
  /** Keys under this prefix ("sandboxes/x" and "sandboxes/x/" are the same: a token never reaches "sandboxes/xy/"). */
  prefix: string;
  operations: readonly Capability[];
  /** Seconds the token is valid, a whole number. */
  ttl: number;
}

/** A genuine, unexpired token's claims. */
export interface TokenClaims {
  /** Always ends with "/". */
  prefix: string;
  operations: Capability[];
  /** When the token expires, in ms since the epoch. */
  expiresAt: number;
}

/** The service's answer to a presign request it grants. */
export interface PresignAnswer {
  url: string;
  /** When the URL expires (ISO 8601). */
  expiresAt: string;
  /** Seconds the URL was signed to live, from when it was signed. */
  expiresIn: number;
}

export interface PresignService {
  /** A capability token for `grant`: base64url(JSON claims) "." base64url(HMAC-SHA256). */
  issueToken(grant: TokenGrant): Promise<string>;
  /** The token's claims when it is genuine and unexpired, else undefined. */
  verifyToken(token: string): Promise<TokenClaims | undefined>;
  /**
   * Answers a presign request: POST, `Authorization: Bearer <token>`, a JSON
   * body `{ method, key, query }` (a PresignRequest). 200 with
   * `{ url, expiresAt, expiresIn }` when the token allows it; else 400 (not
   * a presign request), 401 (no token, not genuine, expired), 403 (an
   * operation, key or query the token does not allow) or 405, each with
   * `{ error, code }`, and nothing signed.
   */
  handle(request: Request): Promise<Response>;
}

const DEFAULT_URL_TTL = 300;
const MAX_URL_TTL = 3600;
const DEFAULT_MAX_TOKEN_TTL = 7 * 24 * 3600;
/** S3's (and R2's) longest key, in UTF-8 bytes. */
const MAX_KEY_BYTES = 1024;
const MAX_PREFIX_BYTES = 512;
const MAX_TOKEN_CHARS = 4096;
const MAX_BODY_BYTES = 16 * 1024;
/** Upload ids and continuation tokens are opaque strings the store gave; bounded all the same. */
const MAX_OPAQUE_CHARS = 1024;
/** The MAC covers this and the payload, so a token's MAC means nothing elsewhere. */
const MAC_CONTEXT = 'sqfs-presign-token.v1.';

/** A refusal: the status, a stable code and what was wrong. */
class Refusal extends Error {
  constructor(readonly status: 400 | 401 | 403 | 405, readonly code: string, message: string) {
    super(message);
  }
}

/** An upload id or a continuation token: opaque, as the store gave it, but bounded and printable. */
const opaque = (value: string) => value !== '' && value.length <= MAX_OPAQUE_CHARS && !CONTROL.test(value) && !LONE_SURROGATE.test(value);

/** The query parameters s3Store sends, each with the values it may have (a LIST prefix is checked as a key besides). */
const QUERY_VALUES: Record<string, (value: string) => boolean> = {
  uploads: (value) => value === '',
  partNumber: (value) => /^[1-9][0-9]{0,4}$/.test(value) && Number(value) <= MAX_PARTS,
  uploadId: opaque,
  'list-type': (value) => value === '2',
  prefix: () => true,
  'continuation-token': opaque,
};

/**
 * The operation a presign request is for, from its method, key and query
 * names, exactly as s3Store makes them; undefined for any other shape (a
 * query parameter s3Store does not send, a bucket-level request but LIST).
 */
export function presignOperation(request: Pick<PresignRequest, 'method' | 'key' | 'query' | 'headers'>): PresignOperation | undefined {
  const headers = Object.keys(request.headers ?? {}).sort().join('&');
  if (headers !== '' && headers !== COPY_HEADERS) return undefined;
  const given = Object.keys(request.query ?? {});
  if (!given.every((name) => Object.hasOwn(QUERY_VALUES, name))) return undefined;
  const names = given.sort().join('&');
  const bucket = request.key === '';
  // Copy headers on any request but a part would make it another one (a PUT with them is CopyObject).
  if (headers && `${request.method} ${names}` !== 'PUT partNumber&uploadId') return undefined;
  switch (`${request.method} ${names}`) {
    case 'POST uploads': return bucket ? undefined : 'create';
    case 'PUT partNumber&uploadId': return bucket ? undefined : headers ? 'copy' : 'part';
    case 'POST uploadId': return bucket ? undefined : 'complete';
    case 'DELETE uploadId': return bucket ? undefined : 'abort';
    case 'PUT ': return bucket ? undefined : 'put';
    case 'HEAD ': return bucket ? undefined : 'head';
    case 'GET ': return bucket ? undefined : 'get';
    case 'GET list-type&prefix':
    case 'GET continuation-token&list-type&prefix': return bucket ? 'list' : undefined;
    case 'DELETE ': return bucket ? undefined : 'delete';
    default: return undefined;
  }
}

/** The headers of an UploadPartCopy, the only request s3Store has sign headers. */
const COPY_HEADERS = 'x-amz-copy-source&x-amz-copy-source-range';

/**
 * What is wrong with an UploadPartCopy's source (x-amz-copy-source:
 * "/bucket/key", the key URL-encoded as s3Store encodes it; the range
 * "bytes=first-last"), or undefined: it must be in this bucket and under
 * the token's prefix, as the key written to is. Copying reads the source,
 * so the token must allow reading too.
 */
function copyProblem(headers: Record<string, string>, bucket: string, claims: TokenClaims): string | undefined {
  if (!claims.operations.includes('read')) return 'a copy reads its source: the token must allow read as well as write';
  const source = headers['x-amz-copy-source']!;
  const inBucket = `/${encodeURIComponent(bucket)}/`;
  if (!source.startsWith(inBucket)) return `copy source ${JSON.stringify(source)} is not in bucket ${bucket}`;
  let key: string;
  try {
    key = source.slice(inBucket.length).split('/').map(decodeURIComponent).join('/');
  } catch {
    return `copy source ${JSON.stringify(source)} is not URL-encoded`;
  }
  if (encodeKey(key) !== source.slice(inBucket.length)) return `copy source ${JSON.stringify(source)} is not encoded as s3Store encodes keys`;
  const problem = keyProblem(key, claims.prefix, false);
  if (problem) return `copy source ${JSON.stringify(key)}: ${problem}`;
  if (!/^bytes=(0|[1-9]\d{0,15})-(0|[1-9]\d{0,15})$/.test(headers['x-amz-copy-source-range']!)) return 'the copy range is not "bytes=first-last"';
  return undefined;
}

// ---------------------------------------------------------------------------
// Keys

/** C0 controls, DEL and C1 controls (NUL included). */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** A lone surrogate (no UTF-8 for it, so no S3 key). */
const LONE_SURROGATE = /\p{Cs}/u;

/** One round of percent-decoding: each %HH becomes the character U+00HH; anything else stays. */
function percentDecode(text: string): string {
  return text.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

const utf8Length = (text: string) => new TextEncoder().encode(text).length;
const slashes = (text: string) => text.split('/').length - 1;

/** What is wrong with one form of a key (as given, or decoded), or undefined. `open`: a LIST prefix, whose last segment may be empty. */
function pathProblem(form: string, prefix: string, open: boolean): string | undefined {
  if (CONTROL.test(form)) return 'a control character';
  if (form.includes('\\')) return 'a backslash';
  if (!form.startsWith(prefix)) return `not under the prefix "${prefix}"`;
  const segments = form.slice(prefix.length).split('/');
  if (open && segments.at(-1) === '') segments.pop();
  if (!open && segments.length === 1 && segments[0] === '') return 'no name under the prefix';
  for (const segment of segments) {
    if (segment === '') return 'an empty segment ("//", or a trailing "/")';
    if (segment === '.' || segment === '..') return `a "${segment}" segment`;
  }
  return undefined;
}

/**
 * Why a key (or, `open`, a LIST prefix) is refused under `prefix`, or
 * undefined when it lies under it. The key as given and every form that
 * percent-decoding it again and again makes (until it stops changing) must
 * each be clean (no control character, no backslash, no empty, "." or ".."
 * segment), lie under the prefix and have the same slashes: an encoded
 * "/", "." or "\" can never change what a key names, whatever decodes it.
 */
function keyProblem(key: string, prefix: string, open: boolean): string | undefined {
  if (LONE_SURROGATE.test(key)) return 'a lone surrogate';
  if (utf8Length(key) > MAX_KEY_BYTES) return `longer than ${MAX_KEY_BYTES} bytes`;
  const expected = slashes(key);
  for (let form = key, decoded = false; ; decoded = true) {
    const problem = pathProblem(form, prefix, open);
    if (problem) return decoded ? `${problem} once percent-decoded` : problem;
    if (slashes(form) !== expected) return 'a percent-encoded "/"';
    const next = percentDecode(form);
    if (next === form) return undefined;
    form = next;
  }
}

/** A token's prefix as stored: clean, no "%", ending with "/". */
function checkPrefix(prefix: unknown): string {
  if (typeof prefix !== 'string' || prefix === '' || prefix === '/') throw new BackupError('INVALID_BACKUP_CONFIG', 'a token needs a prefix (e.g. "sandboxes/x/")');
  const withSlash = prefix.endsWith('/') ? prefix : `${prefix}/`;
  const problem = prefix.includes('%') ? 'a "%"' : LONE_SURROGATE.test(prefix) ? 'a lone surrogate' : pathProblem(withSlash, '', true);
  if (problem || utf8Length(withSlash) > MAX_PREFIX_BYTES) {
    throw new BackupError('INVALID_BACKUP_CONFIG', `token prefix ${JSON.stringify(prefix)} is not a clean key prefix: ${problem ?? `longer than ${MAX_PREFIX_BYTES} bytes`}`);
  }
  return withSlash;
}

/** What is wrong with a query's values, or undefined (the names were checked by presignOperation). */
function queryProblem(query: Record<string, string>, prefix: string): string | undefined {
  for (const [name, value] of Object.entries(query)) {
    if (!(Object.hasOwn(QUERY_VALUES, name) && QUERY_VALUES[name]!(value))) return `query ${name}=${JSON.stringify(value)} is not one s3Store sends`;
  }
  if (query.prefix !== undefined) {
    const problem = keyProblem(query.prefix, prefix, true);
    if (problem) return `LIST prefix ${JSON.stringify(query.prefix)}: ${problem}`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Tokens

function toBase64url(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** The bytes of canonical base64url text (no padding, no stray bits), else undefined. */
function fromBase64url(text: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) return undefined;
  const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4));
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return toBase64url(bytes) === text ? bytes : undefined;
}

async function hmacKey(key: PresignServiceOptions['signingKey']): Promise<CryptoKey> {
  if (typeof key === 'object' && !(key instanceof Uint8Array)) return key;
  const bytes = typeof key === 'string' ? new TextEncoder().encode(key) : key;
  return crypto.subtle.importKey('raw', bytes as Uint8Array<ArrayBuffer>, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
}

/** The claims of a token's payload, when they are well formed. */
function parseClaims(payload: Uint8Array): TokenClaims | undefined {
  let claims: { v?: unknown; p?: unknown; o?: unknown; e?: unknown };
  try {
    claims = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch {
    return undefined;
  }
  if (typeof claims !== 'object' || claims === null || Object.keys(claims).sort().join() !== 'e,o,p,v' || claims.v !== 1) return undefined;
  const { p, o, e } = claims;
  if (typeof p !== 'string' || !Array.isArray(o) || !Number.isSafeInteger(e)) return undefined;
  if (o.length === 0 || new Set(o).size !== o.length || !o.every((c) => CAPABILITIES.includes(c))) return undefined;
  try {
    if (checkPrefix(p) !== p) return undefined;
  } catch {
    return undefined;
  }
  return { prefix: p, operations: o as Capability[], expiresAt: (e as number) * 1000 };
}

// ---------------------------------------------------------------------------
// The service

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers } });

/** The request body, read to at most `limit` bytes. */
async function boundedText(request: Request, limit: number): Promise<string> {
  const declared = Number(request.headers.get('content-length'));
  if (declared > limit) throw new Refusal(400, 'BAD_REQUEST', `the body is over ${limit} bytes`);
  if (!request.body) return '';
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > limit) {
      await reader.cancel().catch(() => undefined);
      throw new Refusal(400, 'BAD_REQUEST', `the body is over ${limit} bytes`);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new Refusal(400, 'BAD_REQUEST', 'the body is not UTF-8');
  }
}

/** The presign request a body holds: exactly { method, key, query? } with string values. */
function parsePresignRequest(text: string): PresignRequest {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Refusal(400, 'BAD_REQUEST', 'the body is not JSON');
  }
  const { method, key, query, headers } = (body ?? {}) as Record<string, unknown>;
  const strings = (value: unknown) => value === undefined || (typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every((v) => typeof v === 'string'));
  const shaped =
    typeof body === 'object' && body !== null && !Array.isArray(body) &&
    Object.keys(body).every((k) => k === 'method' || k === 'key' || k === 'query' || k === 'headers') &&
    typeof method === 'string' && ['GET', 'HEAD', 'PUT', 'POST', 'DELETE'].includes(method) && typeof key === 'string' && strings(query) && strings(headers);
  if (!shaped) throw new Refusal(400, 'BAD_REQUEST', 'the body is not a presign request { method, key, query, headers }');
  const request: PresignRequest = { method: method as PresignRequest['method'], key: key as string, query: (query ?? {}) as Record<string, string> };
  if (headers !== undefined && Object.keys(headers as object).length > 0) request.headers = headers as Record<string, string>;
  return request;
}

/** When a SigV4 presigned URL expires, in ms: X-Amz-Date plus X-Amz-Expires. */
function urlExpiry(url: string): number {
  const params = new URL(url).searchParams;
  const d = params.get('X-Amz-Date') ?? '';
  const signed = Date.UTC(+d.slice(0, 4), +d.slice(4, 6) - 1, +d.slice(6, 8), +d.slice(9, 11), +d.slice(11, 13), +d.slice(13, 15));
  return signed + Number(params.get('X-Amz-Expires')) * 1000;
}

function checkSeconds(name: string, value: number, max: number): number {
  if (!Number.isInteger(value) || value < 1 || value > max) throw new BackupError('INVALID_BACKUP_CONFIG', `${name} must be a whole number of seconds, 1..${max}, not ${value}`);
  return value;
}

/**
 * The presign service: the Worker keeps the bucket credentials and the
 * signing key; a container holds a token and asks for URLs.
 *
 * ```ts
 * const service = presignService({ endpoint: env.R2_ENDPOINT, bucket: 'backups', accessKeyId: env.R2_KEY_ID,
 *   secretAccessKey: env.R2_SECRET, signingKey: env.PRESIGN_KEY });
 * const token = await service.issueToken({ prefix: `sandboxes/${id}/`, operations: ['write', 'read'], ttl: 3600 });
 * // in fetch: if (url.pathname === '/presign') return service.handle(request);
 * ```
 */
export function presignService(options: PresignServiceOptions): PresignService {
  const { endpoint, bucket, accessKeyId, secretAccessKey, signingKey } = options;
  if (!endpoint || !bucket || !accessKeyId || !secretAccessKey) {
    throw new BackupError('INVALID_BACKUP_CONFIG', 'presignService needs endpoint, bucket, accessKeyId and secretAccessKey');
  }
  const keyBytes = typeof signingKey === 'string' ? utf8Length(signingKey) : signingKey instanceof Uint8Array ? signingKey.length : undefined;
  if (signingKey === undefined || signingKey === null || (keyBytes !== undefined && keyBytes < 32)) {
    throw new BackupError('INVALID_BACKUP_CONFIG', `presignService needs a signingKey of at least 32 bytes${keyBytes === undefined ? '' : `, not ${keyBytes}`}`);
  }
  const urlTtl = checkSeconds('urlTtl', options.urlTtl ?? DEFAULT_URL_TTL, MAX_URL_TTL);
  const maxTokenTtl = checkSeconds('maxTokenTtl', options.maxTokenTtl ?? DEFAULT_MAX_TOKEN_TTL, 10 * 365 * 24 * 3600);
  const now = options.now ?? Date.now;
  const key = hmacKey(signingKey);
  key.catch(() => undefined);
  const presigners = new Map<number, Presigner>();
  /** A presigner for URLs that live `seconds` (the usual one kept, with its signing-key cache). */
  const presignerFor = (seconds: number): Presigner => {
    const made = presigners.get(seconds) ?? awsPresigner({ ...options, expiresIn: seconds });
    if (seconds === urlTtl) presigners.set(seconds, made);
    return made;
  };
  const mac = async (payload: string) => new Uint8Array(await crypto.subtle.sign('HMAC', await key, new TextEncoder().encode(MAC_CONTEXT + payload)));

  /** A token's claims when it is genuine (its expiry not yet checked), else undefined. */
  async function genuineClaims(token: string): Promise<TokenClaims | undefined> {
    if (typeof token !== 'string' || token.length > MAX_TOKEN_CHARS) return undefined;
    const [payload, tag, extra] = token.split('.');
    if (payload === undefined || tag === undefined || extra !== undefined) return undefined;
    const payloadBytes = fromBase64url(payload);
    const tagBytes = fromBase64url(tag);
    if (!payloadBytes || !tagBytes || tagBytes.length !== 32) return undefined;
    // crypto.subtle.verify compares the MACs in constant time; the claims of a forged token are never read.
    const genuine = await crypto.subtle.verify('HMAC', await key, tagBytes as Uint8Array<ArrayBuffer>, new TextEncoder().encode(MAC_CONTEXT + payload));
    return genuine ? parseClaims(payloadBytes) : undefined;
  }

  async function verifyToken(token: string): Promise<TokenClaims | undefined> {
    const claims = await genuineClaims(token);
    return claims && now() < claims.expiresAt ? claims : undefined;
  }

  /** The claims of the request's token, or the 401 saying why there are none. */
  async function claimsOf(request: Request): Promise<TokenClaims> {
    const match = /^Bearer ([A-Za-z0-9_.-]+)$/i.exec(request.headers.get('authorization') ?? '');
    if (!match) throw new Refusal(401, 'TOKEN_MISSING', 'no token: send Authorization: Bearer <token>');
    const claims = await genuineClaims(match[1]!);
    if (!claims) throw new Refusal(401, 'TOKEN_INVALID', 'the token is not genuine');
    if (now() >= claims.expiresAt) throw new Refusal(401, 'TOKEN_EXPIRED', `the token expired at ${new Date(claims.expiresAt).toISOString()}`);
    return claims;
  }

  async function answer(request: Request): Promise<PresignAnswer> {
    if (request.method !== 'POST') throw new Refusal(405, 'METHOD_NOT_ALLOWED', `${request.method}: presign requests are POSTed`);
    const claims = await claimsOf(request);
    const req = parsePresignRequest(await boundedText(request, MAX_BODY_BYTES));
    const operation = presignOperation(req);
    const what = `${req.method} ${JSON.stringify(req.key)}${Object.keys(req.query!).length ? `?${new URLSearchParams(req.query).toString()}` : ''}`;
    if (!operation) throw new Refusal(403, 'REQUEST_NOT_ALLOWED', `${what} is not a request s3Store makes`);
    if (!ALLOWED_BY[operation].some((c) => claims.operations.includes(c))) {
      throw new Refusal(403, 'OPERATION_NOT_ALLOWED', `${operation} needs ${ALLOWED_BY[operation].join(' or ')}; the token allows ${claims.operations.join(', ')}`);
    }
    const problem = queryProblem(req.query!, claims.prefix) ?? (operation === 'list' ? undefined : keyProblem(req.key, claims.prefix, false)) ??
      (operation === 'copy' ? copyProblem(req.headers!, options.bucket, claims) : undefined);
    if (problem) throw new Refusal(403, operation === 'list' || problem.startsWith('query') ? 'REQUEST_NOT_ALLOWED' : 'KEY_NOT_ALLOWED', `${what}: ${problem}`);
    const left = Math.floor((claims.expiresAt - now()) / 1000);
    if (left < 1) throw new Refusal(401, 'TOKEN_EXPIRED', 'the token has expired');
    const expiresIn = Math.min(urlTtl, left);
    const url = await presignerFor(expiresIn)(req);
    return { url, expiresAt: new Date(urlExpiry(url)).toISOString(), expiresIn };
  }

  return {
    async issueToken(grant) {
      const prefix = checkPrefix(grant?.prefix);
      const operations = [...new Set(grant.operations ?? [])];
      if (operations.length === 0 || !operations.every((c) => CAPABILITIES.includes(c))) {
        throw new BackupError('INVALID_BACKUP_CONFIG', `token operations must be some of ${CAPABILITIES.join(', ')}, not ${JSON.stringify(grant.operations)}`);
      }
      const ttl = checkSeconds('ttl', grant.ttl, maxTokenTtl);
      const payload = toBase64url(new TextEncoder().encode(JSON.stringify({ v: 1, p: prefix, o: operations, e: Math.floor(now() / 1000) + ttl })));
      return `${payload}.${toBase64url(await mac(payload))}`;
    },

    verifyToken,

    async handle(request) {
      try {
        return json(200, await answer(request));
      } catch (error) {
        if (error instanceof Refusal) {
          const headers: Record<string, string> = error.status === 401 ? { 'www-authenticate': 'Bearer' } : error.status === 405 ? { allow: 'POST' } : {};
          return json(error.status, { error: error.message, code: error.code }, headers);
        }
        return json(500, { error: 'the presign service failed', code: 'INTERNAL' });
      }
    },
  };
}
