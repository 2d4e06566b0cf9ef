/**
 * Who may talk to `sqfs serve`: whoever holds the random token printed
 * with its URL. The token comes in the URL once (`?token=`), is then kept
 * in an HttpOnly, SameSite=Strict cookie (and the URL loses it), or comes
 * in a header (`Authorization: Bearer`, or `X-Sqfs-Token`) from scripts.
 *
 * Beside the token: the Host header must name the server when it listens
 * on a loopback address (so a DNS-rebound name never reaches it), and a
 * POST must come with an Origin that is the server's own.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export function newToken(): string {
  return randomBytes(24).toString('base64url');
}

/** The cookie's name: per port, so two servers on one host keep their own. */
export const cookieName = (port: number) => `sqfs_token_${port}`;

export function sameToken(given: string | undefined, token: string): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const at = part.indexOf('=');
    if (at > 0 && part.slice(0, at).trim() === name) return part.slice(at + 1).trim();
  }
  return undefined;
}

/** Whether the request carries the token in its cookie or a header (the URL's `?token=` is checked by the caller). */
export function hasToken(req: IncomingMessage, token: string, port: number): boolean {
  const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
  const header = req.headers['x-sqfs-token'];
  return (
    sameToken(cookie(req, cookieName(port)), token) ||
    sameToken(bearer, token) ||
    sameToken(typeof header === 'string' ? header : undefined, token)
  );
}

/** The Set-Cookie value that keeps the token for the browser. */
export function tokenCookie(token: string, port: number): string {
  return `${cookieName(port)}=${token}; Path=/; HttpOnly; SameSite=Strict`;
}

const LOOPBACK_NAMES = ['127.0.0.1', 'localhost', '[::1]'];

export function isLoopback(host: string): boolean {
  return host === '::1' || host === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * The Host headers a server on `host:port` answers: its loopback names
 * when it listens on loopback; any when it listens elsewhere (its name on
 * the network is not known; the token still guards it).
 */
export function hostAllowed(req: IncomingMessage, host: string, port: number): boolean {
  if (!isLoopback(host)) return true;
  const given = (req.headers.host ?? '').toLowerCase();
  const names = new Set([...LOOPBACK_NAMES, host.includes(':') ? `[${host}]` : host]);
  return [...names].some((name) => given === `${name}:${port}`);
}

/** Whether a mutation's Origin is the server's own: the origin of the Host it was sent to. */
export function originAllowed(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  return typeof origin === 'string' && req.headers.host !== undefined && origin === `http://${req.headers.host}`;
}
