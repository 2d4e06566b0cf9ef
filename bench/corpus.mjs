#!/usr/bin/env node
// Deterministic benchmark corpus.
//
//   node bench/corpus.mjs [--force] [--seed S] [--dir bench/corpus]
//
// Layout (everything under <dir>/tree is what the adapters pack; <dir>/manifest.json describes it):
//   tree/project/node_modules/...  real .js/.ts/.md/.json files copied from this repo's node_modules
//                                  (pinned by package-lock.json), plus a few multi-MB bundles and the
//                                  native ELF binaries (esbuild twice: a natural duplicate), and the
//                                  .bin symlinks
//   tree/project/vendor/include    real C headers from /usr/include
//   tree/project/vendor/python     real Python stdlib sources from /usr/lib/python3.X
//   tree/project/src               generated TypeScript-like source (fills any shortfall of the above)
//   tree/system/{bin,lib}          ELF executables / shared objects from /usr/bin, /usr/lib/<triplet>
//   tree/data/logs/app.log         40 MiB generated log (semi-compressible)
//   tree/data/blobs                20 MiB + 4 MiB pseudo-random (incompressible)
//   tree/data/disk/sparse.img      32 MiB logical, mostly holes / zero blocks, some data extents
//   tree/data/edge                 empty files, block-boundary sizes, all-zero file, empty dir
//   tree/backup                    exact duplicates of earlier files (dedup opportunities)
//
// Copied files are chosen by a seeded hash rank (stable when node_modules gains a package), generated
// content comes from a seeded PRNG (lib/prng.mjs), file modes and
// mtimes are normalised, so the same machine + same node_modules always yields the same tree.
// Files copied from /usr depend on the OS image; the manifest's fingerprint (sha256 over paths,
// modes, sizes and contents) identifies the exact corpus a result was measured on.
import {
  mkdirSync, rmSync, existsSync, readdirSync, lstatSync, copyFileSync, chmodSync, writeFileSync,
  readFileSync, openSync, writeSync, closeSync, ftruncateSync, symlinkSync, readlinkSync, utimesSync,
  lutimesSync, renameSync, readSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import { join, dirname, resolve, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Rng } from './lib/prng.mjs';

export const CORPUS_VERSION = 1;
export const DEFAULT_SEED = 'squashfs-ts-bench';
export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
export const REPO_DIR = resolve(BENCH_DIR, '..');
export const DEFAULT_CORPUS_DIR = join(BENCH_DIR, 'corpus');

const KiB = 1024;
const MiB = 1024 * KiB;
const FIXED_MTIME = new Date('2024-01-01T00:00:00Z');

// Targets (tune here; bump CORPUS_VERSION when changing anything that alters the tree).
const T = {
  nodeModulesText: 3000,   // small real files from node_modules
  includeText: 1000,       // small real C headers
  pythonText: 700,         // small real Python files
  generatedText: 300,      // generated source (plus any shortfall from the three above)
  smallMax: 64 * KiB,      // "small" = 1 B .. 64 KiB
  nativeMax: 12 * MiB,     // node_modules ELF binaries up to this size
  systemBinBudget: 16 * MiB,
  systemBinMin: 16 * KiB,
  systemBinMax: 6 * MiB,
  logBytes: 40 * MiB,
  randomBytes: 20 * MiB,
  chunkBytes: 4 * MiB,
  sparseBytes: 32 * MiB,
  dupTextFiles: 200,
};
const TEXT_EXT = /\.(js|mjs|cjs|ts|mts|cts|d\.ts|md|json|map|css|txt|yml|yaml)$/i;
const LARGE_TEXT = [ // real multi-MB source files, copied if present
  'typescript/lib/typescript.js',
  'typescript/lib/lib.dom.d.ts',
  'vite/dist/node/chunks/node.js',
];

// ---------------------------------------------------------------------------------------------
// Tree walking / summary / fingerprint

/** Sorted list of entries below dir (not including dir itself). Paths are relative, '/'-separated. */
export function walkTree(dir) {
  const out = [];
  const rec = (abs, rel) => {
    for (const name of readdirSync(abs).sort()) {
      const a = join(abs, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(a);
      if (st.isDirectory()) { out.push({ path: r, type: 'dir', mode: st.mode & 0o7777, size: 0 }); rec(a, r); }
      else if (st.isSymbolicLink()) out.push({ path: r, type: 'symlink', mode: st.mode & 0o7777, size: 0, target: readlinkSync(a) });
      else if (st.isFile()) out.push({ path: r, type: 'file', mode: st.mode & 0o7777, size: st.size, blocks: st.blocks });
      else out.push({ path: r, type: 'other', mode: st.mode & 0o7777, size: 0 });
    }
  };
  rec(dir, '');
  return out;
}

export function summarize(entries) {
  const s = { entries: entries.length + 1 /* root */, files: 0, dirs: 1, symlinks: 0, bytes: 0, allocatedBytes: 0, largestFile: 0 };
  for (const e of entries) {
    if (e.type === 'file') { s.files++; s.bytes += e.size; s.allocatedBytes += (e.blocks ?? 0) * 512; s.largestFile = Math.max(s.largestFile, e.size); }
    else if (e.type === 'dir') s.dirs++;
    else if (e.type === 'symlink') s.symlinks++;
  }
  return s;
}

function fingerprint(dir, entries) {
  const h = createHash('sha256');
  for (const e of entries) {
    let content = '';
    if (e.type === 'file') content = createHash('sha256').update(readFileSync(join(dir, e.path))).digest('hex');
    else if (e.type === 'symlink') content = e.target;
    h.update(`${e.type}\0${e.path}\0${e.mode.toString(8)}\0${e.size}\0${content}\n`);
  }
  return h.digest('hex');
}

// ---------------------------------------------------------------------------------------------
// Source discovery

function listFiles(root, { filter, maxDepth = 64, skipDir = () => false }) {
  const out = [];
  if (!existsSync(root)) return out;
  const rec = (abs, rel, depth) => {
    let names;
    try { names = readdirSync(abs).sort(); } catch { return; }
    for (const name of names) {
      const a = join(abs, name);
      const r = rel ? `${rel}/${name}` : name;
      let st;
      try { st = lstatSync(a); } catch { continue; }
      if (st.isDirectory()) { if (depth < maxDepth && !skipDir(name, r)) rec(a, r, depth + 1); }
      else if (st.isFile() && filter(r, st)) out.push({ abs: a, rel: r, size: st.size });
    }
  };
  rec(root, '', 0);
  return out;
}

/**
 * Seeded selection that is stable when the candidate set changes a little (e.g. a package is added
 * to node_modules): each candidate gets a rank = sha256(seed, path), and callers take the first N.
 * A shuffle over the whole list would instead reshuffle everything when one file appears.
 */
function rankBySeed(list, seed) {
  const key = (f) => createHash('sha256').update(`${seed}\0${f.rel}`).digest('hex');
  return list.map((f) => [key(f), f]).sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([, f]) => f);
}

function isElf(abs) {
  try {
    const fd = openSync(abs, 'r');
    const b = Buffer.alloc(4);
    const n = readSync(fd, b, 0, 4, 0);
    closeSync(fd);
    return n === 4 && b[0] === 0x7f && b[1] === 0x45 && b[2] === 0x4c && b[3] === 0x46;
  } catch { return false; }
}

function pythonLibDir() {
  const dirs = readdirSync('/usr/lib').filter((n) => /^python3\.\d+$/.test(n))
    .sort((a, b) => Number(b.split('.')[1]) - Number(a.split('.')[1]));
  return dirs.length ? join('/usr/lib', dirs[0]) : null;
}

function multiarchLibDir() {
  for (const d of ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib']) if (existsSync(d)) return d;
  return null;
}

// ---------------------------------------------------------------------------------------------
// Generators

const WORDS = ('account active adapter address allocate append archive array assert async attach attribute ' +
  'backup batch buffer build bundle byte cache callback capacity chunk client close code collect column ' +
  'commit compress config connect consume context count create cursor data decode default delete depth ' +
  'digest directory dispatch document done encode entry error event expire export fetch field file filter ' +
  'flush format fragment frame handle hash header index inode input insert inspect item iterate journal key ' +
  'layer length limit list load lock logger lookup manifest map merge message metadata method mode module ' +
  'mount name node number object offset open option order output owner packet page parse path pending ' +
  'pointer pool position prefix process queue range read record reduce region release remote render request ' +
  'reset resolve response result retry root route schedule schema scope segment select serialize session ' +
  'signal size slice snapshot socket source split stage state status storage stream string superblock sync ' +
  'table target task token total trace transform tree update upload value verify version volume window ' +
  'worker write xattr').split(' ');
const TYPES = ['string', 'number', 'boolean', 'Uint8Array', 'bigint', 'Promise<void>', 'ReadonlyArray<string>', 'Map<string, number>'];

function ident(rng, parts = rng.int(1, 3), cap = false) {
  let s = '';
  for (let i = 0; i < parts; i++) {
    const w = rng.pick(WORDS);
    s += (i === 0 && !cap) ? w : w[0].toUpperCase() + w.slice(1);
  }
  return s;
}

function sentence(rng, n = rng.int(5, 16)) {
  const w = [];
  for (let i = 0; i < n; i++) w.push(rng.pick(WORDS));
  const s = w.join(' ');
  return s[0].toUpperCase() + s.slice(1) + '.';
}

/** TypeScript-looking source text of roughly `target` bytes. */
function genSource(rng, target) {
  const lines = [`// ${sentence(rng)}`, `import { ${ident(rng, 2, true)}, ${ident(rng)} } from './${ident(rng, 1)}.js';`,
    `import type { ${ident(rng, 2, true)} } from '../${ident(rng, 1)}/index.js';`, ''];
  let size = lines.join('\n').length;
  while (size < target) {
    const block = [];
    const kind = rng.int(0, 3);
    if (kind === 0) {
      block.push('/**', ` * ${sentence(rng)}`, ` * @param ${ident(rng)} ${sentence(rng, 6)}`, ' */');
      const params = Array.from({ length: rng.int(0, 3) }, () => `${ident(rng)}: ${rng.pick(TYPES)}`);
      block.push(`export ${rng.chance(0.3) ? 'async ' : ''}function ${ident(rng, 2)}(${params.join(', ')}): ${rng.pick(TYPES)} {`);
      for (let i = rng.int(2, 12); i > 0; i--) {
        const r = rng.int(0, 4);
        if (r === 0) block.push(`  const ${ident(rng)} = ${ident(rng)}.${ident(rng)}(${ident(rng)}, ${rng.int(0, 65535)});`);
        else if (r === 1) block.push(`  if (${ident(rng)}.length > ${rng.int(1, 4096)}) throw new Error('${sentence(rng, 5)}');`);
        else if (r === 2) block.push(`  for (let i = 0; i < ${ident(rng)}.length; i++) ${ident(rng)}[i] ^= 0x${rng.u32().toString(16).slice(0, 2)};`);
        else if (r === 3) block.push(`  // ${sentence(rng)}`);
        else block.push(`  ${ident(rng)} += ${ident(rng)}.${ident(rng)} ?? ${rng.int(0, 100)};`);
      }
      block.push(`  return ${ident(rng)};`, '}', '');
    } else if (kind === 1) {
      block.push(`export interface ${ident(rng, 2, true)} {`);
      for (let i = rng.int(2, 9); i > 0; i--) block.push(`  ${rng.chance(0.2) ? 'readonly ' : ''}${ident(rng)}${rng.chance(0.3) ? '?' : ''}: ${rng.pick(TYPES)};`);
      block.push('}', '');
    } else if (kind === 2) {
      block.push(`export class ${ident(rng, 2, true)} {`, `  private ${ident(rng)} = new Map<string, number>();`);
      for (let i = rng.int(1, 5); i > 0; i--) {
        block.push(`  ${ident(rng)}(${ident(rng)}: ${rng.pick(TYPES)}): void {`, `    this.${ident(rng)}.set('${ident(rng)}', ${rng.int(0, 1 << 20)});`, '  }');
      }
      block.push('}', '');
    } else {
      block.push(`export const ${ident(rng, 2).toUpperCase()} = {`);
      for (let i = rng.int(2, 10); i > 0; i--) block.push(`  ${ident(rng)}: ${rng.chance(0.5) ? rng.int(0, 1 << 24) : `'${ident(rng)}'`},`);
      block.push('} as const;', '');
    }
    const text = block.join('\n');
    lines.push(text);
    size += text.length + 1;
  }
  return lines.join('\n') + '\n';
}

function genMarkdown(rng, target) {
  const out = [`# ${ident(rng, 2, true)}`, '', sentence(rng, 20), ''];
  let size = 0;
  while (size < target) {
    const s = rng.int(0, 2) === 0
      ? `## ${ident(rng, 2, true)}\n\n${sentence(rng, 25)} ${sentence(rng, 12)}\n`
      : `- \`${ident(rng)}\`: ${sentence(rng, 9)}\n`;
    out.push(s); size += s.length;
  }
  return out.join('\n');
}

function genJson(rng, target) {
  const obj = { name: `@bench/${ident(rng, 1)}`, version: `${rng.int(0, 9)}.${rng.int(0, 30)}.${rng.int(0, 99)}`, items: [] };
  let size = 0;
  while (size < target) {
    const it = { id: rng.u32().toString(16), [ident(rng)]: rng.int(0, 1e6), label: sentence(rng, 4), enabled: rng.chance(0.5) };
    obj.items.push(it); size += 90;
  }
  return JSON.stringify(obj, null, 2) + '\n';
}

const LEVELS = [['INFO', 70], ['DEBUG', 15], ['WARN', 10], ['ERROR', 5]];
const SERVICES = ['api', 'auth', 'billing', 'ingest', 'scheduler', 'storage', 'search', 'gateway'];
const METHODS = ['GET', 'GET', 'GET', 'POST', 'PUT', 'DELETE'];
const ROUTES = ['/api/v1/users/{id}', '/api/v1/users/{id}/orders', '/api/v2/archive/{id}/blocks/{n}', '/healthz',
  '/api/v1/search?q={w}&page={n}', '/static/js/chunk-{h}.js', '/api/v1/backups/{id}/manifest', '/login'];
const STATUSES = [200, 200, 200, 200, 200, 201, 204, 304, 400, 401, 403, 404, 429, 500, 502, 503];
const AGENTS = ['Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36',
  'curl/8.4.0', 'Go-http-client/1.1', 'node-fetch/1.0 (+https://github.com/bitinn/node-fetch)', 'kube-probe/1.28'];

/** Write a log-like file of exactly `bytes` bytes. */
function writeLog(file, bytes, rng) {
  const fd = openSync(file, 'w');
  let written = 0;
  let t = Date.UTC(2024, 0, 15, 8, 0, 0);
  const weight = LEVELS.reduce((a, [, w]) => a + w, 0);
  try {
    while (written < bytes) {
      const parts = [];
      let chunkLen = 0;
      while (chunkLen < MiB) {
        t += rng.int(0, 40);
        let r = rng.int(1, weight), level = 'INFO';
        for (const [l, w] of LEVELS) { if ((r -= w) <= 0) { level = l; break; } }
        const route = rng.pick(ROUTES).replace('{id}', String(rng.int(1, 99999))).replace('{n}', String(rng.int(0, 512)))
          .replace('{w}', rng.pick(WORDS)).replace('{h}', rng.u32().toString(16));
        const status = level === 'ERROR' ? rng.pick([500, 502, 503]) : rng.pick(STATUSES);
        let line = `${new Date(t).toISOString()} ${level.padEnd(5)} [${rng.pick(SERVICES)}-${rng.int(0, 7)}] ` +
          `req=${rng.u32().toString(16).padStart(8, '0')} ${rng.pick(METHODS)} ${route} ${status} ${(rng.next() * 250).toFixed(1)}ms ` +
          `ip=10.${rng.int(0, 255)}.${rng.int(0, 255)}.${rng.int(1, 254)} ua="${rng.pick(AGENTS)}"`;
        if (level === 'DEBUG') line += ` ${JSON.stringify({ [ident(rng)]: rng.int(0, 1e6), [ident(rng)]: ident(rng), cache: rng.chance(0.5) ? 'hit' : 'miss' })}`;
        if (level === 'WARN') line += ` msg="${sentence(rng, 8)}"`;
        if (level === 'ERROR') {
          line += ` msg="${sentence(rng, 6)}"\nError: ${sentence(rng, 7)}`;
          for (let i = rng.int(3, 9); i > 0; i--) line += `\n    at ${ident(rng, 2)} (/srv/app/dist/${ident(rng, 1)}/${ident(rng, 1)}.js:${rng.int(1, 3000)}:${rng.int(1, 80)})`;
        }
        line += '\n';
        parts.push(line); chunkLen += line.length;
      }
      let buf = Buffer.from(parts.join(''), 'utf8');
      if (written + buf.length > bytes) buf = buf.subarray(0, bytes - written);
      writeSync(fd, buf); written += buf.length;
    }
  } finally { closeSync(fd); }
}

function writeRandom(file, bytes, rng) {
  const fd = openSync(file, 'w');
  const buf = Buffer.alloc(MiB);
  try {
    for (let left = bytes; left > 0; left -= buf.length) {
      rng.fill(buf);
      writeSync(fd, buf, 0, Math.min(left, buf.length));
    }
  } finally { closeSync(fd); }
}

/** 32 MiB logical file: holes and some 4 KiB-aligned data extents (random and text), ~20% of 128 KiB blocks touched. */
function writeSparse(file, bytes, rng) {
  const fd = openSync(file, 'w');
  try {
    ftruncateSync(fd, bytes);
    const blocks = Math.floor(bytes / (128 * KiB));
    for (let b = 0; b < blocks; b++) {
      if (!rng.chance(0.2)) continue;
      const off = b * 128 * KiB + rng.int(0, 24) * 4 * KiB;
      const len = rng.int(1, 8) * 4 * KiB;
      const buf = rng.chance(0.5) ? rng.fill(Buffer.alloc(len)) : Buffer.from(genSource(rng, len).slice(0, len).padEnd(len, ' '));
      writeSync(fd, buf, 0, len, off);
    }
    // A non-zero tail so the last block is a partial data block, like a real disk image trailer.
    writeSync(fd, Buffer.from('SPARSE-END\n'), 0, 11, bytes - 11);
  } finally { closeSync(fd); }
}

// ---------------------------------------------------------------------------------------------
// Build

export async function buildCorpus({ dir = DEFAULT_CORPUS_DIR, seed = DEFAULT_SEED, log = console.error } = {}) {
  const started = Date.now();
  const treeFinal = join(dir, 'tree');
  const tree = join(dir, 'tree.partial');
  rmSync(tree, { recursive: true, force: true });
  mkdirSync(tree, { recursive: true });
  const cats = {};
  const sources = {};
  const textFiles = []; // relative paths of small text files (for duplicates)
  const binFiles = [];
  const binaries = new Set();

  const add = (cat, bytes) => { (cats[cat] ??= { files: 0, bytes: 0 }); cats[cat].files++; cats[cat].bytes += bytes; };
  const put = (rel, cat, { from, data, exec = false }) => {
    const abs = join(tree, rel);
    mkdirSync(dirname(abs), { recursive: true });
    if (from) copyFileSync(from, abs); else writeFileSync(abs, data);
    chmodSync(abs, exec ? 0o755 : 0o644);
    if (exec) binaries.add(rel);
    add(cat, lstatSync(abs).size);
    return rel;
  };
  const rngFor = (name) => new Rng(`${seed}/${name}`);

  // 1. Real small text from node_modules.
  const nm = join(REPO_DIR, 'node_modules');
  const nmText = listFiles(nm, { filter: (r, st) => TEXT_EXT.test(r) && st.size > 0 && st.size <= T.smallMax, skipDir: (n) => n.startsWith('.') });
  const nmPick = rankBySeed(nmText, `${seed}/nm-text`).slice(0, T.nodeModulesText).sort((a, b) => (a.rel < b.rel ? -1 : 1));
  for (const f of nmPick) textFiles.push(put(`project/node_modules/${f.rel}`, 'text: node_modules', { from: f.abs }));
  sources.nodeModules = nm;
  log(`corpus: node_modules text ${nmPick.length}/${nmText.length} candidates`);

  // 2. Real small text from /usr/include and Python stdlib.
  const inc = listFiles('/usr/include', { filter: (r, st) => /\.(h|hpp|hh|def)$/.test(r) && st.size > 0 && st.size <= T.smallMax });
  const incPick = rankBySeed(inc, `${seed}/include`).slice(0, T.includeText);
  for (const f of incPick) textFiles.push(put(`project/vendor/include/${f.rel}`, 'text: /usr/include', { from: f.abs }));
  const py = pythonLibDir();
  const pyAll = py ? listFiles(py, { filter: (r, st) => r.endsWith('.py') && st.size > 0 && st.size <= T.smallMax,
    skipDir: (n) => n === '__pycache__' || n === 'site-packages' || n === 'dist-packages' }) : [];
  const pyPick = rankBySeed(pyAll, `${seed}/python`).slice(0, T.pythonText);
  for (const f of pyPick) textFiles.push(put(`project/vendor/python/${f.rel}`, `text: ${py}`, { from: f.abs }));
  sources.include = '/usr/include'; sources.python = py;
  log(`corpus: /usr/include text ${incPick.length}/${inc.length}, python text ${pyPick.length}/${pyAll.length}`);

  // 3. Generated source: fixed amount plus any shortfall so the small-file count is stable.
  const shortfall = (T.nodeModulesText - nmPick.length) + (T.includeText - incPick.length) + (T.pythonText - pyPick.length);
  const gr = rngFor('generated');
  const modules = Array.from({ length: 24 }, () => ident(gr, 1));
  for (let i = 0; i < T.generatedText + shortfall; i++) {
    const depth = gr.int(1, 4);
    const dirParts = Array.from({ length: depth }, (_, d) => (d === 0 ? gr.pick(modules) : ident(gr, 1)));
    const size = Math.min(T.smallMax, Math.round(Math.exp(gr.next() * 4 + 6))); // ~400 B .. 22 KiB, log-uniform
    const kind = gr.int(0, 9);
    const [ext, text] = kind < 7 ? ['ts', genSource(gr, size)] : kind < 9 ? ['md', genMarkdown(gr, size)] : ['json', genJson(gr, size)];
    textFiles.push(put(`project/src/${dirParts.join('/')}/${ident(gr, 2)}-${i}.${ext}`, 'text: generated', { data: text }));
  }
  log(`corpus: generated text ${T.generatedText + shortfall}`);

  // 4. Large real text (multi-MB bundles).
  for (const rel of LARGE_TEXT) if (existsSync(join(nm, rel))) put(`project/node_modules/${rel}`, 'large text: node_modules', { from: join(nm, rel) });

  // 5. Native binaries shipped in node_modules (esbuild appears twice: identical copies).
  const natives = listFiles(nm, { skipDir: (n) => n.startsWith('.'), filter: (r, st) => st.size > 4 * KiB && st.size <= T.nativeMax && (r.endsWith('.node') || /\/bin\/[^/.]+$/.test(r)) })
    .filter((f) => isElf(f.abs));
  for (const f of natives) binFiles.push(put(`project/node_modules/${f.rel}`, 'binary: node_modules', { from: f.abs, exec: true }));
  log(`corpus: node_modules native binaries ${natives.length}`);

  // 6. System ELF binaries and shared libraries up to a byte budget.
  const lib = multiarchLibDir();
  const sysCands = [
    ...listFiles('/usr/bin', { maxDepth: 0, filter: (r, st) => st.size >= T.systemBinMin && st.size <= T.systemBinMax }).map((f) => ({ ...f, to: `system/bin/${f.rel}` })),
    ...(lib ? listFiles(lib, { maxDepth: 0, filter: (r, st) => /\.so(\.|$)/.test(r) && st.size >= T.systemBinMin && st.size <= T.systemBinMax }) : [])
      .map((f) => ({ ...f, to: `system/lib/${f.rel}` })),
  ];
  let sysBytes = 0, sysN = 0;
  for (const f of rankBySeed(sysCands, `${seed}/system-bin`)) {
    if (sysBytes >= T.systemBinBudget) break;
    if (sysBytes + f.size > T.systemBinBudget * 1.1 || !isElf(f.abs)) continue;
    binFiles.push(put(f.to, 'binary: system', { from: f.abs, exec: true }));
    sysBytes += f.size; sysN++;
  }
  sources.systemBinaries = ['/usr/bin', lib];
  log(`corpus: system binaries ${sysN} (${(sysBytes / MiB).toFixed(1)} MiB)`);

  // 7. Generated data files.
  log('corpus: generating log, random, sparse files');
  mkdirSync(join(tree, 'data/logs'), { recursive: true });
  writeLog(join(tree, 'data/logs/app.log'), T.logBytes, rngFor('log')); chmodSync(join(tree, 'data/logs/app.log'), 0o644); add('large: log', T.logBytes);
  mkdirSync(join(tree, 'data/blobs'), { recursive: true });
  writeRandom(join(tree, 'data/blobs/random.bin'), T.randomBytes, rngFor('random')); chmodSync(join(tree, 'data/blobs/random.bin'), 0o644); add('large: random', T.randomBytes);
  writeRandom(join(tree, 'data/blobs/chunk.bin'), T.chunkBytes, rngFor('chunk')); chmodSync(join(tree, 'data/blobs/chunk.bin'), 0o644); add('large: random', T.chunkBytes);
  mkdirSync(join(tree, 'data/disk'), { recursive: true });
  writeSparse(join(tree, 'data/disk/sparse.img'), T.sparseBytes, rngFor('sparse')); chmodSync(join(tree, 'data/disk/sparse.img'), 0o644); add('large: sparse', T.sparseBytes);

  // 8. Edge cases: empty files, block-boundary sizes, an all-zero file, empty directories.
  const er = rngFor('edge');
  for (let i = 0; i < 5; i++) put(`data/edge/empty-${i}`, 'edge', { data: '' });
  put('data/edge/one-byte', 'edge', { data: 'x' });
  for (const [name, n] of [['block-exact', 128 * KiB], ['block-plus-one', 128 * KiB + 1], ['three-blocks-minus-one', 3 * 128 * KiB - 1]]) {
    put(`data/edge/${name}.txt`, 'edge', { data: genSource(er, n).slice(0, n).padEnd(n, '\n') });
  }
  put('data/edge/zeros-1m.bin', 'edge', { data: Buffer.alloc(MiB) });
  mkdirSync(join(tree, 'data/edge/empty-dir'), { recursive: true });
  mkdirSync(join(tree, 'project/build'), { recursive: true });

  // 9. Duplicates of earlier content (a "backup" of part of the tree).
  const asRel = (list) => list.map((rel) => ({ rel }));
  for (const { rel } of rankBySeed(asRel(textFiles), `${seed}/dup-text`).slice(0, T.dupTextFiles).sort((a, b) => (a.rel < b.rel ? -1 : 1))) {
    put(`backup/${rel}`, 'duplicate', { from: join(tree, rel) });
  }
  put('backup/data/blobs/chunk.bin', 'duplicate', { from: join(tree, 'data/blobs/chunk.bin') });
  for (const { rel } of rankBySeed(asRel(binFiles.filter((r) => r.startsWith('system/'))), `${seed}/dup-bin`).slice(0, 3)) {
    put(`backup/${rel}`, 'duplicate', { from: join(tree, rel), exec: true });
  }

  // 10. Symlinks: node_modules/.bin (real) plus a few generated ones, one of them dangling.
  let links = 0;
  const nmBin = join(nm, '.bin');
  if (existsSync(nmBin)) {
    mkdirSync(join(tree, 'project/node_modules/.bin'), { recursive: true });
    for (const name of readdirSync(nmBin).sort()) {
      const a = join(nmBin, name);
      if (!lstatSync(a).isSymbolicLink()) continue;
      symlinkSync(readlinkSync(a), join(tree, 'project/node_modules/.bin', name)); links++;
    }
  }
  symlinkSync('app.log', join(tree, 'data/logs/latest.log'));
  symlinkSync('../project/src', join(tree, 'data/src-link'));
  symlinkSync('does/not/exist', join(tree, 'data/dangling'));
  links += 3;
  add('symlinks', 0); cats.symlinks.files = links;

  // 11. Normalise directory modes and all mtimes (deepest first so parents are not touched again).
  const entries = walkTree(tree);
  for (const e of entries.slice().reverse()) {
    const abs = join(tree, e.path);
    if (e.type === 'symlink') lutimesSync(abs, FIXED_MTIME, FIXED_MTIME);
    else {
      if (e.type === 'dir') chmodSync(abs, 0o755);
      utimesSync(abs, FIXED_MTIME, FIXED_MTIME);
    }
  }
  chmodSync(tree, 0o755); utimesSync(tree, FIXED_MTIME, FIXED_MTIME);

  rmSync(treeFinal, { recursive: true, force: true });
  renameSync(tree, treeFinal);
  utimesSync(treeFinal, FIXED_MTIME, FIXED_MTIME);
  const finalEntries = walkTree(treeFinal);
  const manifest = {
    version: CORPUS_VERSION,
    seed,
    builtAt: new Date().toISOString(),
    buildSeconds: (Date.now() - started) / 1000,
    tree: treeFinal,
    summary: summarize(finalEntries),
    categories: cats,
    sources,
    fingerprint: fingerprint(treeFinal, finalEntries),
  };
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}

/** Return the manifest of an up-to-date corpus, building it when missing, stale or damaged. */
export async function ensureCorpus({ dir = DEFAULT_CORPUS_DIR, seed = DEFAULT_SEED, force = false, log = console.error } = {}) {
  const mf = join(dir, 'manifest.json');
  if (!force && existsSync(mf) && existsSync(join(dir, 'tree'))) {
    const m = JSON.parse(readFileSync(mf, 'utf8'));
    if (m.version === CORPUS_VERSION && m.seed === seed) {
      const s = summarize(walkTree(join(dir, 'tree')));
      if (s.entries === m.summary.entries && s.bytes === m.summary.bytes) return m;
      log(`corpus: tree differs from manifest (${s.entries} entries/${s.bytes} B vs ${m.summary.entries}/${m.summary.bytes}); rebuilding`);
    } else log(`corpus: manifest version/seed changed; rebuilding`);
  } else log(force ? 'corpus: rebuilding (forced)' : `corpus: not found at ${relative(process.cwd(), dir) || '.'}; building`);
  return buildCorpus({ dir, seed, log });
}

export function formatSummary(m) {
  const s = m.summary;
  const mib = (b) => `${(b / MiB).toFixed(1)} MiB`;
  const lines = [
    `Corpus v${m.version} (seed "${m.seed}"): ${s.files} files, ${s.dirs} dirs, ${s.symlinks} symlinks; ` +
      `${s.bytes.toLocaleString('en-US')} bytes (${mib(s.bytes)}) apparent, ${mib(s.allocatedBytes)} allocated; largest file ${mib(s.largestFile)}`,
    `  fingerprint sha256:${m.fingerprint.slice(0, 16)}…  tree: ${m.tree}`,
  ];
  for (const [cat, c] of Object.entries(m.categories)) {
    lines.push(`  ${cat.padEnd(30)} ${String(c.files).padStart(6)} ${cat === 'symlinks' ? 'links' : 'files'} ${mib(c.bytes).padStart(11)}`);
  }
  return lines.join('\n');
}

// CLI
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: {
    force: { type: 'boolean', default: false },
    seed: { type: 'string', default: DEFAULT_SEED },
    dir: { type: 'string', default: DEFAULT_CORPUS_DIR },
    help: { type: 'boolean', short: 'h', default: false },
  } });
  if (values.help) {
    console.log('usage: node bench/corpus.mjs [--force] [--seed S] [--dir DIR]');
    process.exit(0);
  }
  const m = await ensureCorpus({ dir: resolve(values.dir), seed: values.seed, force: values.force });
  console.log(formatSummary(m));
}
