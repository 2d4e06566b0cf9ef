import { BackupError } from '../errors.js';
import { describeTarget, networkMessage, requestPolicy, retryAfterMs, type RequestPolicy, type RequestPolicyOptions, type RequestTarget } from './policy.js';
import { presignOperation } from './presign-service.js';
import type { Presigner, PresignRequest } from './s3-store.js';
import { isRetryableStatus, StoreError } from './store.js';

/**
 * The container side of "the Worker holds the keys": a Presigner that asks
 * a presign service (presignService's handle, behind a URL) for each URL,
 * with a capability token and no bucket credentials at all.
 *
 * ```ts
 * const store = s3Store({ endpoint, bucket: 'backups', prefix: 'sandboxes/x',
 *   presigner: remotePresigner({ url: 'https://keys.example.workers.dev/presign', token: process.env.SQFS_PRESIGN_TOKEN }) });
 * ```
 */
export interface RemotePresignerOptions {
  /** The presign service's URL (POSTed to). */
  url: string;
  /** The capability token, sent as `Authorization: Bearer <token>`. */
  token: string;
  /** How each presign request is tried: pass the store's own policy (default: the default policy). */
  policy?: RequestPolicy | RequestPolicyOptions;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
  /**
   * Seconds the store may use a URL again (s3Store's `reuseUrlsFor`:
   * default 60; 0 when it signs every request). A URL the service signs
   * to live less than this (plus a margin) is refused rather than handed
   * to a store that would use it after it expired.
   */
  reuseUrlsFor?: number;
}

/** A URL must outlive the store's reuse of it by this much (clock steps, a request waiting for a connection). */
const EXPIRY_MARGIN_MS = 10_000;
/** X-Amz-Date has whole seconds: a URL may expire up to a second before its signing time plus its lifetime. */
const SIGNED_SECOND_MS = 1000;

interface Answer {
  url: string;
  expiresAt: string;
  expiresIn: number;
}

/** The service's error body { error, code }, where it sent one. */
function serviceError(text: string): { error?: string; code?: string } {
  try {
    const body = JSON.parse(text) as { error?: unknown; code?: unknown };
    return { error: typeof body.error === 'string' ? body.error : undefined, code: typeof body.code === 'string' ? body.code : undefined };
  } catch {
    return {};
  }
}

/** A well-formed answer: an http(s) URL, an ISO expiry and the seconds it was signed for. */
function parseAnswer(text: string): Answer | undefined {
  let body: Partial<Answer>;
  try {
    body = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof body?.url !== 'string' || !/^https?:\/\//.test(body.url) || !URL.canParse(body.url)) return undefined;
  if (typeof body.expiresAt !== 'string' || Number.isNaN(Date.parse(body.expiresAt))) return undefined;
  if (typeof body.expiresIn !== 'number' || !(body.expiresIn > 0)) return undefined;
  return body as Answer;
}

/**
 * A Presigner for s3Store that gets its URLs from a presign service. Every
 * presign request goes through the request policy (a 5xx, a 429 or a
 * dropped connection is tried again; a 401 or 403 fails at once, naming
 * the service's code). It keeps nothing: s3Store's own cache reuses a URL
 * for `reuseUrlsFor` seconds, and a URL that would expire within that time
 * is refused here.
 */
export function remotePresigner(options: RemotePresignerOptions): Presigner {
  const { url, token } = options;
  if (typeof url !== 'string' || !/^https?:\/\//.test(url) || !URL.canParse(url)) {
    throw new BackupError('INVALID_BACKUP_CONFIG', `remotePresigner needs the presign service's http(s) URL, not ${JSON.stringify(url)}`);
  }
  if (typeof token !== 'string' || !/^[A-Za-z0-9_.-]+$/.test(token)) {
    throw new BackupError('INVALID_BACKUP_CONFIG', 'remotePresigner needs a capability token (base64url text, as issueToken makes it)');
  }
  const reuseMs = 1000 * (options.reuseUrlsFor ?? 60);
  if (!(reuseMs >= 0)) throw new BackupError('INVALID_BACKUP_CONFIG', `reuseUrlsFor must be >= 0 seconds, not ${options.reuseUrlsFor}`);
  const policy = requestPolicy(options.policy);
  const doFetch = options.fetch ?? ((input, init) => fetch(input, init));

  return async (request: PresignRequest) => {
    const operation = presignOperation(request);
    // A LIST is named by its prefix (its key is the bucket's, '').
    const target: RequestTarget = { operation: `presign ${operation ?? request.method}`, key: operation === 'list' ? (request.query?.prefix ?? '') : request.key };
    let answer: Answer;
    try {
      answer = await policy.run(target, async (context) => {
        let response: Response;
        try {
          response = await doFetch(url, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            body: JSON.stringify({ method: request.method, key: request.key, query: request.query ?? {}, ...(request.headers && { headers: request.headers }) }),
            signal: context.signal,
          });
        } catch (cause) {
          throw new StoreError(`${describeTarget(target)}: ${networkMessage(cause)}`, { ...target, retryable: true }, cause);
        }
        context.progress();
        let text: string;
        try {
          text = await response.text();
        } catch (cause) {
          throw new StoreError(`${describeTarget(target)}: ${networkMessage(cause)}`, { ...target, status: response.status, retryable: true }, cause);
        }
        if (!response.ok) {
          const { error, code } = serviceError(text);
          throw new StoreError(`${describeTarget(target)}: the presign service answered ${response.status}${code ? ` ${code}` : ''}${error ? `: ${error}` : ''}`, {
            ...target, status: response.status, code, retryable: isRetryableStatus(response.status), retryAfterMs: retryAfterMs(response.headers.get('retry-after')),
          });
        }
        const parsed = parseAnswer(text);
        if (!parsed) throw new StoreError(`${describeTarget(target)}: the presign service's answer is not { url, expiresAt, expiresIn }`, { ...target, status: response.status, retryable: false });
        return parsed;
      });
    } catch (error) {
      // The policy has had its tries: the store's own policy, around this request, must not try them all again.
      if (error instanceof StoreError && error.retryable) throw new StoreError(error.message, { ...error.details, retryable: false }, error);
      throw error;
    }
    // s3Store may use this URL for reuseMs from (about) when it asked: it must still be valid then.
    const lifetime = answer.expiresIn * 1000 - SIGNED_SECOND_MS;
    if (reuseMs > 0 && lifetime < reuseMs + EXPIRY_MARGIN_MS) {
      throw new StoreError(
        `${describeTarget(target)}: the presign service signed the URL for ${answer.expiresIn} s (until ${answer.expiresAt}), ` +
          `but the store may use it for ${reuseMs / 1000} s: the token expires soon, or the service's urlTtl is below reuseUrlsFor + ${EXPIRY_MARGIN_MS / 1000} s`,
        { ...target, retryable: false, code: 'URL_EXPIRES_TOO_SOON' },
      );
    }
    return answer.url;
  };
}
