/**
 * The Worker that holds the keys, as a user writes one: the bucket
 * credentials and the token signing key are its bindings, and nothing else
 * sees them. test/presign-workerd.test.ts bundles it with the BUILT package
 * ('squashfs-ts' resolved to dist/index.js; tsc reads its types from src)
 * and runs it in workerd through Miniflare, without nodejs_compat.
 *
 * Routes:
 *   POST /presign   presignService's handle: a token and { method, key, query } in, { url, expiresAt } out
 *   POST /token     for the orchestrator (Authorization: Bearer ADMIN_TOKEN): { prefix, operations, ttl } in, { token } out
 *   GET  /probe     what runtime this is (JSON)
 */
import { presignService, type PresignService } from 'squashfs-ts';

interface Env {
  S3_ENDPOINT: string;
  S3_BUCKET: string;
  S3_ACCESS_KEY_ID: string;
  S3_SECRET_ACCESS_KEY: string;
  PRESIGN_SIGNING_KEY: string;
  ADMIN_TOKEN: string;
}

/** One service per isolate (its HMAC key is imported once). */
let service: PresignService | undefined;

function serviceFor(env: Env): PresignService {
  service ??= presignService({
    endpoint: env.S3_ENDPOINT,
    bucket: env.S3_BUCKET,
    accessKeyId: env.S3_ACCESS_KEY_ID,
    secretAccessKey: env.S3_SECRET_ACCESS_KEY,
    signingKey: env.PRESIGN_SIGNING_KEY,
  });
  return service;
}

/** Compares two strings in time that depends on their lengths only. */
function sameSecret(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === '/presign') return serviceFor(env).handle(request);
    if (url.pathname === '/token' && request.method === 'POST') {
      if (!sameSecret(request.headers.get('authorization') ?? '', `Bearer ${env.ADMIN_TOKEN}`)) return json(401, { error: 'not the orchestrator', code: 'UNAUTHORIZED' });
      try {
        const grant = (await request.json()) as { prefix: string; operations: ('write' | 'read' | 'delete')[]; ttl: number };
        return json(200, { token: await serviceFor(env).issueToken(grant) });
      } catch (error) {
        return json(400, { error: (error as Error).message, code: (error as { code?: string }).code ?? 'BAD_REQUEST' });
      }
    }
    if (url.pathname === '/probe') {
      return json(200, { userAgent: navigator.userAgent, process: typeof (globalThis as { process?: unknown }).process, subtle: typeof crypto.subtle.sign });
    }
    return json(404, { error: 'no such route', code: 'NOT_FOUND' });
  },
};
