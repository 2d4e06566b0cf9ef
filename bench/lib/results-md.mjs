// Writing results down: bench/RESULTS.md sections (newest first, below a marker line) and paths
// relative to the repository, so what is recorded does not depend on where the checkout lives.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const RESULTS_MD = join(REPO_DIR, 'bench', 'RESULTS.md');
export const MARK = '<!-- results: newest first; sections are inserted below this line by bench/run.mjs -->';

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * `text` with the repository's absolute path made relative to the repository: a leading
 * `cd <repo> && ` goes (commands are run from the repository root), `<repo>/x` becomes `x`, and
 * `<repo>` alone becomes `.`. Other absolute paths (/dev/shm/..., /usr/bin/node) are kept.
 */
export function repoRelative(text, repoDir = REPO_DIR) {
  const repo = escapeRe(repoDir.replace(/\/+$/, ''));
  return text
    .replace(new RegExp(`cd ${repo}/? && `, 'g'), '')
    .replace(new RegExp(`${repo}/(?=[^\\s/])`, 'g'), '')
    .replace(new RegExp(`${repo}(?![\\w./-])`, 'g'), '.');
}

/** Inserts `section` (Markdown) at the top of bench/RESULTS.md, below the marker line. */
export function prependResultsSection(section, { file = RESULTS_MD } = {}) {
  const header = `# Benchmark results\n\nProduced by \`node bench/run.mjs\` (see [README.md](README.md)). Each section is one run of the\nharness; ratios are relative to the baseline measured in that same run. Raw samples are in the\nJSON file named in each section (bench/out/, not committed). Paths are relative to the repository.\n\n${MARK}\n`;
  let md = existsSync(file) ? readFileSync(file, 'utf8') : header;
  if (!md.includes(MARK)) md = `${md.trimEnd()}\n\n${MARK}\n`;
  const at = md.indexOf(MARK) + MARK.length;
  md = `${md.slice(0, at)}\n\n${repoRelative(section)}${md.slice(at).replace(/^\n+/, '\n')}`;
  writeFileSync(file, md.replace(/\n{3,}/g, '\n\n').trimEnd() + '\n');
}
