#!/usr/bin/env node
// Benchmark harness: packs the corpus with every adapter under GNU time and reports wall time,
// CPU time, peak RSS and image size as ratios to the baseline (mksquashfs) measured in the same run.
//
//   npm run build && node bench/run.mjs [--runs 3] [--only mksquashfs,tar] [--level 9] [--block-size 131072]
//
// See bench/README.md for all flags and what the columns mean.
import { mkdirSync, rmSync, statSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join, resolve, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { adapters } from './adapters/index.mjs';
import { ensureCorpus, formatSummary, walkTree, BENCH_DIR, REPO_DIR, DEFAULT_CORPUS_DIR, DEFAULT_SEED } from './corpus.mjs';
import { measure, killCurrent, GNU_TIME } from './lib/measure.mjs';
import { machineInfo, busyCpuSeconds } from './lib/machine.mjs';
import { verifyImage } from './lib/verify.mjs';
import { shJoin, which } from './lib/shell.mjs';

const USAGE = `usage: node bench/run.mjs [options]

  --runs N            timed runs per adapter (default 3); the median is reported
  --warmup N          untimed warm-up runs per adapter before timing (default 1)
  --only a,b          run only these adapters (known: ${adapters.map((a) => a.name).join(', ')})
  --baseline NAME     adapter the ratios are relative to (default mksquashfs)
  --comp NAME         compressor (default gzip)
  --level N           compression level (default 9)
  --block-size N      SquashFS block size in bytes (default 131072)
  --processors N      threads/processes a tool may use (default 2)
  --corpus DIR        pack DIR instead of the generated corpus
  --rebuild-corpus    regenerate bench/corpus even if it is up to date
  --timeout S         kill a single run after S seconds (default 1800)
  --wait-idle S       before each run, wait up to S seconds for other processes to stop using CPU
  --no-verify         skip listing each image and comparing it to the corpus
  --no-record         do not add a section to bench/RESULTS.md (JSON is still written)
  --dry-run           print the commands and exit
  --list              list adapters and whether they can run, then exit
  -h, --help`;

const { values: opt } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    only: { type: 'string' },
    baseline: { type: 'string', default: 'mksquashfs' },
    comp: { type: 'string', default: 'gzip' },
    level: { type: 'string', default: '9' },
    'block-size': { type: 'string', default: '131072' },
    processors: { type: 'string', default: '2' },
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
const op = 'pack'; // future: 'unpack' (input = an image made by the baseline, output = a directory)

// ---------------------------------------------------------------------------------------------
// Adapter selection

let selected = adapters;
if (opt.only) {
  const names = opt.only.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((n) => !adapters.some((a) => a.name === n));
  if (unknown.length) die(`unknown adapter(s) ${unknown.join(', ')}; known: ${adapters.map((a) => a.name).join(', ')}`);
  selected = adapters.filter((a) => names.includes(a.name));
}
if (!which(GNU_TIME)) die(`${GNU_TIME} (GNU time) is required for peak RSS (apt-get install time)`);

const states = selected.map((a) => {
  const reason = typeof a[op] !== 'function' ? `adapter has no ${op} operation` : a.check(settings);
  return { adapter: a, status: reason ? 'skipped' : 'pending', reason, samples: [], warmup: [], version: null, command: null };
});

if (opt.list) {
  for (const s of states) console.log(`${s.adapter.name.padEnd(12)} ${s.reason ? `unavailable: ${s.reason}` : 'ok'}  - ${s.adapter.label}`);
  process.exit(0);
}

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
const expectedPaths = ['', ...corpusEntries.map((e) => e.path)];

for (const s of states) {
  const a = s.adapter;
  s.outFile = join(imageDir, `${a.name}.${a.ext}`);
  if (s.status === 'pending') {
    s.command = a[op](corpusDir, s.outFile, settings);
    s.commandLine = shJoin(s.command.argv);
    try { s.version = a.version?.() ?? null; } catch { s.version = null; }
  }
}

for (const s of states) {
  if (s.status === 'skipped') console.error(`skip ${s.adapter.name}: ${s.reason}`);
}
if (opt['dry-run']) {
  for (const s of states) if (s.commandLine) console.log(`${s.adapter.name}: ${s.commandLine}`);
  process.exit(0);
}

const machine = machineInfo({ outDir, repoDir: REPO_DIR }); // before any run, so load average is the idle-ness at start
if (machine.loadavgAtStart[0] > 0.5) console.error(`warning: 1-min load average is ${machine.loadavgAtStart[0]}; other processes will skew timings`);

process.on('SIGINT', () => { killCurrent(); console.error('\nbench: interrupted'); process.exit(130); });
process.on('SIGTERM', () => { killCurrent(); process.exit(143); });

// ---------------------------------------------------------------------------------------------
// Measurement

const active = () => states.filter((s) => s.status === 'pending');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Wait (up to waitIdleSec) until other processes use < 10% of one core over a 2 s window. */
async function waitIdle() {
  if (!waitIdleSec) return;
  const deadline = Date.now() + waitIdleSec * 1000;
  let said = false;
  for (;;) {
    const b0 = busyCpuSeconds();
    await sleep(2000);
    const used = busyCpuSeconds() - b0;
    if (!(used > 0.2) || Date.now() > deadline) {
      if (said) console.error(`  ${used > 0.2 ? 'still busy, going ahead' : 'idle'}`);
      return;
    }
    if (!said) { console.error(`  waiting for the machine to go idle (others use ${(used / 2 * 100).toFixed(0)}% of a core)...`); said = true; }
  }
}

async function runOnce(s, label) {
  rmSync(s.outFile, { force: true });
  spawnSync('sync'); // flush the previous run's dirty pages so they don't compete with this run
  await waitIdle();
  const busy0 = busyCpuSeconds();
  const r = await measure(s.command, { timeFile: join(tmpDir, `${s.adapter.name}.time`), timeoutSec });
  const busy = busyCpuSeconds() - busy0;
  let imageBytes = null;
  try { imageBytes = statSync(s.outFile).size; } catch { /* no output */ }
  const sample = {
    wallS: +r.wallS.toFixed(4), timeWallS: r.timeWallS, userS: r.userS, sysS: r.sysS,
    cpuS: +(r.userS + r.sysS).toFixed(2), maxRssKiB: r.maxRssKiB, imageBytes,
    // CPU time used by *other* processes on the machine while this run was going (noise indicator).
    otherCpuS: Number.isFinite(busy) ? +Math.max(0, busy - (r.userS + r.sysS)).toFixed(2) : null,
  };
  if (!r.ok || imageBytes === null) {
    s.status = 'failed';
    s.reason = r.timedOut ? `timed out after ${timeoutSec}s` : imageBytes === null && r.ok ? 'no output file' : `exit ${r.exitCode}${r.signal ? ` (${r.signal})` : ''}`;
    s.output = r.output;
    console.error(`  ${s.adapter.name} ${label}: FAILED (${s.reason})${r.output ? `\n${indent(r.output.slice(-3000))}` : ''}`);
    return null;
  }
  console.error(`  ${s.adapter.name.padEnd(11)} ${label.padEnd(9)} ${sample.wallS.toFixed(2).padStart(7)} s wall ` +
    `${sample.cpuS.toFixed(2).padStart(7)} s cpu ${(sample.maxRssKiB / 1024).toFixed(0).padStart(6)} MiB ${imageBytes.toLocaleString('en-US').padStart(13)} B` +
    (sample.otherCpuS > 0.5 ? `  (other processes: ${sample.otherCpuS.toFixed(1)} cpu s)` : ''));
  return sample;
}

function indent(text) { return text.split('\n').map((l) => `      | ${l}`).join('\n'); }

console.error(`\nsettings: ${JSON.stringify(settings)}; ${warmups} warm-up + ${runs} timed run(s) per adapter, interleaved`);
for (let w = 1; w <= warmups; w++) {
  for (const s of active()) { const smp = await runOnce(s, `warmup${warmups > 1 ? w : ''}`); if (smp) s.warmup.push(smp); }
}
for (let i = 1; i <= runs; i++) {
  for (const s of active()) { const smp = await runOnce(s, `run ${i}/${runs}`); if (smp) s.samples.push(smp); }
}
for (const s of active()) s.status = 'ok';

// Verification of the last image of each adapter.
for (const s of states.filter((x) => x.status === 'ok')) {
  const sizes = new Set(s.samples.map((x) => x.imageBytes));
  s.sizeStable = sizes.size === 1;
  if (opt['no-verify']) continue;
  s.verify = verifyImage(s.adapter.format, s.outFile, expectedPaths, settings);
  const v = s.verify;
  console.error(`verify ${s.adapter.name}: ${v.ok === null ? v.note : v.ok ? `ok (${v.entries} entries${v.compression ? `, ${v.compression}, block ${v.blockSize}` : ''})` : `PROBLEMS: ${v.problems.join('; ')}`}`);
}

// ---------------------------------------------------------------------------------------------
// Statistics and report

const median = (xs) => {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
for (const s of states.filter((x) => x.status === 'ok')) {
  const col = (k) => s.samples.map((x) => x[k]);
  s.median = {
    wallS: median(col('wallS')), cpuS: median(col('cpuS')), userS: median(col('userS')), sysS: median(col('sysS')),
    maxRssKiB: median(col('maxRssKiB')), imageBytes: median(col('imageBytes')),
  };
  s.wallRange = [Math.min(...col('wallS')), Math.max(...col('wallS'))];
}
const base = states.find((s) => s.adapter.name === opt.baseline && s.status === 'ok');
for (const s of states.filter((x) => x.status === 'ok')) {
  if (!base) continue;
  s.ratios = {
    wall: s.median.wallS / base.median.wallS,
    cpu: s.median.cpuS / base.median.cpuS,
    rss: s.median.maxRssKiB / base.median.maxRssKiB,
    size: s.median.imageBytes / base.median.imageBytes,
  };
}

const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '—');
const ratio = (x) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '—');
function table() {
  const head = ['tool', 'wall s (median)', 'wall min–max', 'CPU s (user+sys)', 'peak RSS MiB', 'image bytes',
    `time × ${opt.baseline}`, `RSS × ${opt.baseline}`, `size × ${opt.baseline}`];
  const rows = [head, head.map((h, i) => (i === 0 ? '---' : '---:'))];
  for (const s of states) {
    const name = s.adapter.name + (s.adapter.name === opt.baseline ? ' (baseline)' : '');
    if (s.status !== 'ok') { rows.push([name, `*${s.status}*`, '', '', '', '', '', '', '']); continue; }
    const m = s.median;
    rows.push([name, f2(m.wallS), `${f2(s.wallRange[0])}–${f2(s.wallRange[1])}`, f2(m.cpuS), (m.maxRssKiB / 1024).toFixed(1),
      Math.round(m.imageBytes).toLocaleString('en-US') + (s.sizeStable ? '' : ' (varies)'),
      ratio(s.ratios?.wall), ratio(s.ratios?.rss), ratio(s.ratios?.size)]);
  }
  return rows.map((r) => `| ${r.join(' | ')} |`).join('\n');
}
function notes() {
  const out = [];
  if (!base) out.push(`No ratios: baseline ${opt.baseline} did not run successfully in this run.`);
  for (const s of states) {
    if (s.status === 'skipped') out.push(`${s.adapter.name} skipped: ${s.reason}`);
    if (s.status === 'failed') out.push(`${s.adapter.name} failed: ${s.reason}`);
    if (s.status === 'ok' && !s.sizeStable) out.push(`${s.adapter.name}: image size differed between runs (${[...new Set(s.samples.map((x) => x.imageBytes))].join(', ')})`);
    const noisy = s.samples.filter((x) => x.otherCpuS > Math.max(0.5, 0.1 * x.wallS)); // timed runs only
    if (noisy.length) {
      const worst = Math.max(...noisy.map((x) => x.otherCpuS / x.wallS));
      out.push(`${s.adapter.name}: machine was busy during ${noisy.length} of ${s.samples.length} timed runs (other processes used up to ${(worst * 100).toFixed(0)}% of a core) - timings are not reliable`);
    }
    if (s.verify?.ok === false) out.push(`${s.adapter.name} verification problems: ${s.verify.problems.join('; ')}`);
  }
  return out;
}

const now = new Date();
const stamp = now.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
const invocation = `cd ${REPO_DIR} && ${shJoin(['node', relative(REPO_DIR, process.argv[1]), ...process.argv.slice(2)])}`;
const tbl = table();
const noteLines = notes();

console.log(`\n${tbl}`);
if (noteLines.length) console.log(`\n${noteLines.map((n) => `- ${n}`).join('\n')}`);

const jsonFile = join(outDir, `results-${stamp}.json`);
const result = {
  schema: 1,
  date: now.toISOString(),
  op,
  invocation,
  settings,
  runs, warmups,
  baseline: opt.baseline,
  machine,
  corpus: corpusInfo.custom
    ? { custom: true, tree: corpusDir, summary: corpusInfo.summary }
    : { version: corpusInfo.version, seed: corpusInfo.seed, tree: corpusInfo.tree, summary: corpusInfo.summary, categories: corpusInfo.categories, fingerprint: corpusInfo.fingerprint },
  results: states.map((s) => ({
    name: s.adapter.name, label: s.adapter.label, format: s.adapter.format, status: s.status, reason: s.reason ?? null,
    version: s.version, command: s.commandLine ?? null, outFile: s.outFile,
    median: s.median ?? null, wallRange: s.wallRange ?? null, ratios: s.ratios ?? null, sizeStable: s.sizeStable ?? null,
    samples: s.samples, warmup: s.warmup, verify: s.verify ?? null, output: s.status === 'failed' ? s.output : undefined,
  })),
  table: tbl,
  notes: noteLines,
};
writeFileSync(jsonFile, JSON.stringify(result, null, 2) + '\n');
console.error(`\nwrote ${relative(process.cwd(), jsonFile)}`);

if (!opt['no-record']) {
  const resultsMd = join(BENCH_DIR, 'RESULTS.md');
  const MARK = '<!-- results: newest first; sections are inserted below this line by bench/run.mjs -->';
  const header = `# Benchmark results\n\nProduced by \`node bench/run.mjs\` (see [README.md](README.md)). Each section is one run of the\nharness; ratios are relative to the baseline measured in that same run. Raw samples are in the\nJSON file named in each section (bench/out/, not committed).\n\n${MARK}\n`;
  let md = existsSync(resultsMd) ? readFileSync(resultsMd, 'utf8') : header;
  if (!md.includes(MARK)) md = `${md.trimEnd()}\n\n${MARK}\n`;
  const cs = corpusInfo.summary;
  const mib = (b) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  const section = [
    `## ${now.toISOString().slice(0, 16).replace('T', ' ')} UTC · ${op} · ${settings.comp} -${settings.level} · ${settings.blockSize / 1024} KiB blocks · ${runs} run${runs > 1 ? 's' : ''}`,
    '',
    `- Command: \`${invocation}\``,
    `- Machine: ${machine.cpuModel}; nproc ${machine.nproc}${machine.cgroupCpuMax && machine.cgroupCpuMax !== 'max 100000' ? ` (cgroup cpu.max ${machine.cgroupCpuMax})` : ''}; ${machine.memTotalGiB} GiB RAM; ${machine.kernel}; Node ${machine.node}; images written to ${machine.outDirFs ?? '?'}; repo ${machine.gitRev}${machine.srcDirty ? ' (src/ has uncommitted changes)' : ''}; load avg at start ${machine.loadavgAtStart.join(' ')}`,
    `- Tools: ${states.filter((s) => s.version).map((s) => `${s.adapter.name}: ${s.version}`).join('; ')}`,
    corpusInfo.custom
      ? `- Corpus: custom directory ${corpusDir}: ${cs.files} files, ${cs.bytes.toLocaleString('en-US')} bytes`
      : `- Corpus: v${corpusInfo.version} seed "${corpusInfo.seed}", ${cs.files} files, ${cs.dirs} dirs, ${cs.symlinks} symlinks, ${cs.bytes.toLocaleString('en-US')} bytes (${mib(cs.bytes)}); fingerprint \`${corpusInfo.fingerprint.slice(0, 16)}\``,
    `- Settings: ${JSON.stringify(settings)}; ${warmups} untimed warm-up + ${runs} timed run(s) per tool, interleaved; median reported`,
    '',
    tbl,
    '',
    ...noteLines.map((n) => `- ${n}`),
    ...(noteLines.length ? [''] : []),
    'Commands as run (each under `/usr/bin/time -f \'%e %M %U %S %x\'`):',
    '',
    ...states.filter((s) => s.commandLine).map((s) => `- ${s.adapter.name}: \`${s.commandLine}\``),
    '',
    `Raw data: \`${relative(REPO_DIR, jsonFile)}\``,
    '',
  ].join('\n');
  const at = md.indexOf(MARK) + MARK.length;
  md = `${md.slice(0, at)}\n\n${section}${md.slice(at).replace(/^\n+/, '\n')}`;
  writeFileSync(resultsMd, md.replace(/\n{3,}/g, '\n\n').trimEnd() + '\n');
  console.error(`added a section to ${relative(process.cwd(), resultsMd)}`);
}

process.exit(states.some((s) => s.status === 'failed') ? 1 : 0);
