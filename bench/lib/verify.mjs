// Cheap sanity check of a produced image: does it list exactly the corpus paths, and (for SquashFS)
// does the superblock report the requested compressor and block size? This catches an adapter that
// "wins" by silently packing nothing, or ignoring settings. It does not compare file contents.
import { spawnSync } from 'node:child_process';
import { which } from './shell.mjs';

function run(argv) {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, timeout: 300_000 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${(r.stderr || r.stdout).trim().slice(-500)}`);
  return r.stdout;
}

const listers = {
  squashfs(image) {
    if (!which('unsquashfs')) return null;
    const paths = [];
    for (const line of run(['unsquashfs', '-l', image]).split('\n')) {
      if (line === 'squashfs-root') paths.push('');
      else if (line.startsWith('squashfs-root/')) paths.push(line.slice('squashfs-root/'.length));
    }
    const sb = run(['unsquashfs', '-s', image]);
    return {
      paths,
      compression: /^Compression (\S+)/m.exec(sb)?.[1] ?? null,
      blockSize: Number(/^Block size (\d+)/m.exec(sb)?.[1] ?? NaN),
    };
  },
  'tar.gz'(image) {
    const paths = run(['tar', '-tzf', image]).split('\n').filter(Boolean)
      .map((p) => p.replace(/^\.\/?/, '').replace(/\/$/, ''));
    return { paths };
  },
};

/**
 * @param {string} format
 * @param {string} image
 * @param {string[]} expectedPaths  corpus paths relative to its root, '' for the root itself
 * @param {{comp: string, blockSize: number}} settings
 */
export function verifyImage(format, image, expectedPaths, settings) {
  const lister = listers[format];
  if (!lister) return { ok: null, note: `no verifier for format ${format}` };
  let listed;
  try { listed = lister(image); } catch (err) { return { ok: false, problems: [`listing failed: ${err.message}`] }; }
  if (!listed) return { ok: null, note: `verifier tools for ${format} not installed` };
  const want = new Set(expectedPaths);
  const got = new Set(listed.paths);
  const missing = [...want].filter((p) => !got.has(p));
  const extra = [...got].filter((p) => !want.has(p));
  const problems = [];
  if (missing.length) problems.push(`${missing.length} corpus paths missing, e.g. ${missing.slice(0, 3).map((p) => JSON.stringify(p)).join(', ')}`);
  if (extra.length) problems.push(`${extra.length} unexpected paths, e.g. ${extra.slice(0, 3).map((p) => JSON.stringify(p)).join(', ')}`);
  if (listed.paths.length !== got.size) problems.push(`${listed.paths.length - got.size} duplicate listing entries`);
  if (listed.compression !== undefined && listed.compression !== settings.comp) problems.push(`superblock compression ${listed.compression}, wanted ${settings.comp}`);
  if (listed.blockSize !== undefined && listed.blockSize !== settings.blockSize) problems.push(`superblock block size ${listed.blockSize}, wanted ${settings.blockSize}`);
  return { ok: problems.length === 0, entries: got.size, expected: want.size, compression: listed.compression, blockSize: listed.blockSize, problems };
}
