/**
 * The pages of `sqfs serve`, rendered on the server as plain HTML: the
 * store's backups, a directory as `ls -l` shows it, a file, the
 * confirmations before a delete, a prune or a restore, a restore's
 * progress, and errors. Every value from a backup goes through `html`'s
 * escaping.
 */
import type { DirectoryBackup } from '../backup/handle.js';
import { chainOf } from '../backup/chain.js';
import { formatBytes } from '../cli/progress.js';
import { modeString } from '../cli/listing.js';
import { decodeUtf8Lossy } from '../squashfs/bytes.js';
import type { EntryStat } from '../squashfs/reader/types.js';
import { html, raw, type Html } from './html.js';
import { encodeNames } from './paths.js';

/** What the pages need to know of the server. */
export interface Site {
  /** The store's location, or the image file's path. */
  where: string;
  /** Whether backups can be deleted, pruned and restored (a store; not a lone image). */
  manage: boolean;
}

export function layout(site: Site, title: string, body: Html, head: Html = html``): string {
  return `<!doctype html>${html`<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · sqfs serve</title><link rel="stylesheet" href="/static/app.css"><script src="/static/app.js" defer></script>${head}</head>
<body><header class="top"><a class="brand" href="/">sqfs serve</a><span class="where">${site.where}</span></header>
<main>${body}</main></body></html>`}`;
}

/** "2024-05-01 12:30", in UTC, as seconds or an ISO time. */
export function showTime(time: number | string): string {
  const d = typeof time === 'number' ? new Date(time * 1000) : new Date(time);
  return Number.isNaN(d.getTime()) ? String(time) : d.toISOString().slice(0, 16).replace('T', ' ');
}

/** "3d 4h", "5h 10m", "42m", "30s". */
function span(ms: number): string {
  const s = Math.floor(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  return m > 0 ? `${m}m` : `${s}s`;
}

export const backupLink = (key: string, names: readonly Uint8Array[] = [], kind: 'ls' | 'view' | 'raw' | 'tar' = 'ls') =>
  `/b/${key}/${kind}/${encodeNames(names)}${kind === 'ls' && names.length > 0 ? '/' : ''}`;

export type SortKey = 'created' | 'name' | 'size' | 'expires';
export const SORT_KEYS: SortKey[] = ['created', 'name', 'size', 'expires'];

export interface BackupsView {
  groups: DirectoryBackup[][];
  now: number;
  q: string;
  sort: SortKey;
  message?: Html;
}

function expiresBadge(b: DirectoryBackup, now: number): Html {
  const left = Date.parse(b.expiresAt) - now;
  if (left < 0) return html`<span class="badge expired">expired ${span(left)} ago</span>`;
  return html`<span class="badge${left < 86400_000 ? ' soon' : ''}">${span(left)} left</span>`;
}

/** The store's backups, each chain a group (a delta under the backup it is over), sortable and filtered by name. */
export function backupsPage(site: Site, view: BackupsView): string {
  const { groups, now } = view;
  const count = groups.reduce((n, g) => n + g.length, 0);
  const row = (b: DirectoryBackup, group: DirectoryBackup[]) => {
    const depth = chainOf(b).length - 1;
    const expired = now > Date.parse(b.expiresAt);
    const base = b.base;
    const position = depth === 0 ? 'full' : `delta ${depth} over ${base?.slice(0, 8)}${group.some((g) => g.id === base) ? '' : ' (missing)'}`;
    return html`<tr data-name="${b.name}" data-id="${b.id}" class="${depth > 0 ? `delta d${Math.min(depth, 8)}` : 'full'}${expired ? ' expired' : ''}">
<td class="name">${expired ? b.name || '(unnamed)' : html`<a href="${backupLink(b.id)}">${b.name || '(unnamed)'}</a>`}</td>
<td class="mono" title="${b.id}">${b.id.slice(0, 8)}</td>
<td class="mono">${b.dir}</td>
<td class="mono time">${showTime(b.createdAt)}</td>
<td title="${b.expiresAt}">${expiresBadge(b, now)}</td>
<td class="num">${formatBytes(b.size)}</td>
<td>${b.compression}</td>
<td class="num">${b.files}</td>
<td><span class="badge">${position}</span></td>
<td class="actions">${expired ? '' : html`<a href="${backupLink(b.id)}">browse</a><a href="/b/${b.id}/restore">restore</a>`}<a href="/b/${b.id}/delete">delete</a></td></tr>`;
  };
  const body = html`<h1>Backups <span class="muted">(<span id="count">${count}</span>)</span></h1>
${view.message ?? ''}
<div class="toolbar"><form method="get" action="/">
<input type="search" id="filter" name="q" value="${view.q}" placeholder="filter by name" autocomplete="off" aria-label="filter by name">
<label>sort <select id="sort" name="sort">${SORT_KEYS.map((k) => html`<option value="${k}"${k === view.sort ? raw(' selected') : ''}>${k}</option>`)}</select></label>
<button type="submit">apply</button></form>
<a class="button" href="/prune">prune expired…</a></div>
${count === 0
    ? html`<p class="muted">No backups${view.q ? html` named like “${view.q}”` : ''} in this store.</p>`
    : html`<table class="backups"><thead><tr><th>name</th><th>id</th><th>dir</th><th>created (UTC)</th><th>expires</th><th class="num">size</th><th>comp</th><th class="num">files</th><th>chain</th><th></th></tr></thead>
${groups.map((group) => html`<tbody class="chain">${group.map((b) => row(b, group))}</tbody>`)}</table>`}`;
  return layout(site, 'Backups', body);
}

/** One entry of a directory page. */
export interface Listed {
  name: Uint8Array;
  stat: EntryStat;
  target?: Uint8Array;
}

export interface DirectoryView {
  key: string;
  /** The backup's name or the image's, for the title. */
  title: string;
  names: Uint8Array[];
  entries: Listed[];
  /** The first entry's index, and how many the directory has. */
  first: number;
  total: number;
  pageSize: number;
}

/** The path as links, the backup's name first: the heading of a directory's or a file's page. */
function crumbs(key: string, title: string, names: Uint8Array[]): Html {
  const parts = [html`<a href="${backupLink(key)}">${title}</a>`];
  names.forEach((name, i) => {
    const text = decodeUtf8Lossy(name);
    parts.push(html`<span class="sep">/</span>`, i === names.length - 1 ? html`<span>${text}</span>` : html`<a href="${backupLink(key, names.slice(0, i + 1))}">${text}</a>`);
  });
  if (names.length === 0) parts.push(html`<span class="sep">/</span>`);
  return html`<h1 class="crumbs">${parts}</h1>`;
}

function sizeColumn(stat: EntryStat): string {
  return stat.rdev ? `${stat.rdev.major}, ${stat.rdev.minor}` : String(stat.size);
}

/** A directory as `ls -l` shows it: mode, links, owner, group, size, time, name (-> target), a page at a time. */
export function directoryPage(site: Site, view: DirectoryView): string {
  const { key, names, entries, first, total, pageSize } = view;
  const page = Math.floor(first / pageSize) + 1;
  const pages = Math.max(1, Math.ceil(total / pageSize));
  const here = backupLink(key, names);
  const pager = pages > 1
    ? html`<div class="pager"><span class="muted">entries ${first + 1}–${first + entries.length} of ${total}</span>
${page > 1 ? html`<a href="${here}?page=${page - 1}" rel="prev">‹ previous</a>` : ''}<span>page ${page} of ${pages}</span>
${page < pages ? html`<a href="${here}?page=${page + 1}" rel="next">next ›</a>` : ''}</div>`
    : html``;
  const rows = entries.map(({ name, stat, target }) => {
    const path = [...names, name];
    const text = decodeUtf8Lossy(name);
    const link =
      stat.type === 'directory' ? html`<a href="${backupLink(key, path)}">${text}/</a>`
        : stat.type === 'file' ? html`<a href="${backupLink(key, path, 'view')}">${text}</a>`
          : html`<span>${text}</span>`;
    const action =
      stat.type === 'file' ? html`<a href="${backupLink(key, path, 'raw')}" download>download</a>`
        : stat.type === 'directory' ? html`<a href="${backupLink(key, path, 'tar')}" download>.tar</a>` : '';
    return html`<tr data-name="${text}"><td>${modeString(stat)}</td><td class="num">${stat.nlink}</td><td class="num">${stat.uid}</td><td class="num">${stat.gid}</td>
<td class="num">${sizeColumn(stat)}</td><td>${showTime(stat.mtime)}</td><td class="name">${link}${target ? html`<span class="target"> -> ${decodeUtf8Lossy(target)}</span>` : ''}</td><td class="actions">${action}</td></tr>`;
  });
  const up = names.length > 0 ? html`<tr><td colspan="6"></td><td class="name"><a href="${backupLink(key, names.slice(0, -1))}" rel="up">../</a></td><td></td></tr>` : '';
  const body = html`${crumbs(key, view.title, names)}
<div class="toolbar"><a class="button" href="${backupLink(key, names, 'tar')}" download>download as .tar</a>
${site.manage && names.length === 0 ? html`<a class="button" href="/b/${key}/restore">restore…</a><a class="button" href="/b/${key}/delete">delete…</a>` : ''}
<span class="muted">${total} entr${total === 1 ? 'y' : 'ies'}</span></div>
${pager}<table class="ls"><thead><tr><th>mode</th><th class="num">links</th><th class="num">uid</th><th class="num">gid</th><th class="num">size</th><th>modified (UTC)</th><th>name</th><th></th></tr></thead>
<tbody>${up}${rows}</tbody></table>${total === 0 ? html`<p class="muted">(empty directory)</p>` : ''}${pager}`;
  return layout(site, `/${names.map((n) => decodeUtf8Lossy(n)).join('/')}`, body);
}

export interface FileView {
  key: string;
  title: string;
  names: Uint8Array[];
  stat: EntryStat;
  target?: Uint8Array;
  /** The first bytes as text, when they look like text. */
  text?: string;
  /** Bytes shown, when fewer than the file has. */
  shown?: number;
  binary?: boolean;
}

/** A file: its `ls -l` facts, a download link, and (for text) its first MiB. */
export function filePage(site: Site, view: FileView): string {
  const { key, names, stat } = view;
  const name = decodeUtf8Lossy(names[names.length - 1] ?? new Uint8Array(0));
  let content: Html = html``;
  if (stat.type === 'file') {
    if (view.binary) content = html`<p class="notice">This looks like a binary file: download it to see it.</p>`;
    else if (view.text !== undefined) {
      content = html`${view.shown !== undefined ? html`<p class="notice" id="truncated">Showing the first ${formatBytes(view.shown)} of ${formatBytes(stat.size)}: download the file for the rest.</p>` : ''}
<pre class="text" id="text">${view.text}</pre>`;
    }
  } else if (stat.type === 'symlink') {
    content = html`<p class="notice">A symbolic link to <code>${decodeUtf8Lossy(view.target ?? new Uint8Array(0))}</code>. Links are shown, never followed.</p>`;
  }
  const body = html`${crumbs(key, view.title, names)}
<div class="toolbar">${stat.type === 'file' ? html`<a class="button primary" href="${backupLink(key, names, 'raw')}" download>download (${formatBytes(stat.size)})</a>` : ''}</div>
<dl class="facts"><dt>mode</dt><dd>${modeString(stat)} (${(stat.mode & 0o7777).toString(8).padStart(4, '0')})</dd>
<dt>owner</dt><dd>${stat.uid}:${stat.gid}</dd><dt>size</dt><dd>${sizeColumn(stat)}${stat.sparse ? ` (${stat.sparse} bytes in holes)` : ''}</dd>
<dt>modified</dt><dd>${showTime(stat.mtime)} UTC</dd><dt>links</dt><dd>${stat.nlink}</dd><dt>inode</dt><dd>${stat.inode}</dd></dl>
${content}`;
  return layout(site, name, body);
}

export function errorPage(site: Site, status: number, title: string, message: string, code?: string): string {
  const body = html`<h1>${title}</h1><p class="notice error" id="error">${message}${code ? html` <code>[${code}]</code>` : ''}</p>
<p><a href="/">back to the start</a></p>`;
  return layout(site, `${status} ${title}`, body);
}

const describe = (b: DirectoryBackup) => html`<strong>${b.name || '(unnamed)'}</strong> <code>${b.id}</code> of <code>${b.dir}</code>, made ${showTime(b.createdAt)} UTC, ${formatBytes(b.size)}`;

/** Asks before a delete; names the deltas that would go with it. */
export function deletePage(site: Site, backup: DirectoryBackup, dependants: DirectoryBackup[]): string {
  const body = html`<h1>Delete this backup?</h1><div class="confirm">
<p>${describe(backup)}.</p>
${dependants.length > 0
    ? html`<p class="notice">${dependants.length} other backup${dependants.length === 1 ? ' is a delta' : 's are deltas'} over it and cannot outlive it:</p>
<ul class="plain">${dependants.map((d) => html`<li>${describe(d)}</li>`)}</ul>`
    : ''}
<form method="post" action="/b/${backup.id}/delete">
<label><input type="checkbox" name="confirm" value="yes" required> I want to delete it${dependants.length > 0 ? ` and the ${dependants.length} backup${dependants.length === 1 ? '' : 's'} over it` : ''}; this cannot be undone.</label>
${dependants.length > 0 ? raw('<input type="hidden" name="dependants" value="yes">') : ''}
<button type="submit" class="danger" id="confirm-delete">Delete</button> <a href="/">cancel</a></form></div>`;
  return layout(site, 'Delete backup', body);
}

/** Asks before a prune, with the expired backups it looks at. */
export function prunePage(site: Site, expired: DirectoryBackup[]): string {
  const body = html`<h1>Prune expired backups?</h1><div class="confirm">
${expired.length === 0
    ? html`<p>No backup in this store has expired.</p><p><a href="/">back</a></p>`
    : html`<p>${expired.length} backup${expired.length === 1 ? ' has' : 's have'} expired. Each is deleted, unless a live backup is a delta over it: then it is kept, and the result says why.</p>
<ul class="plain">${expired.map((b) => html`<li>${describe(b)}, expired ${showTime(b.expiresAt)} UTC</li>`)}</ul>
<form method="post" action="/prune"><label><input type="checkbox" name="confirm" value="yes" required> I want to delete these; this cannot be undone.</label>
<button type="submit" class="danger" id="confirm-prune">Prune</button> <a href="/">cancel</a></form>`}</div>`;
  return layout(site, 'Prune', body);
}

/** The form that starts a restore: where to, and a confirmation that its contents are replaced. */
export function restorePage(site: Site, backup: DirectoryBackup, dir: string, problem?: string): string {
  const body = html`<h1>Restore this backup?</h1><div class="confirm">
<p>${describe(backup)}.</p>
${problem ? html`<p class="notice error">${problem}</p>` : ''}
<form method="post" action="/b/${backup.id}/restore">
<label>into the directory (on this server's machine, an absolute path)<br><input class="wide" type="text" name="dir" value="${dir}" required></label>
<label><input type="checkbox" name="confirm" value="yes" required> Replace that directory's contents with the backup's (it is restored beside it and swapped in at the end).</label>
<button type="submit" class="primary" id="confirm-restore">Restore</button> <a href="${backupLink(backup.id)}">cancel</a></form></div>`;
  return layout(site, 'Restore', body);
}

/** What a restore's page and its status show. */
export interface JobStatus {
  state: 'running' | 'done' | 'failed';
  backup: string;
  dir: string;
  downloaded: number;
  extracted: number;
  total: number;
  entries: number;
  entriesTotal: number;
  downloadedText: string;
  extractedText: string;
  elapsedText: string;
  message: string;
}

export function jobPage(site: Site, id: string, job: JobStatus): string {
  const running = job.state === 'running';
  const body = html`<h1>Restore into <code>${job.dir}</code></h1>
<div class="job" data-job-status="/jobs/${id}/status" data-state="${job.state}">
<p>state: <strong id="job-state">${job.state}</strong> · <span id="job-elapsed">${job.elapsedText}</span></p>
<p>downloaded <span id="job-download">${job.downloadedText}</span><br><progress id="job-download-bar" max="${job.total || 1}" value="${job.downloaded}"></progress></p>
<p>written <span id="job-extract">${job.extractedText}</span><br><progress id="job-extract-bar" max="${job.entriesTotal || 1}" value="${Math.min(job.entries, job.entriesTotal)}"></progress></p>
<p id="job-done" class="notice ${job.state === 'done' ? 'ok' : 'error'}"${running ? raw(' hidden') : ''}>${job.message}</p>
${running ? html`<form method="post" action="/jobs/${id}/cancel" id="job-cancel"><button type="submit">cancel</button></form>` : ''}
<p><a href="/">back to the backups</a></p></div>`;
  const head = running ? html`<noscript><meta http-equiv="refresh" content="1"></noscript>` : html``;
  return layout(site, 'Restore', body, head);
}

export const messages = {
  deleted: (ids: string[]) => html`<p class="notice ok" id="message">Deleted ${ids.map((id, i) => html`${i > 0 ? ', ' : ''}<code>${id}</code>`)}.</p>`,
  pruned: (gone: DirectoryBackup[], kept: { backup: DirectoryBackup; reason: string }[]) =>
    html`<div class="notice ok" id="message">Pruned ${gone.length} expired backup${gone.length === 1 ? '' : 's'}${gone.length > 0 ? html`: ${gone.map((b, i) => html`${i > 0 ? ', ' : ''}<code>${b.id.slice(0, 8)}</code>`)}` : ''}.
${kept.length > 0 ? html`<ul class="plain">${kept.map((k) => html`<li>kept <code>${k.backup.id.slice(0, 8)}</code>: ${k.reason}</li>`)}</ul>` : ''}</div>`,
};
