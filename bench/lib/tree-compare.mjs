// Compares an extracted tree with the corpus (for `--op unpack`): the same paths, and for each entry
// the same type, permission bits, size, mtime (seconds) and symlink target; file contents are then
// compared byte for byte with `diff -r --no-dereference` (symlinks compared as links, not followed).
// Also reports the tree's allocated bytes (st_blocks), which shows whether holes were kept sparse.
import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function walk(dir) {
  const out = new Map();
  const rec = (abs, rel) => {
    for (const name of readdirSync(abs)) {
      const a = join(abs, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(a);
      const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other';
      out.set(r, {
        type, mode: st.mode & 0o7777, size: type === 'file' ? st.size : 0, mtimeS: Math.floor(st.mtimeMs / 1000),
        blocks: st.blocks, target: type === 'symlink' ? readlinkSync(a) : undefined,
      });
      if (type === 'dir') rec(a, r);
    }
  };
  rec(dir, '');
  return out;
}

const sample = (xs) => `${xs.length}, e.g. ${xs.slice(0, 3).map((p) => JSON.stringify(p)).join(', ')}`;

/**
 * @param {string} corpusDir
 * @param {string} extractedDir
 * @returns {{ok: boolean, entries: number, expected: number, allocatedBytes: number, problems: string[], seconds: number}}
 */
export function compareTrees(corpusDir, extractedDir) {
  const t0 = Date.now();
  const want = walk(corpusDir);
  const got = walk(extractedDir);
  const problems = [];
  const missing = [...want.keys()].filter((p) => !got.has(p));
  const extra = [...got.keys()].filter((p) => !want.has(p));
  if (missing.length) problems.push(`missing paths: ${sample(missing)}`);
  if (extra.length) problems.push(`unexpected paths: ${sample(extra)}`);
  const diffs = { type: [], mode: [], size: [], target: [], mtime: [] };
  for (const [p, w] of want) {
    const g = got.get(p);
    if (!g) continue;
    if (g.type !== w.type) { diffs.type.push(p); continue; }
    if (w.type !== 'symlink' && g.mode !== w.mode) diffs.mode.push(p);
    if (g.size !== w.size) diffs.size.push(p);
    if (g.target !== w.target) diffs.target.push(p);
    if (g.mtimeS !== w.mtimeS) diffs.mtime.push(`${w.type} ${p}`);
  }
  for (const [k, xs] of Object.entries(diffs)) if (xs.length) problems.push(`${k} differs: ${sample(xs)}`);
  // Contents. -q: only say which files differ. Exit 0 same, 1 different, 2 trouble.
  const r = spawnSync('diff', ['-r', '-q', '--no-dereference', corpusDir, extractedDir], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error) problems.push(`diff failed to run: ${r.error.message}`);
  else if (r.status !== 0) {
    const lines = `${r.stdout}${r.stderr}`.trim().split('\n').filter(Boolean);
    problems.push(`diff -r (exit ${r.status}): ${lines.length} line(s), e.g. ${lines.slice(0, 3).join(' | ')}`);
  }
  let allocated = 0;
  for (const g of got.values()) if (g.type === 'file') allocated += g.blocks * 512;
  return { ok: problems.length === 0, entries: got.size + 1, expected: want.size + 1, allocatedBytes: allocated, problems, seconds: (Date.now() - t0) / 1000 };
}
