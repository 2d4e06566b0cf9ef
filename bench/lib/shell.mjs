// Small process helpers shared by the harness.
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join, isAbsolute } from 'node:path';

/** Quote one argument for display / copy-paste into a POSIX shell. */
export function shQuote(arg) {
  const s = String(arg);
  if (s !== '' && /^[A-Za-z0-9_\/.,:=+@%^-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Render an argv array as a shell command line. */
export function shJoin(argv) {
  return argv.map(shQuote).join(' ');
}

/** Absolute path of an executable on PATH (or the path itself if absolute and executable), else null. */
export function which(cmd) {
  const candidates = isAbsolute(cmd) ? [cmd] : (process.env.PATH ?? '').split(delimiter).filter(Boolean).map((d) => join(d, cmd));
  for (const p of candidates) {
    try { accessSync(p, constants.X_OK); return p; } catch { /* next */ }
  }
  return null;
}

/** Run a command synchronously and return trimmed stdout+stderr ('' on failure). */
export function capture(argv, opts = {}) {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout: 30_000, ...opts });
  if (r.error) return '';
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
}
