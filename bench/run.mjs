#!/usr/bin/env node
// Benchmark harness. One op per invocation (or all three):
//   pack    every packer packs the corpus; wall time, CPU, peak RSS and image size as ratios to mksquashfs
//   unpack  ours vs unsquashfs extract the same images (made by mksquashfs and by ours); ratios to unsquashfs
//   read    ranged single-file reads from an image served over HTTP on 127.0.0.1: requests, bytes, ms
//
//   npm run build && node bench/run.mjs [--op pack|unpack|read|all] [--runs 3] [--only mksquashfs,tar]
//
// See bench/README.md for all flags and what the columns mean.
import { mkdirSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { join, resolve, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { adapters, DEFAULT_BASELINE } from './adapters/index.mjs';
import { ensureCorpus, formatSummary, walkTree, BENCH_DIR, REPO_DIR, DEFAULT_CORPUS_DIR, DEFAULT_SEED } from './corpus.mjs';
import { killCurrent, GNU_TIME } from './lib/measure.mjs';
import { machineInfo } from './lib/machine.mjs';
import { shJoin, which, capture } from './lib/shell.mjs';
import { prependResultsSection, repoRelative } from './lib/results-md.mjs';
import { planPack, runPack } from './ops/pack.mjs';
import { dryRunUnpack, runUnpack } from './ops/unpack.mjs';
import { dryRunRead, runRead, pickFiles, sources } from './ops/read.mjs';

const OPS = ['pack', 'unpack', 'read'];

const USAGE = `usage: node bench/run.mjs [options]

  --op OP             pack (default), unpack, read, or all (pack, then unpack and read on its images)
  --runs N            timed runs per adapter (default 3); the median is reported
  --warmup N          untimed warm-up runs per adapter before timing (default 1)
  --only a,b          run only these adapters (known: ${adapters.map((a) => a.name).join(', ')})
  --baseline NAME     adapter the ratios are relative to (default mksquashfs for pack, unsquashfs for unpack)
  --comp NAME         compressor (default gzip)
  --level N           compression level (default 9)
  --block-size N      SquashFS block size in bytes (default 131072)
  --processors N      threads/processes a tool may use (default 2)
  --images a,b        unpack/read: packers that make the input images (default mksquashfs,ours)
  --unpack-dir DIR    unpack: extract under DIR (e.g. a disk) instead of tmpfs /dev/shm
  --read-files a,b    read: corpus-relative files to read (default: small deep, medium, largest, ...)
  --read-sources s,t  read: http, http-node, file (default all three)
  --corpus DIR        pack DIR instead of the generated corpus
  --rebuild-corpus    regenerate bench/corpus even if it is up to date
  --timeout S         kill a single run after S seconds (default 1800)
  --wait-idle S       before each run, wait up to S seconds for other processes to stop using CPU
  --no-verify         skip comparing images / extracted trees with the corpus
  --no-record         do not add a section to bench/RESULTS.md (JSON is still written)
  --dry-run           print the commands and exit
  --list              list adapters, their ops and whether they can run, then exit
  -h, --help`;

const { values: opt } = parseArgs({
  options: {
    op: { type: 'string', default: 'pack' },
    runs: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    only: { type: 'string' },
    baseline: { type: 'string' },
    comp: { type: 'string', default: 'gzip' },
    level: { type: 'string', default: '9' },
    'block-size': { type: 'string', default: '131072' },
    processors: { type: 'string', default: '2' },
    images: { type: 'string', default: 'mksquashfs,ours' },
    'unpack-dir': { type: 'string' },
    'read-files': { type: 'string' },
    'read-sources': { type: 'string' },
    corpus: { type: 'string' },
    'rebuild-corpus': { type: 'boolean', default: false },
    timeout: { type: 'string', default: '1800' },
    'wait-idle': { type: 'string', default: '0' },
    'no-verify': { type: 'boolean', default: false },
    'no-record': { type: 'boolean', default: false },
    'dry-run': { type: 'boolean', default: false },
    list: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) { console.log(USAGE); process.exit(0); }

function die(msg) { console.error(`bench: ${msg}`); process.exit(2); }
function intOpt(name, min, max) {
  const v = Number(opt[name]);
  if (!Number.isInteger(v) || v < min || v > max) die(`--${name} must be an integer in [${min}, ${max}], got ${opt[name]}`);
  return v;
}

const settings = {
  comp: opt.comp,
  level: intOpt('level', 1, 22),
  blockSize: intOpt('block-size', 4096, 1 << 20),
  processors: intOpt('processors', 1, 1024),
};
if (settings.blockSize & (settings.blockSize - 1)) die('--block-size must be a power of two');
if (settings.comp === 'gzip' && settings.level > 9) die('gzip levels are 1-9');
const runs = intOpt('runs', 1, 1000);
const warmups = intOpt('warmup', 0, 100);
const timeoutSec = intOpt('timeout', 1, 86400);
const waitIdleSec = intOpt('wait-idle', 0, 86400);
if (opt.op !== 'all' && !OPS.includes(opt.op)) die(`--op must be one of ${OPS.join(', ')}, all; got ${opt.op}`);
const ops = opt.op === 'all' ? OPS : [opt.op];
const imageMakers = opt.images.split(',').map((s) => s.trim()).filter(Boolean);
if (!imageMakers.length) die('--images needs at least one packer');
for (const n of imageMakers) if (!adapters.some((a) => a.name === n)) die(`--images: unknown adapter ${n}`);

// ---------------------------------------------------------------------------------------------
// Adapter selection: an adapter takes part in an op iff it has that method (and passes --only).

let selected = adapters;
if (opt.only) {
  const names = opt.only.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((n) => !adapters.some((a) => a.name === n));
  if (unknown.length) die(`unknown adapter(s) ${unknown.join(', ')}; known: ${adapters.map((a) => a.name).join(', ')}`);
  selected = adapters.filter((a) => names.includes(a.name));
}
if (opt.baseline && !adapters.some((a) => a.name === opt.baseline)) die(`unknown --baseline ${opt.baseline}`);
/** --baseline applies to the ops its adapter takes part in; other ops keep their default. */
const baselineFor = (op) => (opt.baseline && typeof adapters.find((a) => a.name === opt.baseline)?.[op] === 'function' ? opt.baseline : DEFAULT_BASELINE[op]);
const adaptersFor = (op) => selected.filter((a) => typeof a[op] === 'function').map((adapter) => ({ adapter, reason: adapter.check(settings) }));

if (opt.list) {
  for (const a of adapters) {
    const reason = a.check(settings);
    const aops = OPS.filter((o) => typeof a[o] === 'function');
    console.log(`${a.name.padEnd(12)} ops: ${aops.join(',').padEnd(12)} ${reason ? `unavailable: ${reason}` : 'ok'}  - ${a.label}`);
  }
  console.log(`${'(read)'.padEnd(12)} ops: ${'read'.padEnd(12)} ${existsSync(join(REPO_DIR, 'dist/index.js')) ? 'ok' : 'unavailable: dist/index.js missing'}  - bench/read-client.mjs with the built library`);
  process.exit(0);
}
if (!which(GNU_TIME)) die(`${GNU_TIME} (GNU time) is required for peak RSS (apt-get install time)`);

// ---------------------------------------------------------------------------------------------
// Corpus and paths

const outDir = join(BENCH_DIR, 'out');
const imageDir = join(outDir, 'images');
const tmpDir = join(outDir, 'tmp');
mkdirSync(imageDir, { recursive: true });
mkdirSync(tmpDir, { recursive: true });

let corpusDir, corpusInfo;
if (opt.corpus) {
  corpusDir = resolve(opt.corpus);
  if (!existsSync(corpusDir) || !statSync(corpusDir).isDirectory()) die(`--corpus ${corpusDir} is not a directory`);
  corpusInfo = { custom: true, tree: corpusDir };
} else {
  const manifest = await ensureCorpus({ dir: DEFAULT_CORPUS_DIR, seed: DEFAULT_SEED, force: opt['rebuild-corpus'] });
  corpusDir = manifest.tree;
  corpusInfo = manifest;
}
const corpusEntries = walkTree(corpusDir);
if (corpusInfo.custom) {
  const { summarize } = await import('./corpus.mjs');
  corpusInfo.summary = summarize(corpusEntries);
  console.error(`Corpus (custom): ${corpusInfo.summary.files} files, ${corpusInfo.summary.bytes.toLocaleString('en-US')} bytes in ${corpusDir}`);
} else {
  console.error(formatSummary(corpusInfo));
}

/** Shared by the ops in bench/ops/. */
const ctx = {
  opt, settings, runs, warmups, timeoutSec, waitIdleSec, imageMakers,
  corpusDir, corpusEntries, expectedPaths: ['', ...corpusEntries.map((e) => e.path)],
  outDir, imageDir, tmpDir,
  adaptersFor, baselineFor,
  /** Squashfs images made in this invocation, by adapter name (pack op results, then input images). */
  madeImages: new Map(),
  /** Run on exit/interrupt (servers, unpack work dirs). */
  cleanups: [],
  fsType: (path) => capture(['df', '--output=fstype', path]).split('\n').at(-1)?.trim() || null,
};

if (ops.includes('read')) { // check --read-files / --read-sources before anything runs
  try { pickFiles(ctx); sources(ctx); } catch (err) { die(err.message); }
}

if (opt['dry-run']) {
  for (const op of ops) {
    console.log(`# ${op}`);
    if (op === 'pack') {
      for (const s of planPack(ctx)) console.log(s.commandLine ? `${s.adapter.name}: ${s.commandLine}` : `${s.adapter.name}: skipped (${s.reason})`);
    } else if (op === 'unpack') for (const l of dryRunUnpack(ctx)) console.log(l);
    else for (const l of dryRunRead(ctx)) console.log(l);
  }
  process.exit(0);
}

const machine = machineInfo({ outDir, repoDir: REPO_DIR }); // before any run, so load average is the idle-ness at start
if (machine.loadavgAtStart[0] > 0.5) console.error(`warning: 1-min load average is ${machine.loadavgAtStart[0]}; other processes will skew timings`);

async function cleanup() {
  for (const fn of ctx.cleanups.splice(0).reverse()) { try { await fn(); } catch { /* best effort */ } }
}
process.on('SIGINT', async () => { killCurrent(); console.error('\nbench: interrupted'); await cleanup(); process.exit(130); });
process.on('SIGTERM', async () => { killCurrent(); await cleanup(); process.exit(143); });

// ---------------------------------------------------------------------------------------------
// Run the ops; each gets its own table, JSON file and RESULTS.md section.

const RUNNERS = { pack: runPack, unpack: runUnpack, read: runRead };
// Recorded relative to the repository (run from its root); see lib/results-md.mjs.
const invocation = repoRelative(shJoin(['node', relative(REPO_DIR, process.argv[1]), ...process.argv.slice(2)]));
let anyFailed = false;
const printed = [];
for (const op of ops) {
  let report;
  try {
    report = await RUNNERS[op](ctx);
  } finally {
    if (op === ops.at(-1)) await cleanup();
  }
  anyFailed ||= report.failed;
  const text = `${report.caption ? `${op}: ${report.caption}\n\n` : ''}${report.table}${report.notes.length ? `\n\n${report.notes.map((n) => `- ${n}`).join('\n')}` : ''}`;
  console.log(`\n${text}`);
  printed.push(text);
  record(report);
}
if (ops.length > 1) console.log(`\n---- all ops ----\n\n${printed.join('\n\n')}`);
process.exit(anyFailed ? 1 : 0);

// ---------------------------------------------------------------------------------------------
// Recording: bench/out/results-<time>-<op>.json and a section at the top of bench/RESULTS.md.

function record(report) {
  const now = new Date();
  const stamp = now.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
  const jsonFile = join(outDir, `results-${stamp}-${report.op}.json`);
  const result = {
    schema: 2,
    date: now.toISOString(),
    op: report.op,
    invocation,
    settings,
    runs, warmups,
    baseline: report.baseline ?? null,
    machine,
    corpus: corpusInfo.custom
      ? { custom: true, tree: corpusDir, summary: corpusInfo.summary }
      : { version: corpusInfo.version, seed: corpusInfo.seed, tree: corpusInfo.tree, summary: corpusInfo.summary, categories: corpusInfo.categories, fingerprint: corpusInfo.fingerprint },
    where: report.where,
    inputs: report.inputs ?? null,
    results: report.results,
    table: report.table,
    notes: report.notes,
  };
  writeFileSync(jsonFile, repoRelative(JSON.stringify(result, null, 2)) + '\n');
  console.error(`\nwrote ${relative(process.cwd(), jsonFile)}`);
  if (opt['no-record']) return;

  const resultsMd = join(BENCH_DIR, 'RESULTS.md');
  const cs = corpusInfo.summary;
  const mib = (b) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  const section = [
    `## ${now.toISOString().slice(0, 16).replace('T', ' ')} UTC · ${report.title} · ${settings.comp} -${settings.level} · ${settings.blockSize / 1024} KiB blocks · ${runs} run${runs > 1 ? 's' : ''}`,
    '',
    `- Command: \`${invocation}\``,
    `- Machine: ${machine.cpuModel}; nproc ${machine.nproc}${machine.cgroupCpuMax && machine.cgroupCpuMax !== 'max 100000' ? ` (cgroup cpu.max ${machine.cgroupCpuMax})` : ''}; ${machine.memTotalGiB} GiB RAM; ${machine.kernel}; Node ${machine.node}; ${report.where}; repo ${machine.gitRev}${machine.srcDirty ? ' (src/ has uncommitted changes)' : ''}; load avg at start ${machine.loadavgAtStart.join(' ')}${machine.droppedEnv.length ? `; ${machine.droppedEnv.join(', ')} unset for every measured command (it costs each Node start ~100 ms here)` : ''}`,
    `- Tools: ${report.tools.join('; ')}`,
    corpusInfo.custom
      ? `- Corpus: custom directory ${corpusDir}: ${cs.files} files, ${cs.bytes.toLocaleString('en-US')} bytes`
      : `- Corpus: v${corpusInfo.version} seed "${corpusInfo.seed}", ${cs.files} files, ${cs.dirs} dirs, ${cs.symlinks} symlinks, ${cs.bytes.toLocaleString('en-US')} bytes (${mib(cs.bytes)}); fingerprint \`${corpusInfo.fingerprint.slice(0, 16)}\``,
    `- Settings: ${JSON.stringify(settings)}; ${warmups} untimed warm-up + ${runs} timed run(s) per ${report.op === 'read' ? 'read' : 'tool'}, interleaved; median reported`,
    ...(report.inputs ?? []).map((l) => `- Input ${l}`),
    '',
    report.table,
    '',
    ...report.notes.map((n) => `- ${n}`),
    ...(report.notes.length ? [''] : []),
    report.commandsHeading,
    '',
    ...report.commands.map((c) => `- ${c}`),
    '',
    `Raw data: \`${relative(REPO_DIR, jsonFile)}\``,
    '',
  ].join('\n');
  prependResultsSection(section, { file: resultsMd }); // paths made repo-relative there
  console.error(`added a section to ${relative(process.cwd(), resultsMd)}`);
}
