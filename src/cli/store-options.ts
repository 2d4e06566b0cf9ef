import type { RequestPolicyOptions } from '../uploader/policy.js';
import { remotePresigner } from '../uploader/remote-presigner.js';
import { s3Store } from '../uploader/s3-store.js';
import type { ObjectStore } from '../uploader/store.js';
import type { CliContext } from './main.js';

/** The options that name a store, shared by the backup commands and by ls and cat (which also read backups). */
export const STORE_OPTIONS = {
  store: { type: 'string' },
  endpoint: { type: 'string' },
  region: { type: 'string' },
  'request-timeout': { type: 'string' },
  'presign-url': { type: 'string' },
} as const;

export interface StoreValues {
  store?: string;
  endpoint?: string;
  region?: string;
  'request-timeout'?: string;
  'presign-url'?: string;
}

/** Where --presign-url's capability token comes from: never an option, so it stays out of ps and shell history. */
export const PRESIGN_TOKEN_VARIABLE = 'SQFS_PRESIGN_TOKEN';

/**
 * The s3:// store a store URL names, or undefined for any other URL (or
 * none). s3://bucket/prefix with --endpoint (or SQFS_S3_ENDPOINT), signed
 * with the bucket credentials of the environment, or, with --presign-url
 * URL, by a presign service with the token in SQFS_PRESIGN_TOKEN and no
 * bucket credentials at all. --presign-url with any other store, or
 * without its token, is a usage error.
 */
export function s3StoreFrom(
  ctx: Pick<CliContext, 'usage'>, values: StoreValues, url: string | undefined, policy?: RequestPolicyOptions,
  env: Record<string, string | undefined> = process.env,
): ObjectStore | undefined {
  const presignUrl = values['presign-url'];
  if (!url?.startsWith('s3://')) {
    if (presignUrl !== undefined) throw ctx.usage(`--presign-url goes with an s3://bucket/prefix store${url ? `, not ${url}` : ' (--store or SQFS_STORE)'}`);
    return undefined;
  }
  const [bucket, ...prefix] = url.slice(5).split('/');
  const endpoint = values.endpoint ?? env.SQFS_S3_ENDPOINT;
  if (!bucket) throw ctx.usage(`--store ${url} names no bucket`);
  if (!endpoint) throw ctx.usage(`--store ${url} needs --endpoint URL (or SQFS_S3_ENDPOINT)`);
  let presigner;
  if (presignUrl !== undefined) {
    const token = env[PRESIGN_TOKEN_VARIABLE];
    if (!token) throw ctx.usage(`--presign-url needs the capability token in ${PRESIGN_TOKEN_VARIABLE} (the presign service's issueToken makes one)`);
    if (!/^https?:\/\/./.test(presignUrl) || !URL.canParse(presignUrl)) throw ctx.usage(`--presign-url takes the presign service's http(s) URL, not "${presignUrl}"`);
    if (!/^[A-Za-z0-9_.-]+$/.test(token)) throw ctx.usage(`${PRESIGN_TOKEN_VARIABLE} does not hold a capability token (base64url text with a ".")`);
    presigner = remotePresigner({ url: presignUrl, token, policy });
  }
  return s3Store({ endpoint, bucket, prefix: prefix.join('/'), region: values.region ?? env.AWS_REGION, policy, presigner });
}
