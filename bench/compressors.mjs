#!/usr/bin/env node
// lz4, lz4 high compression and xz: ours against mksquashfs on the corpus, in one run, on the same cores.
//
//   npm run build && node bench/compressors.mjs [--runs 3] [--wait-idle 120] [--only lz4,lz4hc,xz]
//
// For each pair (mksquashfs -comp lz4 / ours --comp lz4; mksquashfs -comp lz4 -Xhc / ours --comp lz4
// --level 9; mksquashfs -comp xz / ours --comp xz) both tools pack the corpus, interleaved round by
// round (pair by pair, mksquashfs then ours), each under GNU time: wall time, CPU, peak RSS and image
// size, as ratios to mksquashfs in the same pair, checked against the goals of issue 17. The last
// image of each is verified (paths, compressor, block size; -Xhc must show). Plain lz4 also runs its
// floor (bench/lib/lz4-floor.mjs, unless --no-floor): the least a Node program must do for it (walk,
// read, liblz4 on the same worker threads, write; no SquashFS), to show how much of the time is ours.
// Writes bench/out/results-<time>-compressors.json and a section at the top of bench/RESULTS.md.
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureCorpus, formatSummary, walkTree, BENCH_DIR, REPO_DIR, DEFAULT_CORPUS_DIR, DEFAULT_SEED } from './corpus.mjs';
import { timedRun, failureReason, summarizeSamples, busyNote, f2, ratio, mib, markdownTable, indent } from './lib/harness.mjs';
import { machineInfo } from './lib/machine.mjs';
import { GNU_TIME, killCurrent } from './lib/measure.mjs';
import { prependResultsSection, repoRelative } from './lib/results-md.mjs';
import { capture, shJoin, which } from './lib/shell.mjs';
import { verifyImage } from './lib/verify.mjs';

const { values: opt } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    only: { type: 'string', default: 'lz4,lz4hc,xz' },
    'hc-level': { type: 'string', default: '9' },
    'xz-level': { type: 'string', default: '6' },
    processors: { type: 'string', default: '2' },
    'block-size': { type: 'string', default: '131072' },
    timeout: { type: 'string', default: '1800' },
    'wait-idle': { type: 'string', default: '0' },
    'no-record': { type: 'boolean', default: false },
    'dry-run': { type: 'boolean', default: false },
    'no-floor': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  console.log('usage: node bench/compressors.mjs [--runs N] [--warmup N] [--only lz4,lz4hc,xz] [--hc-level 9] [--xz-level 6]\n' +
    '         [--processors 2] [--block-size 131072] [--wait-idle S] [--timeout S] [--no-floor] [--no-record] [--dry-run]');
  process.exit(0);
}
const die = (message) => { console.error(`bench: ${message}`); process.exit(2); };
const int = (name, min, max) => {
  const v = Number(opt[name]);
  if (!Number.isInteger(v) || v < min || v > max) die(`--${name} must be an integer in [${min}, ${max}], got ${opt[name]}`);
  return v;
};
const runs = int('runs', 1, 100);
const warmups = int('warmup', 0, 10);
const processors = int('processors', 1, 1024);
const blockSize = int('block-size', 4096, 1 << 20);
const timeoutSec = int('timeout', 1, 86400);
const waitIdleSec = int('wait-idle', 0, 86400);
const hcLevel = int('hc-level', 3, 12);
const xzLevel = int('xz-level', 0, 9);

const CLI = join(REPO_DIR, 'dist/cli.js');
const common = ['-b', String(blockSize), '-processors', String(processors), '-noappend', '-no-progress', '-quiet'];
const ours = (extra) => [process.execPath, CLI, 'pack', '{corpus}', '{image}', '--block-size', String(blockSize), '--processors', String(processors), ...extra];
/** The pairs, each with the goals of issue 17 (time and size as ratios to mksquashfs). */
const PAIRS = [
  { name: 'lz4', label: 'lz4', goal: { time: 1.5, size: 1.02 }, reference: ['-comp', 'lz4'], ours: ours(['--comp', 'lz4']), show: null },
  { name: 'lz4hc', label: 'lz4 -Xhc', goal: { time: 1.0, size: 1.02 }, reference: ['-comp', 'lz4', '-Xhc'], ours: ours(['--comp', 'lz4', '--level', String(hcLevel)]), show: /-Xhc/ },
  { name: 'xz', label: 'xz', goal: { time: 1.2, size: 1.02 }, reference: ['-comp', 'xz'], ours: ours(['--comp', 'xz', '--level', String(xzLevel)]), show: null },
];
const wanted = opt.only.split(',').map((s) => s.trim()).filter(Boolean);
for (const w of wanted) if (!PAIRS.some((p) => p.name === w)) die(`--only: unknown pair ${w} (known: ${PAIRS.map((p) => p.name).join(', ')})`);
const pairs = PAIRS.filter((p) => wanted.includes(p.name));

const outDir = join(BENCH_DIR, 'out');
const imageDir = join(outDir, 'images');
const tmpDir = join(outDir, 'tmp');
mkdirSync(imageDir, { recursive: true });
mkdirSync(tmpDir, { recursive: true });

const tools = [];
for (const pair of pairs) {
  // Beside plain lz4, the floor: the least a Node program must do for it (bench/lib/lz4-floor.mjs, no SquashFS at all).
  for (const tool of pair.name === 'lz4' && !opt['no-floor'] ? ['mksquashfs', 'ours', 'floor'] : ['mksquashfs', 'ours']) {
    const image = join(imageDir, `compressors-${pair.name}-${tool}.${tool === 'floor' ? 'lz4' : 'sqfs'}`);
    const argv = tool === 'mksquashfs'
      ? ['mksquashfs', '{corpus}', image, ...pair.reference, ...common]
      : tool === 'floor'
        ? [process.execPath, join(BENCH_DIR, 'lib/lz4-floor.mjs'), '{corpus}', image, '--processors', String(processors), '--block-size', String(blockSize)]
        : pair.ours.map((a) => (a === '{image}' ? image : a));
    tools.push({ pair, tool, image, argv, samples: [], warmup: [], status: 'pending' });
  }
}

if (opt['dry-run']) {
  for (const t of tools) console.log(`${t.pair.name} ${t.tool}: ${shJoin(t.argv)}`);
  process.exit(0);
}
if (!which(GNU_TIME)) die(`${GNU_TIME} (GNU time) is required for peak RSS (apt-get install time)`);
if (!which('mksquashfs')) die('mksquashfs is required (apt-get install squashfs-tools)');
try { statSync(CLI); } catch { die(`${CLI} is missing: run npm run build first`); }

const manifest = await ensureCorpus({ dir: DEFAULT_CORPUS_DIR, seed: DEFAULT_SEED });
console.error(formatSummary(manifest));
const corpusDir = manifest.tree;
const expectedPaths = ['', ...walkTree(corpusDir).map((e) => e.path)];
for (const t of tools) t.argv = t.argv.map((a) => (a === '{corpus}' ? corpusDir : a));

const machine = machineInfo({ outDir, repoDir: REPO_DIR });
if (machine.loadavgAtStart[0] > 0.5) console.error(`warning: 1-min load average is ${machine.loadavgAtStart[0]}; other processes will skew timings`);
process.on('SIGINT', () => { killCurrent(); console.error('\nbench: interrupted'); process.exit(130); });

async function runOnce(t, label) {
  const { r, sample } = await timedRun({ argv: t.argv }, {
    timeFile: join(tmpDir, `compressors-${t.pair.name}-${t.tool}.time`), timeoutSec, waitIdleSec,
    before: () => rmSync(t.image, { force: true }),
  });
  let imageBytes = null;
  try { imageBytes = statSync(t.image).size; } catch { /* no output */ }
  sample.imageBytes = imageBytes;
  if (!r.ok || imageBytes === null) {
    t.status = 'failed';
    t.reason = r.ok ? 'no output file' : failureReason(r, timeoutSec);
    console.error(`  ${t.pair.name} ${t.tool} ${label}: FAILED (${t.reason})${r.output ? `\n${indent(r.output.slice(-3000))}` : ''}`);
    return null;
  }
  console.error(`  ${t.pair.label.padEnd(9)} ${t.tool.padEnd(10)} ${label.padEnd(9)} ${sample.wallS.toFixed(2).padStart(7)} s wall ` +
    `${sample.cpuS.toFixed(2).padStart(7)} s cpu ${(sample.maxRssKiB / 1024).toFixed(0).padStart(5)} MiB ${imageBytes.toLocaleString('en-US').padStart(12)} B` +
    (sample.otherCpuS > 0.5 ? `  (other processes: ${sample.otherCpuS.toFixed(1)} cpu s)` : ''));
  return sample;
}

console.error(`\n== compressors: ${pairs.map((p) => p.label).join(', ')}; ${blockSize / 1024} KiB blocks, ${processors} processors; ${warmups} warm-up + ${runs} timed run(s) each, interleaved`);
const active = () => tools.filter((t) => t.status === 'pending');
for (let w = 1; w <= warmups; w++) for (const t of active()) { const s = await runOnce(t, 'warmup'); if (s) t.warmup.push(s); }
for (let i = 1; i <= runs; i++) for (const t of active()) { const s = await runOnce(t, `run ${i}/${runs}`); if (s) t.samples.push(s); }
for (const t of active()) t.status = 'ok';

const notes = [];
for (const t of tools.filter((x) => x.status === 'ok')) {
  Object.assign(t, summarizeSamples(t.samples, ['imageBytes']));
  if (t.tool === 'floor') continue; // its output is lz4 blocks, not an image
  t.verify = verifyImage('squashfs', t.image, expectedPaths, { comp: t.pair.name === 'lz4hc' ? 'lz4' : t.pair.name, blockSize });
  if (t.pair.show) {
    const stats = capture(['unsquashfs', '-s', t.image]);
    if (!t.pair.show.test(stats)) t.verify.problems.push(`unsquashfs -s does not show ${t.pair.show}`), (t.verify.ok = false);
  }
  if (!t.verify.ok) notes.push(`${t.pair.label} ${t.tool} verification problems: ${t.verify.problems.join('; ')}`);
  const busy = busyNote(`${t.pair.label} ${t.tool}`, t.samples);
  if (busy) notes.push(busy);
  if (new Set(t.samples.map((s) => s.imageBytes)).size > 1) notes.push(`${t.pair.label} ${t.tool}: image size differed between runs`);
}

const rows = [['pair', 'tool', 'wall s (median)', 'wall min–max', 'CPU s', 'peak RSS MiB', 'image bytes', 'time ×', 'RSS ×', 'size ×', 'goal']];
const summary = [];
for (const pair of pairs) {
  const [ref, our, floor] = ['mksquashfs', 'ours', 'floor'].map((tool) => tools.find((t) => t.pair === pair && t.tool === tool));
  for (const t of floor ? [ref, our, floor] : [ref, our]) {
    if (t.status !== 'ok') { rows.push([pair.label, t.tool, `*${t.status}*`, '', '', '', '', '', '', '', '']); continue; }
    const m = t.median;
    const base = ref.status === 'ok' ? ref.median : undefined;
    const r = base && { time: m.wallS / base.wallS, rss: m.maxRssKiB / base.maxRssKiB, size: m.imageBytes / base.imageBytes };
    let goal = '';
    if (t === our && r) {
      const met = { time: r.time <= pair.goal.time, size: r.size <= pair.goal.size };
      goal = `time ≤ ${pair.goal.time.toFixed(1)} ${met.time ? '✓' : '✗'}, size ≤ ${pair.goal.size.toFixed(2)} ${met.size ? '✓' : '✗'}`;
      summary.push({ pair: pair.name, ratios: r, goal: pair.goal, met });
      t.ratios = r;
    }
    if (t === floor) {
      t.ratios = r && { time: r.time, rss: r.rss };
      rows.push([pair.label, 'floor (Node, no SquashFS)', f2(m.wallS), `${f2(t.wallRange[0])}–${f2(t.wallRange[1])}`, f2(m.cpuS), mib(m.maxRssKiB),
        `(${Math.round(m.imageBytes).toLocaleString('en-US')} of lz4 blocks)`, r ? ratio(r.time) : '', r ? ratio(r.rss) : '', '', '']);
      continue;
    }
    rows.push([pair.label, t === ref ? 'mksquashfs (baseline)' : 'ours', f2(m.wallS), `${f2(t.wallRange[0])}–${f2(t.wallRange[1])}`, f2(m.cpuS), mib(m.maxRssKiB),
      Math.round(m.imageBytes).toLocaleString('en-US'), r ? ratio(r.time) : '', r ? ratio(r.rss) : '', r ? ratio(r.size) : '', goal]);
  }
}
// Each round ran the pair back to back: their time ratio round by round shows what the medians hide.
for (const pair of pairs) {
  const [ref, our] = ['mksquashfs', 'ours'].map((tool) => tools.find((t) => t.pair === pair && t.tool === tool));
  if (ref.status !== 'ok' || our.status !== 'ok') continue;
  const perRound = our.samples.map((s, i) => (ref.samples[i] ? `${(s.wallS / ref.samples[i].wallS).toFixed(2)}×` : '—'));
  notes.push(`${pair.label}: time ratio round by round ${perRound.join(', ')}`);
  const floor = tools.find((t) => t.pair === pair && t.tool === 'floor');
  if (floor?.status === 'ok') {
    const floorRounds = floor.samples.map((s, i) => (ref.samples[i] ? `${(s.wallS / ref.samples[i].wallS).toFixed(2)}×` : '—'));
    notes.push(`${pair.label} floor (bench/lib/lz4-floor.mjs: walk, read, liblz4 on ${processors} worker threads, write; no SquashFS): time ratio round by round ${floorRounds.join(', ')}`);
  }
}
const table = markdownTable(rows);
console.log(`\n${table}${notes.length ? `\n\n${notes.map((n) => `- ${n}`).join('\n')}` : ''}`);

const invocation = repoRelative(shJoin(['node', relative(REPO_DIR, process.argv[1]), ...process.argv.slice(2)]));
const now = new Date();
const stamp = now.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
const jsonFile = join(outDir, `results-${stamp}-compressors.json`);
writeFileSync(jsonFile, repoRelative(JSON.stringify({
  schema: 1, date: now.toISOString(), op: 'compressors', invocation, runs, warmups, processors, blockSize, hcLevel, xzLevel, machine,
  corpus: { version: manifest.version, seed: manifest.seed, summary: manifest.summary, fingerprint: manifest.fingerprint },
  results: tools.map((t) => ({ pair: t.pair.name, tool: t.tool, command: shJoin(t.argv), status: t.status, reason: t.reason ?? null, median: t.median ?? null, wallRange: t.wallRange ?? null, ratios: t.ratios ?? null, samples: t.samples, warmup: t.warmup, verify: t.verify ?? null })),
  summary, table, notes,
}, null, 2)) + '\n');
console.error(`\nwrote ${relative(process.cwd(), jsonFile)}`);

if (!opt['no-record']) {
  const cs = manifest.summary;
  prependResultsSection([
    `## ${now.toISOString().slice(0, 16).replace('T', ' ')} UTC · compressors: ${pairs.map((p) => p.label).join(', ')} vs mksquashfs · ${blockSize / 1024} KiB blocks · ${runs} run${runs > 1 ? 's' : ''}`,
    '',
    `- Command: \`${invocation}\``,
    `- Machine: ${machine.cpuModel}; nproc ${machine.nproc}; ${machine.memTotalGiB} GiB RAM; ${machine.kernel}; Node ${machine.node}; repo ${machine.gitRev}${machine.srcDirty ? ' (src/ has uncommitted changes)' : ''}; load avg at start ${machine.loadavgAtStart.join(' ')}`,
    `- Tools: ${capture(['mksquashfs', '-version']).split('\n')[0]}; ours: node dist/cli.js (lz4 -Xhc is ours --level ${hcLevel}, xz level ${xzLevel})`,
    `- Corpus: v${manifest.version} seed "${manifest.seed}", ${cs.files} files, ${cs.bytes.toLocaleString('en-US')} bytes; fingerprint \`${manifest.fingerprint.slice(0, 16)}\``,
    `- ${processors} processors for both tools; ${warmups} untimed warm-up + ${runs} timed run(s) per tool, interleaved; median reported; ratios to mksquashfs in the same pair`,
    `- Raw samples: \`${relative(REPO_DIR, jsonFile)}\``,
    '',
    table,
    ...(notes.length ? ['', ...notes.map((n) => `- ${n}`)] : []),
    '',
    'Commands as run (each under `/usr/bin/time -f \'%e %M %U %S %x\'`):',
    '',
    ...tools.map((t) => `- ${t.pair.label} ${t.tool}: \`${shJoin(t.argv)}\``),
    '',
  ].join('\n'));
}
process.exit(tools.some((t) => t.status === 'failed') ? 1 : 0);
