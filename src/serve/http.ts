/**
 * Answers as `sqfs serve` gives them: every one with its security headers,
 * pages as HTML, backup contents as attachments streamed with backpressure,
 * and failures mapped to a status by their code.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BackupError, SquashfsError } from '../errors.js';
import { StoreError } from '../uploader/store.js';

/** Pages: scripts, styles and fetches from the server itself only; no framing, no inline code. */
export const PAGE_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
/** A backup's bytes: nothing runs, even if a browser were to render them. */
export const DOWNLOAD_POLICY = "default-src 'none'; sandbox; frame-ancestors 'none'";

export function securityHeaders(res: ServerResponse, policy = PAGE_POLICY): void {
  res.setHeader('Content-Security-Policy', policy);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  // Not no-referrer: under it a browser sends "Origin: null" with a form POST, and the Origin check could not tell its own pages.
  res.setHeader('Referrer-Policy', 'same-origin');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  res.setHeader('Cache-Control', 'no-store');
}

export function send(res: ServerResponse, status: number, type: string, body: string | Uint8Array, headers: Record<string, string> = {}): void {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': String(bytes.length), ...headers });
  res.end(bytes);
}

export const sendHtml = (res: ServerResponse, status: number, page: string) => send(res, status, 'text/html; charset=utf-8', page);

/** 303 See Other: after a POST, and to put a URL right. */
export function redirect(res: ServerResponse, location: string, headers: Record<string, string> = {}): void {
  res.writeHead(303, { Location: location, 'Content-Length': '0', ...headers });
  res.end();
}

/** `attachment; filename="..."; filename*=UTF-8''...`: an ASCII stand-in and the real name. */
export function attachment(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\%]/g, '_') || 'download';
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}`;
}

/** A form POST's fields (urlencoded, at most `limit` bytes). */
export async function readForm(req: IncomingMessage, limit = 16 * 1024): Promise<URLSearchParams | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) return undefined;
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** Writes pieces this large at once (a tar is many small ones). */
const WRITE_SIZE = 64 * 1024;

/**
 * Streams `chunks` as the body of an answer whose head `start` writes,
 * pulling the next chunk only when the socket has taken the last (so at
 * most one file block and 64 KiB are held). The head is written with the
 * first 64 KiB (or the whole body, when shorter), so a failure before
 * then still gets an error page; a later one cuts the connection (the
 * client sees a short body). A client that leaves stops the reading.
 */
export async function streamBody(res: ServerResponse, chunks: AsyncIterable<Uint8Array>, start: () => void): Promise<void> {
  const iterator = chunks[Symbol.asyncIterator]();
  let closed = false;
  const onClose = () => (closed = true);
  res.once('close', onClose);
  let started = false;
  let pending: Uint8Array[] = [];
  let pendingSize = 0;
  const flush = async () => {
    if (!started) {
      start();
      started = true;
    }
    if (pendingSize === 0) return;
    const piece = pending.length === 1 ? pending[0]! : Buffer.concat(pending);
    pending = [];
    pendingSize = 0;
    if (!res.write(piece) && !closed) await drained(res);
  };
  try {
    for (let next = await iterator.next(); !next.done && !closed; next = await iterator.next()) {
      pending.push(next.value);
      pendingSize += next.value.length;
      if (pendingSize >= WRITE_SIZE) await flush();
    }
    if (!closed) {
      await flush();
      res.end();
    }
  } finally {
    res.off('close', onClose);
    await iterator.return?.();
  }
}

function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** The status and page title a failure is answered with. */
export function statusOf(error: unknown): { status: number; title: string; code?: string } {
  if (error instanceof SquashfsError) {
    if (error.code === 'NOT_FOUND') return { status: 404, title: 'Not found', code: error.code };
    if (error.code === 'INVALID_OPTION') return { status: 400, title: 'Bad request', code: error.code };
    return { status: 500, title: 'This image cannot be read', code: error.code };
  }
  if (error instanceof BackupError) {
    const status = { BACKUP_NOT_FOUND: 404, BACKUP_EXPIRED: 410, BACKUP_IN_USE: 409, INVALID_BACKUP_CONFIG: 400, BACKUP_INTEGRITY_ERROR: 502 }[error.code as string] ?? 500;
    const title = { 404: 'Not found', 410: 'Expired', 409: 'In use', 400: 'Bad request', 502: 'The stored image is damaged' }[status] ?? 'Failed';
    return { status, title, code: error.code };
  }
  if (error instanceof StoreError) return { status: 502, title: 'The store failed', code: 'STORE_ERROR' };
  return { status: 500, title: 'Failed', code: (error as { code?: string })?.code };
}
