// The edit sets of bench/incremental.mjs: what changes in the tree between two backups. Seeded, and
// picked from the tree's sorted listing, so every run (and every machine with the same corpus) makes
// the same edits in the same order:
//
//   - a share of the regular files (default 1 %) gets one line appended (size and mtime change),
//   - `add` new text files (1–16 KiB) appear in directories picked at random,
//   - `remove` other regular files are deleted.
import { appendFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { walkTree } from '../corpus.mjs';
import { Rng } from './prng.mjs';

const KiB = 1024;

/** A few KiB of text from the generator: lines of hex words, like a log or generated source. */
function text(rng, bytes) {
  const lines = [];
  let length = 0;
  while (length < bytes) {
    const words = Array.from({ length: rng.int(4, 12) }, () => rng.u32().toString(16));
    const line = `${words.join(' ')}\n`;
    lines.push(line);
    length += line.length;
  }
  return lines.join('').slice(0, bytes);
}

/**
 * Applies one edit set to `dir`.
 * @param {string} dir
 * @param {{seed: string, tag: string, modifyShare?: number, add?: number, remove?: number}} options
 *        `tag` names the new files and is the appended line, so each set's changes are its own
 * @returns {{files: number, modified: number, modifiedBytes: number, largestModified: {path: string, size: number} | null,
 *   added: number, addedBytes: number, deleted: number, deletedBytes: number}} sizes before the edit
 */
export function applyEditSet(dir, { seed, tag, modifyShare = 0.01, add = 10, remove = 10 }) {
  const rng = new Rng(seed);
  const entries = walkTree(dir);
  const files = entries.filter((e) => e.type === 'file');
  const dirs = ['', ...entries.filter((e) => e.type === 'dir').map((e) => e.path)];
  const picked = rng.shuffled(files);
  const modify = picked.slice(0, Math.max(1, Math.round(files.length * modifyShare)));
  const removed = picked.slice(modify.length, modify.length + remove);
  const sum = (xs) => xs.reduce((n, e) => n + e.size, 0);

  for (const e of modify) appendFileSync(join(dir, e.path), `${tag}\n`);
  for (const e of removed) rmSync(join(dir, e.path));
  let addedBytes = 0;
  for (let i = 0; i < add; i++) {
    const body = text(rng, rng.int(1, 16) * KiB);
    writeFileSync(join(dir, rng.pick(dirs), `${tag}-${i}.txt`), body);
    addedBytes += body.length;
  }
  const largest = modify.reduce((a, e) => (!a || e.size > a.size ? e : a), null);
  return {
    files: files.length,
    modified: modify.length, modifiedBytes: sum(modify), largestModified: largest && { path: largest.path, size: largest.size },
    added: add, addedBytes,
    deleted: removed.length, deletedBytes: sum(removed),
  };
}
