/**
 * `sqfs serve`: a small web server over a store's backups (or one image
 * file), for a person to look through in a browser: the backups and their
 * chains, a backup's tree as `ls -l` shows it, text files inline, any file
 * or directory (as .tar) downloaded, streamed from ranged reads of the
 * store through openBackup; and, behind a confirmation each, delete,
 * prune and restore (with its progress live).
 *
 * What guards it is in auth.ts (a token, Host and Origin checks), paths.ts
 * (names decoded so that no URL leaves the image) and http.ts (the
 * security headers on every answer).
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, isAbsolute, resolve } from 'node:path';
import type { BackupImage } from '../backup/chain-image.js';
import { chainOf } from '../backup/chain.js';
import { isBackupId, type DirectoryBackup } from '../backup/handle.js';
import { chainsOf, deleteBackup, listBackups, openBackup, pruneExpiredBackups, resolveBackup } from '../backup/manage.js';
import type { CodecRegistry } from '../codecs/codec.js';
import { BackupError, SquashfsError } from '../errors.js';
import { nodeCodecs } from '../node/codecs.js';
import { openImage } from '../node/file-source.js';
import { restoreBackup } from '../node/restore.js';
import { concatBytes, encodeUtf8 } from '../squashfs/bytes.js';
import { StoreError, type ObjectStore } from '../uploader/store.js';
import { SCRIPT, STYLE } from './assets.js';
import { hasToken, hostAllowed, newToken, originAllowed, sameToken, tokenCookie } from './auth.js';
import type { Html } from './html.js';
import { attachment, DOWNLOAD_POLICY, readForm, redirect, securityHeaders, send, sendHtml, statusOf, streamBody } from './http.js';
import { RestoreJobs } from './jobs.js';
import { OpenImages } from './open-images.js';
import {
  backupLink, backupsPage, deletePage, directoryPage, errorPage, filePage, jobPage, messages, prunePage, restorePage, SORT_KEYS,
  type Listed, type Site, type SortKey,
} from './pages.js';
import { decodeNames } from './paths.js';
import { tarDirectory } from './tar.js';

export interface ServeOptions {
  /** The backups to serve. */
  store?: ObjectStore;
  /** Or one image file, read only (no delete, prune or restore). */
  image?: string;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: a free port. */
  port?: number;
  /** Default: 24 random bytes, base64url. */
  token?: string;
  codecs?: CodecRegistry;
  /** Told of each failure answered with a 5xx (the CLI prints it). */
  onError?: (error: unknown, request: string) => void;
}

export interface BackupServer {
  /** The URL to open, with the token. */
  readonly url: string;
  /** http://host:port */
  readonly origin: string;
  readonly token: string;
  readonly port: number;
  /** Stops listening, cancels running restores and closes the images. */
  close(): Promise<void>;
}

/** The key of the lone image in the URLs of `serve <image>`. */
const IMAGE_KEY = 'image';
/** Entries on one page of a directory. */
export const PAGE_SIZE = 200;
/** Text shown of a file, at most. */
export const TEXT_LIMIT = 1024 * 1024;
/** A NUL among a file's first bytes: not text. */
const SNIFF = 8 * 1024;

const SLASH = new Uint8Array([0x2f]);
const imagePath = (names: readonly Uint8Array[]) => (names.length === 0 ? SLASH : concatBytes(names.flatMap((name) => [SLASH, name])));

class HttpProblem extends Error {
  constructor(readonly status: number, readonly title: string, message: string) {
    super(message);
  }
}

/** Starts the server; resolves once it listens. */
export async function serveBackups(options: ServeOptions): Promise<BackupServer> {
  if (!options.store === !options.image) throw new BackupError('INVALID_BACKUP_CONFIG', 'serve takes a store or an image file, one of the two');
  const store = options.store;
  const host = options.host ?? '127.0.0.1';
  const token = options.token ?? newToken();
  const codecs = options.codecs ?? nodeCodecs();
  const site: Site = { where: store ? store.location : resolve(options.image!), manage: store !== undefined };
  const images = new OpenImages((key) =>
    store ? openBackup(key, { store, codecs }) : openImage(options.image!, { codecs }),
  );
  const jobs = new RestoreJobs();
  /** Messages shown once on the backups page after a delete or a prune (Post/Redirect/Get). */
  const notices = new Map<string, Html>();
  let port = 0;

  const notice = (message: Html) => {
    const id = newToken().slice(0, 12);
    notices.set(id, message);
    if (notices.size > 32) notices.delete(notices.keys().next().value!);
    return id;
  };

  /** Handles read from the store (or its listing), so that browsing does not read one on every page. */
  const handles = new Map<string, Promise<DirectoryBackup>>();
  const backupOf = (key: string): Promise<DirectoryBackup> => {
    if (!store || !isBackupId(key)) throw new HttpProblem(404, 'Not found', 'no such backup');
    let handle = handles.get(key);
    if (!handle) {
      handle = resolveBackup(key, { store });
      handles.set(key, handle);
      handle.catch(() => handles.delete(key));
    }
    return handle;
  };
  /** Drops what is kept of a backup: deleted, or its store failed. */
  const forget = (key: string) => {
    handles.delete(key);
    images.forget(key);
  };

  /** The title of a backup's pages: its name (or the image file's). */
  const titleOf = async (key: string) => (store ? (await backupOf(key)).name || key.slice(0, 8) : basename(options.image!));

  async function listPage(res: ServerResponse, query: URLSearchParams): Promise<void> {
    if (!store) return redirect(res, backupLink(IMAGE_KEY));
    const q = query.get('q') ?? '';
    const sortParam = query.get('sort') as SortKey | null;
    const sort: SortKey = sortParam && SORT_KEYS.includes(sortParam) ? sortParam : 'created';
    const all = await listBackups({ store });
    handles.clear();
    for (const b of all) handles.set(b.id, Promise.resolve(b));
    const wanted = q === '' ? all : all.filter((b) => b.name.toLowerCase().includes(q.toLowerCase()));
    const groups = chainsOf(wanted);
    const first = (g: DirectoryBackup[]) => g[0]!;
    const by: Record<SortKey, (a: DirectoryBackup[], b: DirectoryBackup[]) => number> = {
      created: (a, b) => first(b).createdAt.localeCompare(first(a).createdAt),
      name: (a, b) => first(a).name.localeCompare(first(b).name) || first(a).createdAt.localeCompare(first(b).createdAt),
      size: (a, b) => first(b).size - first(a).size,
      expires: (a, b) => Math.max(...a.map((x) => Date.parse(x.expiresAt))) - Math.max(...b.map((x) => Date.parse(x.expiresAt))),
    };
    groups.sort(by[sort]);
    const shown = query.get('notice');
    const message = shown ? notices.get(shown) : undefined;
    sendHtml(res, 200, backupsPage(site, { groups, now: Date.now(), q, sort, message }));
  }

  async function browse(res: ServerResponse, key: string, names: Uint8Array[], query: URLSearchParams): Promise<void> {
    const title = await titleOf(key);
    await images.use(key, async (image) => {
      const stat = await image.stat(imagePath(names));
      if (stat.type !== 'directory') return redirect(res, backupLink(key, names, 'view'));
      const all = await image.readdir(imagePath(names));
      const pages = Math.max(1, Math.ceil(all.length / PAGE_SIZE));
      const page = Math.min(pages, Math.max(1, Number.parseInt(query.get('page') ?? '1', 10) || 1));
      const first = (page - 1) * PAGE_SIZE;
      const entries: Listed[] = [];
      for (const entry of all.slice(first, first + PAGE_SIZE)) {
        const path = imagePath([...names, entry.nameBytes]);
        const child = await image.stat(path);
        entries.push({ name: entry.nameBytes, stat: child, target: child.type === 'symlink' ? await image.readlink(path) : undefined });
      }
      sendHtml(res, 200, directoryPage(site, { key, title, names, entries, first, total: all.length, pageSize: PAGE_SIZE }));
    });
  }

  async function view(res: ServerResponse, key: string, names: Uint8Array[]): Promise<void> {
    const title = await titleOf(key);
    await images.use(key, async (image) => {
      const path = imagePath(names);
      const stat = await image.stat(path);
      if (stat.type === 'directory') return redirect(res, backupLink(key, names));
      if (stat.type === 'symlink') return sendHtml(res, 200, filePage(site, { key, title, names, stat, target: await image.readlink(path) }));
      if (stat.type !== 'file') return sendHtml(res, 200, filePage(site, { key, title, names, stat }));
      const head = await firstBytes(image, path, Math.min(stat.size, TEXT_LIMIT));
      const binary = head.subarray(0, SNIFF).includes(0);
      const text = binary ? undefined : new TextDecoder('utf-8', { fatal: false }).decode(head);
      sendHtml(res, 200, filePage(site, { key, title, names, stat, binary, text, shown: stat.size > TEXT_LIMIT ? head.length : undefined }));
    });
  }

  async function download(res: ServerResponse, key: string, names: Uint8Array[]): Promise<void> {
    await images.use(key, async (image) => {
      const path = imagePath(names);
      const stat = await image.stat(path);
      if (stat.type === 'directory') throw new HttpProblem(400, 'A directory', 'this is a directory: download it as .tar');
      if (stat.type !== 'file') throw new HttpProblem(400, `A ${stat.type}`, `this is a ${stat.type}, not a regular file: there is nothing to download${stat.type === 'symlink' ? ' (links are never followed)' : ''}`);
      const name = names.length > 0 ? new TextDecoder().decode(names[names.length - 1]) : 'file';
      await streamBody(res, sized(image.readChunks(path), stat.size), () => {
        securityHeaders(res, DOWNLOAD_POLICY);
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(stat.size), 'Content-Disposition': attachment(name) });
      });
    });
  }

  async function tar(res: ServerResponse, key: string, names: Uint8Array[]): Promise<void> {
    const top = names.length > 0 ? names[names.length - 1]! : encodeUtf8(tarName(await titleOf(key), key));
    await images.use(key, async (image) => {
      const stat = await image.stat(imagePath(names));
      if (stat.type !== 'directory') throw new HttpProblem(400, 'Not a directory', `this is a ${stat.type}: only a directory downloads as .tar`);
      await streamBody(res, tarDirectory(image, names, top), () => {
        securityHeaders(res, DOWNLOAD_POLICY);
        res.writeHead(200, { 'Content-Type': 'application/x-tar', 'Content-Disposition': attachment(`${new TextDecoder().decode(top)}.tar`) });
      });
    });
  }

  async function deleteRoute(req: IncomingMessage, res: ServerResponse, key: string): Promise<void> {
    const backup = await backupOf(key);
    const dependants = (await listBackups({ store: store! })).filter((b) => b.id !== backup.id && chainOf(b).includes(backup.id));
    if (req.method === 'GET') return sendHtml(res, 200, deletePage(site, backup, dependants));
    const form = await postForm(req);
    if (form.get('confirm') !== 'yes') throw new HttpProblem(400, 'Not confirmed', 'the delete was not confirmed');
    const deleted = await deleteBackup(backup.id, { store: store!, dependants: form.get('dependants') === 'yes' });
    for (const id of deleted) forget(id);
    redirect(res, `/?notice=${notice(messages.deleted(deleted))}`);
  }

  async function pruneRoute(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!store) throw new HttpProblem(404, 'Not found', 'a lone image has nothing to prune');
    if (req.method === 'GET') {
      const now = Date.now();
      return sendHtml(res, 200, prunePage(site, (await listBackups({ store })).filter((b) => now > Date.parse(b.expiresAt))));
    }
    const form = await postForm(req);
    if (form.get('confirm') !== 'yes') throw new HttpProblem(400, 'Not confirmed', 'the prune was not confirmed');
    const kept: { backup: DirectoryBackup; reason: string }[] = [];
    const gone = await pruneExpiredBackups({ store, onKept: (backup, reason) => kept.push({ backup, reason }) });
    for (const b of gone) forget(b.id);
    redirect(res, `/?notice=${notice(messages.pruned(gone, kept))}`);
  }

  async function restoreRoute(req: IncomingMessage, res: ServerResponse, key: string): Promise<void> {
    const backup = await backupOf(key);
    if (req.method === 'GET') return sendHtml(res, 200, restorePage(site, backup, backup.dir));
    const form = await postForm(req);
    const dir = form.get('dir') ?? '';
    if (!isAbsolute(dir)) return sendHtml(res, 400, restorePage(site, backup, dir, `"${dir}" is not an absolute path`));
    if (form.get('confirm') !== 'yes') return sendHtml(res, 400, restorePage(site, backup, dir, 'confirm that the directory\'s contents are to be replaced'));
    const target = resolve(dir);
    const id = jobs.start(backup.id, target, backup.entries, (progress) => restoreBackup(backup, { store: store!, dir: target, ...progress }));
    redirect(res, `/jobs/${id}`);
  }

  async function jobRoute(req: IncomingMessage, res: ServerResponse, id: string, action: string | undefined): Promise<void> {
    const job = jobs.get(id);
    if (!job) throw new HttpProblem(404, 'Not found', 'no such restore (finished ones are kept a while, not for ever)');
    if (action === 'status' && req.method === 'GET') return send(res, 200, 'application/json', JSON.stringify(job.status()));
    if (action === 'cancel' && req.method === 'POST') {
      await postForm(req);
      job.controller.abort();
      return redirect(res, `/jobs/${id}`);
    }
    if (action === undefined && req.method === 'GET') return sendHtml(res, 200, jobPage(site, id, job.status()));
    throw new HttpProblem(404, 'Not found', 'no such page');
  }

  /** A mutation's form (its Origin was checked by `route`). */
  async function postForm(req: IncomingMessage): Promise<URLSearchParams> {
    const form = await readForm(req);
    if (!form) throw new HttpProblem(413, 'Too large', 'the form is too large');
    return form;
  }

  async function route(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<void> {
    const post = req.method === 'POST';
    if (!post && req.method !== 'GET') throw new HttpProblem(405, 'Method not allowed', `${req.method} is not answered here`);
    if (post && !originAllowed(req)) throw new HttpProblem(403, 'Refused', "a change must come from this server's own pages (the Origin header is missing or another site's)");
    const job = /^\/jobs\/([0-9a-f-]{36})(?:\/(status|cancel))?$/.exec(path);
    if (job) return jobRoute(req, res, job[1]!, job[2]);
    if (path === '/prune') return pruneRoute(req, res);
    const backup = /^\/b\/([^/]+)(?:\/(ls|view|raw|tar|delete|restore)(\/.*)?)?\/?$/.exec(path);
    const [, key = '', kind, rest = ''] = backup ?? [];
    if (backup && (kind === 'delete' || kind === 'restore')) {
      if (!store || !isBackupId(key) || rest !== '') throw new HttpProblem(404, 'Not found', 'no such page');
      return kind === 'delete' ? deleteRoute(req, res, key) : restoreRoute(req, res, key);
    }
    // The rest only reads.
    if (post) throw new HttpProblem(405, 'Method not allowed', 'this page takes no POST');
    if (path === '/') return listPage(res, query);
    if (path === '/static/app.css') return send(res, 200, 'text/css; charset=utf-8', STYLE);
    if (path === '/static/app.js') return send(res, 200, 'text/javascript; charset=utf-8', SCRIPT);
    if (!backup) throw new HttpProblem(404, 'Not found', 'no such page');
    if (store ? !isBackupId(key) : key !== IMAGE_KEY) throw new HttpProblem(404, 'Not found', 'no such backup');
    if (kind === undefined) return redirect(res, backupLink(key));
    const names = decodeNames(rest);
    if (!names) throw new HttpProblem(400, 'Bad path', 'the path names "." or "..", or holds an encoded "/" or NUL: paths stay inside the image');
    if (kind === 'ls') return browse(res, key, names, query);
    if (kind === 'view') return view(res, key, names);
    if (kind === 'raw') return download(res, key, names);
    return tar(res, key, names);
  }

  const server = http.createServer(async (req, res) => {
    const request = `${req.method} ${(req.url ?? '').split('?')[0]}`;
    try {
      securityHeaders(res);
      if (!hostAllowed(req, host, port)) throw new HttpProblem(421, 'Misdirected', 'this server answers to its own address only');
      const url = req.url ?? '/';
      const at = url.indexOf('?');
      // The path as sent: never normalised, so "/../" and "%2e%2e" reach decodeNames and are refused there.
      const path = at < 0 ? url : url.slice(0, at);
      const query = new URLSearchParams(at < 0 ? '' : url.slice(at + 1));
      const given = query.get('token');
      if (given !== null) {
        if (!sameToken(given, token)) throw new HttpProblem(401, 'Unauthorized', 'open the URL sqfs serve printed, with its token');
        query.delete('token');
        const rest = query.toString();
        // Back to the same page without the token; never to another host ("//host", "/\\host").
        const back = /^\/(?![/\\])/.test(path) ? path : '/';
        return redirect(res, `${back}${rest ? `?${rest}` : ''}`, { 'Set-Cookie': tokenCookie(token, port) });
      }
      if (!hasToken(req, token, port)) throw new HttpProblem(401, 'Unauthorized', 'open the URL sqfs serve printed, with its token');
      if (!path.startsWith('/')) throw new HttpProblem(400, 'Bad request', 'not a path');
      await route(req, res, path, query);
    } catch (error) {
      if (res.headersSent) {
        res.destroy(error as Error);
        options.onError?.(error, request);
        return;
      }
      const problem = error instanceof HttpProblem ? { status: error.status, title: error.title, code: undefined } : statusOf(error);
      if (error instanceof StoreError || error instanceof BackupError) forget(requestKey(req.url));
      if (problem.status >= 500) options.onError?.(error, request);
      if (problem.status === 401) res.setHeader('WWW-Authenticate', 'Bearer realm="sqfs serve"');
      const message = (error as Error)?.message ?? String(error);
      // A stranger learns nothing of the store, not even where it is.
      const shown = problem.status === 401 || problem.status === 421 ? { where: '', manage: false } : site;
      sendHtml(res, problem.status, errorPage(shown, problem.status, problem.title, message, problem.code));
    }
  });
  server.on('clientError', (_error, socket) => socket.destroy());
  await new Promise<void>((ready, fail) => {
    server.once('error', fail);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', fail);
      ready();
    });
  });
  port = (server.address() as AddressInfo).port;
  const origin = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return {
    url: `${origin}/?token=${token}`,
    origin,
    token,
    port,
    async close() {
      const closed = new Promise<void>((done) => server.close(() => done()));
      server.closeAllConnections();
      await jobs.stop();
      await closed;
      await images.closeAll();
    },
  };
}

/** The backup key a request's URL names, if any ("" otherwise). */
function requestKey(url: string | undefined): string {
  return /^\/b\/([^/?]+)/.exec(url ?? '')?.[1] ?? '';
}

/** A tar's top directory for a backup's root: its name, made safe as one path name. */
function tarName(title: string, key: string): string {
  const name = title.replace(/\.(sqfs|squashfs)$/i, '').replace(/[/\\\0]/g, '_').replace(/^\.+$/, '_').trim();
  return name || key;
}

/** A file's first `length` bytes (fewer if it is shorter), reading no more of it than needed. */
async function firstBytes(image: BackupImage, path: Uint8Array, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let filled = 0;
  for await (const chunk of image.readChunks(path)) {
    const bytes = chunk.bytes ?? new Uint8Array(chunk.hole);
    const take = Math.min(bytes.length, length - filled);
    out.set(bytes.subarray(0, take), filled);
    filled += take;
    if (filled >= length) break;
  }
  return out.subarray(0, filled);
}

/** A file's chunks as bytes, checked to add up to the size the answer promised (else CORRUPT_IMAGE, and the connection is cut). */
async function* sized(chunks: AsyncIterable<{ bytes?: Uint8Array; hole?: number }>, size: number): AsyncIterable<Uint8Array> {
  let written = 0;
  for await (const chunk of chunks) {
    const bytes = chunk.bytes ?? new Uint8Array(chunk.hole!);
    written += bytes.length;
    if (written > size) break;
    yield bytes;
  }
  if (written !== size) throw new SquashfsError('CORRUPT_IMAGE', `the file gave ${written} bytes, its inode says ${size}`);
}
