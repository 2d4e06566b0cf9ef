#!/usr/bin/env node
// Incremental backup benchmark (issue #14): what a delta costs against a full backup, over the
// modelled link of bench/link.mjs, on a copy of the bench corpus in tmpfs, in one run:
//
//   1. full backup (the base)                  createBackup → s3Store, zstd
//   2. nothing changed                         createBackup({base: 'latest'})
//   3. 1 % of the files appended, +10, −10     createBackup({base: <the full backup's handle>}): layer 2
//   4. more edit sets like 3., each a delta over the previous one, up to an 8-layer chain; then the
//      chain's top and a full backup of the same tree are restored (restoreBackup) and compared
//   5. compactBackup of the chain (the full backup's data region copied on the server with UploadPartCopy), against
//      the full backup of the same tree
//   6. the reference at every backup checkpoint: mksquashfs, then a multipart upload of the whole
//      image (as link.mjs's reference backup); and its restore of the final image
//
// Every measured operation is one command under GNU time through the pacing proxy
// (bench/lib/link-proxy.mjs) in front of the lean in-memory S3 server (bench/lib/s3-lean-server.mjs);
// ours runs in bench/lib/incremental-ours.mjs, the reference's transfers in bench/lib/s3-ref-client.mjs.
// Bytes are counted by the proxy. Each run repeats the whole sequence on a fresh copy with the same
// seeded edits; medians are reported.
//
//   npm run build && node bench/incremental.mjs [--runs 3] [--layers 8] [--no-record]
//
// See bench/README.md ("Incremental backups") for the flags and the columns.
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { ensureCorpus, formatSummary, BENCH_DIR, REPO_DIR, DEFAULT_CORPUS_DIR, DEFAULT_SEED } from './corpus.mjs';
import { killCurrent, GNU_TIME } from './lib/measure.mjs';
import { machineInfo } from './lib/machine.mjs';
import { shJoin, which, capture } from './lib/shell.mjs';
import { timedRun, failureReason, indent, summarizeSamples, busyNote, median, f2, mib, markdownTable, processCpuS, parseResult, raisePriority } from './lib/harness.mjs';
import { compareTrees } from './lib/tree-compare.mjs';
import { startLeanS3 } from './lib/s3-lean-server.mjs';
import { startLinkProxy } from './lib/link-proxy.mjs';
import { prependResultsSection, repoRelative } from './lib/results-md.mjs';
import { applyEditSet } from './lib/incremental-edits.mjs';

const MB = 1e6;
const MiB = 1024 * 1024;
const OURS = fileURLToPath(new URL('./lib/incremental-ours.mjs', import.meta.url));
const REF_CLIENT = fileURLToPath(new URL('./lib/s3-ref-client.mjs', import.meta.url));
const DIST = process.env.BENCH_OURS_DIST || join(REPO_DIR, 'dist');
/** Issue #14's goals: shares of the full backup's bytes and time, and two time ratios. */
const GOALS = { unchangedBytes: 0.01, unchangedTime: 0.15, editBytes: 0.03, editTime: 0.2, chainRestore: 1.2, compact: 0.5 };
/** The edit set between two backups (3. and 4.): share of the files appended to, files added, files deleted. */
const EDITS = { modifyShare: 0.01, add: 10, remove: 10 };
/** createBackup's default maxChain (deltas on a full backup). */
const LIBRARY_MAX_CHAIN = 8;

const USAGE = `usage: node bench/incremental.mjs [options]

  --runs N            times the whole sequence runs, each on a fresh copy of the corpus (default 3); medians reported
  --layers N          layers of the chain that is restored and compacted: the full backup and N-1 deltas (default 8)
  --seed S            seed of the edit sets (default "incremental"); the same seed makes the same edits
  --up MBPS           link: upload rate shared by all connections, MB/s (10^6 B/s; default 25)
  --down MBPS         link: download rate shared by all connections (default 90)
  --per-conn MBPS     link: cap per connection and direction (default 16)
  --rtt MS            link: round-trip time, half each way (default 10)
  --level N           zstd level (default 3)
  --block-size N      block size in bytes (default 131072)
  --processors N      mksquashfs / unsquashfs -processors (default 2)
  --part-mib N        reference upload: part size in MiB (default 5); all parts go at once
  --ref-conns N       reference restore: ranged GETs at once (default 8)
  --range-mib N       reference restore: range size in MiB (default 8)
  --timeout S         kill one command after S seconds (default 900)
  --wait-idle S       before each command, wait up to S seconds for other processes to stop using CPU
  --no-verify         skip comparing the restored trees (and the compacted backup's) with the source (last run)
  --no-record         do not add a section to bench/RESULTS.md (JSON is still written)
  -h, --help`;

const { values: opt } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    layers: { type: 'string', default: '8' },
    seed: { type: 'string', default: 'incremental' },
    up: { type: 'string', default: '25' },
    down: { type: 'string', default: '90' },
    'per-conn': { type: 'string', default: '16' },
    rtt: { type: 'string', default: '10' },
    level: { type: 'string', default: '3' },
    'block-size': { type: 'string', default: '131072' },
    processors: { type: 'string', default: '2' },
    'part-mib': { type: 'string', default: '5' },
    'ref-conns': { type: 'string', default: '8' },
    'range-mib': { type: 'string', default: '8' },
    timeout: { type: 'string', default: '900' },
    'wait-idle': { type: 'string', default: '0' },
    'no-verify': { type: 'boolean', default: false },
    'no-record': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) { console.log(USAGE); process.exit(0); }

function die(msg) { console.error(`bench/incremental: ${msg}`); process.exit(2); }
function num(name, min, max, integer = true) {
  const v = Number(opt[name]);
  if (!Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min || v > max) die(`--${name} must be ${integer ? 'an integer' : 'a number'} in [${min}, ${max}], got ${opt[name]}`);
  return v;
}

const settings = {
  comp: 'zstd',
  level: num('level', 1, 22),
  blockSize: num('block-size', 4096, 1 << 20),
  processors: num('processors', 1, 1024),
  layers: num('layers', 2, 100),
  seed: opt.seed,
  edits: EDITS,
  refPartSize: num('part-mib', 5, 5120) * MiB,
  refConns: num('ref-conns', 1, 256),
  refRangeSize: num('range-mib', 1, 4096) * MiB,
};
if (settings.blockSize & (settings.blockSize - 1)) die('--block-size must be a power of two');
const rate = (name) => num(name, 0, 100_000, false) * MB;
const link = { up: rate('up'), down: rate('down'), perConn: rate('per-conn'), rttMs: num('rtt', 0, 10_000, false) };
const runs = num('runs', 1, 100);
const timeoutSec = num('timeout', 1, 86400);
const waitIdleSec = num('wait-idle', 0, 86400);
const mbps = (r) => (r ? `${+(r / MB).toFixed(1)}` : '∞');
const linkText = `${mbps(link.up)} MB/s up, ${mbps(link.down)} MB/s down shared, ${link.perConn ? `${mbps(link.perConn)} MB/s per connection` : 'no per-connection cap'}, RTT ${link.rttMs} ms`;

for (const [bin, hint] of [[GNU_TIME, 'apt-get install time'], ['mksquashfs', 'apt-get install squashfs-tools'], ['unsquashfs', 'apt-get install squashfs-tools'], ['bash', ''], ['cp', '']]) {
  if (!which(bin)) die(`${bin} is required${hint ? ` (${hint})` : ''}`);
}
if (!existsSync(join(DIST, 'node.js'))) die(`${relative(process.cwd(), join(DIST, 'node.js'))} not found - run \`npm run build\` (or npx tsup) first`);

// ---------------------------------------------------------------------------------------------
// Corpus, work directory (tmpfs), server and link. Everything started here is stopped by cleanup().

const startedAt = Date.now();
const corpusInfo = await ensureCorpus({ dir: DEFAULT_CORPUS_DIR, seed: DEFAULT_SEED });
const corpusDir = corpusInfo.tree;
console.error(formatSummary(corpusInfo));

const outDir = join(BENCH_DIR, 'out');
const tmpDir = join(outDir, 'tmp');
mkdirSync(tmpDir, { recursive: true });
const stamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
const machine = machineInfo({ outDir, repoDir: REPO_DIR }); // before anything runs: the load average is the idle-ness at start
if (machine.loadavgAtStart[0] > 0.5) console.error(`warning: 1-min load average is ${machine.loadavgAtStart[0]}; other processes will skew timings`);

const cleanups = [];
async function cleanup() {
  for (const fn of cleanups.splice(0).reverse()) { try { await fn(); } catch { /* best effort */ } }
}
const onSignal = (code) => async () => { killCurrent(); console.error('\nbench/incremental: interrupted'); await cleanup(); process.exit(code); };
process.on('SIGINT', onSignal(130));
process.on('SIGTERM', onSignal(143));

const work = mkdtempSync('/dev/shm/sqfs-incremental-');
cleanups.push(() => rmSync(work, { recursive: true, force: true }));
const tree = join(work, 'tree'); // what is backed up: a copy of the corpus, edited between backups
// Ours runs from a copy of the build taken now (as in link.mjs), so a rebuild of dist/ during the run
// cannot mix two builds in one table.
const distBuilt = statSync(join(DIST, 'node.js')).mtime.toISOString().slice(0, 19).replace('T', ' ');
const distCopy = join(tmpDir, `incremental-dist-${stamp}`);
cpSync(DIST, distCopy, { recursive: true, filter: (f) => !f.endsWith('.map') });
cleanups.push(() => rmSync(distCopy, { recursive: true, force: true }));
const oursEnv = { BENCH_OURS_DIST: distCopy };

const s3 = await startLeanS3();
cleanups.push(() => s3.close());
const proxy = await startLinkProxy({ target: { host: '127.0.0.1', port: s3.port }, ...link });
cleanups.push(() => proxy.close());
// As in link.mjs: the link (the proxy in this process, the server) runs at priority -10 over the
// measured tools, which are started back at nice 0 (root only).
const linkPriority = raisePriority([process.pid, s3.pid]);

/** CPU seconds the server child has used so far (it is not part of any measured command). */
const serverCpuS = () => processCpuS(s3.pid);

// ---------------------------------------------------------------------------------------------
// The commands: ours (one library call per process) and the reference pipelines of link.mjs.

const handleFile = (name) => join(work, `${name}.json`);
const readHandle = (name) => JSON.parse(readFileSync(handleFile(name), 'utf8'));
const oursArgs = (bucket) => ['--endpoint', proxy.url, '--bucket', bucket];
const ours = (args) => ({ argv: [process.execPath, OURS, ...args], env: oursEnv });
// The chain must not outgrow createBackup's maxChain; beyond the default it is raised to fit.
const maxChainArgs = settings.layers - 1 > LIBRARY_MAX_CHAIN ? ['--max-chain', String(settings.layers - 1)] : [];

const COMMANDS = {
  /** createBackup of the tree: a full backup, or a delta over `base` ('latest' or a handle's name). */
  backup: (bucket, name, base) => ours(['backup', ...oursArgs(bucket), '--dir', tree, '--handle', handleFile(name),
    ...(base ? ['--base', base === 'latest' ? base : handleFile(base), ...maxChainArgs] : []),
    '--level', String(settings.level), '--block-size', String(settings.blockSize)]),
  restore: (bucket, name, target) => ours(['restore', ...oursArgs(bucket), '--handle', handleFile(name), '--dir', target]),
  compact: (bucket, name, out) => ours(['compact', ...oursArgs(bucket), '--handle', handleFile(name), '--out', handleFile(out)]),
  /** mksquashfs into tmpfs, then all parts of a multipart upload at once. */
  refBackup: (bucket, file) => {
    const mk = ['mksquashfs', tree, file, '-comp', 'zstd', '-Xcompression-level', String(settings.level), '-b', String(settings.blockSize),
      '-processors', String(settings.processors), '-noappend', '-no-progress', '-quiet'];
    const put = [process.execPath, REF_CLIENT, 'put', '--url', `${proxy.url}/${bucket}/ref.sqfs`, '--file', file, '--part-size', String(settings.refPartSize)];
    return { argv: ['bash', '-c', `set -e; ${shJoin(mk)}; ${shJoin(put)}`] };
  },
  /** Ranged GETs into tmpfs, then unsquashfs. */
  refRestore: (bucket, file, target) => {
    const get = [process.execPath, REF_CLIENT, 'get', '--url', `${proxy.url}/${bucket}/ref.sqfs`, '--out', file,
      '--concurrency', String(settings.refConns), '--range-size', String(settings.refRangeSize)];
    const un = ['unsquashfs', '-processors', String(settings.processors), '-no-progress', '-quiet', '-d', target, file];
    return { argv: ['bash', '-c', `set -e; ${shJoin(get)}; ${shJoin(un)}`] };
  },
};

// ---------------------------------------------------------------------------------------------
// One measured command: under GNU time, at the tools' priority, with the link's and the server's
// counts for it alone. Samples are kept per case id; a failure is recorded and returns null.

const samples = {}; // case id -> samples of the timed runs
const commandLines = {}; // case id -> the first run's command line
const failures = [];
const problems = [];
const verified = {}; // case id -> compareTrees() of its restored tree (last run)
let anyFailed = false;

async function run(id, command, label) {
  commandLines[id] ??= command.argv[0] === 'bash' ? command.argv[2] : shJoin(command.argv);
  let server0 = 0;
  await s3.resetStats();
  const { r, sample } = await timedRun(atToolPriority(command), {
    timeFile: join(tmpDir, `incremental-${id}.time`), timeoutSec, waitIdleSec,
    onStart: () => { proxy.mark(); server0 = serverCpuS(); },
  });
  const serverCpu = serverCpuS() - server0;
  const traffic = proxy.stats();
  Object.assign(sample, {
    upBytes: traffic.up.bytes, downBytes: traffic.down.bytes, connections: traffic.connections,
    serverCpuS: Number.isFinite(serverCpu) ? +serverCpu.toFixed(2) : null,
    server: await s3.stats().catch(() => null),
    result: parseResult(command.argv[0] === 'bash' ? 'REF-RESULT' : 'OURS-RESULT', r.output),
  });
  if (Number.isFinite(serverCpu) && sample.otherCpuS !== null) sample.otherCpuS = +Math.max(0, sample.otherCpuS - serverCpu).toFixed(2);
  if (!r.ok) {
    const reason = failureReason(r, timeoutSec);
    failures.push({ id, reason, output: r.output.slice(-3000) });
    console.error(`  ${id.padEnd(16)} FAILED (${reason})\n${indent(r.output.slice(-3000))}`);
    anyFailed = true;
    return null;
  }
  (samples[id] ??= []).push(sample);
  console.error(`  ${id.padEnd(16)} ${sample.wallS.toFixed(2).padStart(6)} s wall ${sample.cpuS.toFixed(2).padStart(6)} s cpu ` +
    `${(sample.maxRssKiB / 1024).toFixed(0).padStart(5)} MiB  ${(sample.upBytes / MB).toFixed(3).padStart(8)} MB up ${(sample.downBytes / MB).toFixed(3).padStart(8)} MB down  ${label}` +
    (sample.otherCpuS > 0.5 ? `  (other processes: ${sample.otherCpuS.toFixed(1)} cpu s)` : ''));
  return sample;
}

/** Notes a problem found (once per text) and makes the exit status 1. */
function problem(text) {
  if (!problems.includes(text)) problems.push(text);
  console.error(`    PROBLEM: ${text}`);
  anyFailed = true;
}

/** Checks that a backup is what was asked for: a full backup, or a delta over `baseName`'s backup with a chain of `chainLength`. */
function checkBackup(id, name, baseName, chainLength) {
  const h = readHandle(name);
  const wantBase = baseName ? readHandle(baseName).id : undefined;
  const chain = h.chain ?? [h.id];
  if (h.base !== wantBase || chain.length !== chainLength) {
    problem(`${id}: asked for ${baseName ? `a delta over ${baseName} (chain of ${chainLength})` : 'a full backup'}, got ${h.base ? `a delta over ${h.base} (chain of ${chain.length})` : 'a full backup'}${h.warnings.length ? `; warnings: ${h.warnings.join('; ')}` : ''}`);
  }
  return h;
}

/** Compares a restored tree with the source, then removes it. */
function verifyTree(id, target, verify) {
  if (verify) {
    const v = compareTrees(tree, target);
    verified[id] = v;
    if (v.ok) console.error(`    verified: ${v.entries} entries, metadata and contents equal to the source`);
    else problem(`${id}: the restored tree differs from the source: ${v.problems.join('; ')}`);
  }
  rmSync(target, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// The sequence, once per run. A failure of ours ends the run (what follows needs its backups);
// a failure of the reference is recorded and the run goes on.

class RunFailed extends Error {}
const need = (sample) => { if (!sample) throw new RunFailed(); return sample; };
const layerIds = Array.from({ length: settings.layers - 1 }, (_, i) => i + 2); // layer 1 is the full backup
const edits = {}; // layer -> the edit set made before it (the same in every run)

console.error(`\n== link ${linkText}; proxy 127.0.0.1:${proxy.port} -> server 127.0.0.1:${s3.port}; ${runs} run(s) of the whole sequence; work dir ${work}`);
for (let round = 1; round <= runs; round++) {
  const verify = round === runs && !opt['no-verify'];
  const bucket = `ours-${round}`;
  let refBucket = 0;
  /**
   * The reference at a checkpoint, into a bucket of its own that is dropped after, unless `keep`: then
   * the bucket is returned (null if the run failed) and its image is what the reference restores.
   */
  const reference = async (id, keep = false) => {
    const b = `ref-${round}-${++refBucket}`;
    const file = join(work, 'ref.sqfs');
    rmSync(file, { force: true });
    const s = await run(`ref-${id}`, COMMANDS.refBackup(b, file), 'reference: mksquashfs, then multipart PUT');
    if (s) s.imageBytes = statSync(file).size;
    rmSync(file, { force: true });
    if (keep && s) return b;
    await s3.dropBucket(b);
    return null;
  };
  const backup = async (id, label, base, chainLength) => {
    rmSync(handleFile(id), { force: true });
    const s = need(await run(id, COMMANDS.backup(bucket, id, base), label));
    s.imageBytes = checkBackup(id, id, base === 'latest' ? 'full' : base, chainLength).size;
    return s;
  };

  console.error(`\n-- run ${round}/${runs}: copying the corpus to ${tree}`);
  rmSync(tree, { recursive: true, force: true });
  const cp = spawnSync('cp', ['-a', `${corpusDir}/.`, tree], { encoding: 'utf8' });
  if (cp.status !== 0) die(`cp -a ${corpusDir} ${tree} failed: ${cp.stderr}`);
  let keptRef = null; // the reference's image of the final tree
  try {
    // 1. The full backup, the base of everything after it.
    await backup('full', 'ours: full backup (the base)', undefined, 1);
    await reference('full');
    // 2. Nothing changed: a delta over the newest backup of the tree, the full one.
    await backup('unchanged', "ours: nothing changed, base 'latest'", 'latest', 2);
    await reference('unchanged');
    // 3. and 4. An edit set, then a delta over the previous layer; layer 2 is checkpoint 3.
    let top = 'full';
    for (const layer of layerIds) {
      const id = `layer-${layer}`;
      edits[layer] = applyEditSet(tree, { seed: `${settings.seed}:${layer}`, tag: `incremental-edit-${layer}`, ...EDITS });
      await backup(id, `ours: delta over ${top} after edit set ${layer - 1}`, top, layer);
      const kept = await reference(id, layer === settings.layers);
      keptRef ??= kept;
      top = id;
    }
    // 4. Restores of the same final tree: the chain's top, a full backup of it, the reference's image.
    await backup('final-full', 'ours: full backup of the final tree', undefined, 1);
    const target = join(work, 'restored');
    rmSync(target, { recursive: true, force: true });
    need(await run('restore-chain', COMMANDS.restore(bucket, top, target), `ours: restore of the ${settings.layers}-layer chain`));
    verifyTree('restore-chain', target, verify);
    need(await run('restore-full', COMMANDS.restore(bucket, 'final-full', target), 'ours: restore of the full backup of the final tree'));
    verifyTree('restore-full', target, verify);
    const refFile = join(work, 'ref-restore.sqfs');
    if (keptRef) {
      if (await run('ref-restore', COMMANDS.refRestore(keptRef, refFile, target), 'reference: ranged GETs, then unsquashfs')) verifyTree('ref-restore', target, verify);
      rmSync(target, { recursive: true, force: true });
      rmSync(refFile, { force: true });
    }
    // 5. Compaction of the chain into one full backup.
    rmSync(handleFile('compact'), { force: true });
    const compacted = need(await run('compact', COMMANDS.compact(bucket, top, 'compact'), `ours: compactBackup of the ${settings.layers}-layer chain`));
    compacted.imageBytes = checkBackup('compact', 'compact', undefined, 1).size;
    if (verify) {
      // What it wrote, restored untimed straight from the server (not through the link).
      const r = spawnSync(process.execPath, [OURS, 'restore', '--endpoint', s3.url, '--bucket', bucket, '--handle', handleFile('compact'), '--dir', target],
        { encoding: 'utf8', env: { ...process.env, ...oursEnv } });
      if (r.status === 0) verifyTree('compact', target, verify);
      else problem(`compact: restoring the compacted backup failed: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}`);
    }
  } catch (err) {
    if (!(err instanceof RunFailed)) throw err;
    console.error(`  run ${round} ended early: ours failed`);
    break;
  } finally {
    await s3.dropBucket(bucket);
    if (keptRef) await s3.dropBucket(keptRef);
  }
}
await cleanup();
const tookS = (Date.now() - startedAt) / 1000;

// ---------------------------------------------------------------------------------------------
// Report: the backups at each checkpoint against the full one and the reference, then the
// restores and the compaction, with the issue's goals.

const med = {}; // case id -> medians (wallS, cpuS, maxRssKiB, upBytes, downBytes, imageBytes) and the wall range
for (const [id, xs] of Object.entries(samples)) {
  const s = summarizeSamples(xs, ['upBytes', 'downBytes', 'imageBytes']);
  med[id] = { ...s.median, wallRange: s.wallRange, runs: xs.length };
}
const get = (id, key) => med[id]?.[key] ?? NaN;
const s2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '—');
const mb = (bytes) => (Number.isFinite(bytes) ? (bytes < 0.1 * MB ? (bytes / MB).toFixed(4) : (bytes / MB).toFixed(1)) : '—');
const pct = (x) => (Number.isFinite(x) ? `${(x * 100).toFixed(x < 0.01 ? 3 : 1)}%` : '—');
const verdict = (x, limit) => (x <= limit ? '✓ met' : '✗ not met');
const asPct = (x, limit) => (Number.isFinite(x) ? `${pct(x)} ${verdict(x, limit)}` : '—');
const asTimes = (x, limit) => (Number.isFinite(x) ? `${x.toFixed(2)}× ${verdict(x, limit)}` : '—');
const range = (id) => (med[id] ? `${f2(med[id].wallRange[0])}–${f2(med[id].wallRange[1])}` : '');
const describeEdits = (e) => (e ? `${e.modified} of ${e.files} files appended to (${mb(e.modifiedBytes)} MB), ${e.added} added, ${e.deleted} deleted` : '');

const fullUp = get('full', 'upBytes');
const fullWall = get('full', 'wallS');
const checkpoints = [
  { n: '1', id: 'full', change: 'the corpus (full backup)' },
  { n: '2', id: 'unchanged', change: "nothing (base 'latest')", goals: { bytes: GOALS.unchangedBytes, time: GOALS.unchangedTime } },
  ...layerIds.map((layer) => ({
    n: layer === 2 ? '3' : '4', id: `layer-${layer}`, change: `layer ${layer}: ${describeEdits(edits[layer])}`,
    goals: layer === 2 ? { bytes: GOALS.editBytes, time: GOALS.editTime } : null,
  })),
];
const backupRows = [['#', 'change since the base / the previous layer', 'ours wall s (median)', 'ours wall min–max', 'ours MB up', 'ours MB down', 'ours image MB',
  'bytes up × full', 'time × full', 'ours CPU s', 'ours peak RSS MiB', 'reference wall s', 'reference MB up', 'ours / reference time']];
for (const c of checkpoints) {
  const up = get(c.id, 'upBytes'), wall = get(c.id, 'wallS');
  const isFull = c.id === 'full';
  backupRows.push([c.n, c.change, f2(wall), range(c.id), mb(up), mb(get(c.id, 'downBytes')), mb(get(c.id, 'imageBytes')),
    isFull ? '100%' : c.goals ? asPct(up / fullUp, c.goals.bytes) : pct(up / fullUp),
    isFull ? '100%' : c.goals ? asPct(wall / fullWall, c.goals.time) : pct(wall / fullWall),
    f2(get(c.id, 'cpuS')), mib(get(c.id, 'maxRssKiB')), f2(get(`ref-${c.id}`, 'wallS')), mb(get(`ref-${c.id}`, 'upBytes')),
    `${s2(wall / get(`ref-${c.id}`, 'wallS'))}×`]);
}
// The chain as a whole: its backups (the full one and each delta) against a full image each time.
const chainIds = ['full', ...layerIds.map((l) => `layer-${l}`)];
const total = (prefix, key) => chainIds.reduce((sum, id) => sum + get(`${prefix}${id}`, key), 0);
backupRows.push(['', `all ${settings.layers} backups of the chain (layers 1–${settings.layers}), summed`, f2(total('', 'wallS')), '', mb(total('', 'upBytes')), mb(total('', 'downBytes')), mb(total('', 'imageBytes')),
  '', '', f2(total('', 'cpuS')), '', f2(total('ref-', 'wallS')), mb(total('ref-', 'upBytes')), `${s2(total('', 'wallS') / total('ref-', 'wallS'))}× (bytes ${s2(total('', 'upBytes') / total('ref-', 'upBytes'))}×)`]);

const restoreRatio = get('restore-chain', 'wallS') / get('restore-full', 'wallS');
const compactRatio = get('compact', 'wallS') / get('final-full', 'wallS');
const opRows = [['operation (the final tree)', 'wall s (median)', 'wall min–max', 'CPU s', 'peak RSS MiB', 'MB down', 'MB up', 'image(s) MB', 'ratio (goal)']];
const opRow = (id, label, imageBytes, ratioText) => opRows.push([label, f2(get(id, 'wallS')), range(id), f2(get(id, 'cpuS')), mib(get(id, 'maxRssKiB')),
  mb(get(id, 'downBytes')), mb(get(id, 'upBytes')), mb(imageBytes), ratioText]);
opRow('restore-chain', `restore: ours, the top of the ${settings.layers}-layer chain`, total('', 'imageBytes'), `× ours full: ${asTimes(restoreRatio, GOALS.chainRestore)} (goal ≤ ${GOALS.chainRestore}×)`);
opRow('restore-full', 'restore: ours, a full backup of the same tree', get('final-full', 'imageBytes'), '1.00×');
opRow('ref-restore', 'restore: reference, ranged GETs then unsquashfs of its full image', get(`ref-layer-${settings.layers}`, 'imageBytes'), `× ours full: ${s2(get('ref-restore', 'wallS') / get('restore-full', 'wallS'))}×`);
opRow('final-full', 'backup: ours, a full backup of the same tree', get('final-full', 'imageBytes'), '1.00×');
opRow('compact', `compaction: ours, compactBackup of the ${settings.layers}-layer chain`, get('compact', 'imageBytes'), `× ours full: ${asTimes(compactRatio, GOALS.compact)} (goal ≤ ${GOALS.compact}×)`);

const unchangedBytes = get('unchanged', 'upBytes') / fullUp, unchangedTime = get('unchanged', 'wallS') / fullWall;
const editBytes = get('layer-2', 'upBytes') / fullUp, editTime = get('layer-2', 'wallS') / fullWall;
// The later edit sets have no goal of their own; how they fare against 3.'s goals tells whether 3. was typical.
const later = layerIds.slice(1).map((l) => ({ bytes: get(`layer-${l}`, 'upBytes') / fullUp, time: get(`layer-${l}`, 'wallS') / fullWall }));
const spread = (xs) => `${pct(Math.min(...xs))}–${pct(Math.max(...xs))}`;
const goalLines = [
  `**2. nothing changed**: bytes up ${pct(unchangedBytes)} of the full backup's: ${verdict(unchangedBytes, GOALS.unchangedBytes)} (goal ≤ ${pct(GOALS.unchangedBytes)}); time ${pct(unchangedTime)}: ${verdict(unchangedTime, GOALS.unchangedTime)} (goal ≤ ${pct(GOALS.unchangedTime)})`,
  `**3. 1 % appended, +${EDITS.add}, −${EDITS.remove}**: bytes up ${pct(editBytes)}: ${verdict(editBytes, GOALS.editBytes)} (goal ≤ ${pct(GOALS.editBytes)}); time ${pct(editTime)}: ${verdict(editTime, GOALS.editTime)} (goal ≤ ${pct(GOALS.editTime)})`,
  ...(later.length ? [`**4. the later edit sets** (layers 3–${settings.layers}, no goal of their own): bytes up ${spread(later.map((x) => x.bytes))}, time ${spread(later.map((x) => x.time))} of the full backup's; ` +
    `3.'s goals met by ${later.filter((x) => x.bytes <= GOALS.editBytes).length} of ${later.length} (bytes) and ${later.filter((x) => x.time <= GOALS.editTime).length} of ${later.length} (time)`] : []),
  ...(later.length ? [(() => {
    // Each edit set is a draw of 3.'s case (1 % of the files, chosen at random): all of them, beside the first.
    const all = [{ bytes: editBytes, time: editTime }, ...later];
    return `**3. over all ${all.length} draws** (edit sets 1–${all.length}): bytes up median ${pct(median(all.map((x) => x.bytes)))}, time median ${pct(median(all.map((x) => x.time)))}; ` +
      `goals met by ${all.filter((x) => x.bytes <= GOALS.editBytes).length} of ${all.length} (bytes) and ${all.filter((x) => x.time <= GOALS.editTime).length} of ${all.length} (time)`;
  })()] : []),
  `**4. restore of the ${settings.layers}-layer chain / of a full backup of the same tree**: ${asTimes(restoreRatio, GOALS.chainRestore)} (goal ≤ ${GOALS.chainRestore}×)`,
  `**5. compaction / full backup of the same data**: ${asTimes(compactRatio, GOALS.compact)} (goal ≤ ${GOALS.compact}×)`,
];

const notes = [];
const linkLimitS = (bytes) => bytes / Math.min(link.up || Infinity, link.perConn ? link.perConn * Math.max(1, Math.ceil(bytes / settings.refPartSize)) : Infinity);
notes.push(`bytes are counted by the link proxy: everything the command sent up (HTTP requests with their headers and bodies: image parts, the handle's .json, list and range requests) and received down (a delta reads its base chain's metadata by range)`);
const compactOps = samples.compact?.at(-1)?.server?.byOp ?? {};
notes.push(`upload link limit of a full image (${mb(get('final-full', 'imageBytes'))} MB at ${mbps(link.up)} MB/s): ${f2(linkLimitS(get('final-full', 'imageBytes')))} s; the compaction sent ${mb(get('compact', 'upBytes'))} MB of its ${mb(get('compact', 'imageBytes'))} MB image (${compactOps['copy-part']?.requests ?? 0} parts copied on the server with UploadPartCopy from the full backup's data region, which it fetched ${mb(get('compact', 'downBytes'))} MB to hash); CPU of the compaction / of the full backup: ${s2(get('compact', 'cpuS') / get('final-full', 'cpuS'))}×`);
{
  const first = edits[2];
  if (first?.largestModified) {
    notes.push(`floor of 3.'s bytes: a layer holds each changed file whole (overlayfs copies up whole files), so no delta of an edit set is smaller than its changed files compressed; edit set 1 appended to ${mb(first.modifiedBytes)} MB of files, the largest ${first.largestModified.path} (${mb(first.largestModified.size)} MB, ${pct(first.largestModified.size / fullUp)} of the full backup's bytes up)`);
  }
}
notes.push(`compacted image ${Number.isFinite(get('compact', 'imageBytes')) ? `${get('compact', 'imageBytes').toLocaleString('en-US')} bytes` : '—'}, full backup of the same tree ${Number.isFinite(get('final-full', 'imageBytes')) ? `${get('final-full', 'imageBytes').toLocaleString('en-US')} bytes` : '—'}`);
for (const layer of layerIds) {
  const e = edits[layer];
  if (e?.largestModified) notes.push(`edit set ${layer - 1} (layer ${layer}): largest file appended to: ${e.largestModified.path} (${mb(e.largestModified.size)} MB); added ${mb(e.addedBytes)} MB, deleted ${mb(e.deletedBytes)} MB`);
}
for (const id of ['unchanged', 'layer-2', 'restore-chain', 'compact']) {
  const last = samples[id]?.at(-1);
  const byOp = last?.server?.byOp;
  if (byOp) notes.push(`${id}, requests (last run): ${Object.entries(byOp).map(([k, v]) => `${v.requests} ${k}`).join(', ')}; ${last.connections} connection(s); Node start and library load ${last.result?.loadedMs ?? '?'} ms of ${last.result?.doneMs ?? '?'} ms in the process`);
}
for (const [id, v] of Object.entries(verified)) if (v.ok) notes.push(`${id}: last run verified (${v.entries} entries, metadata and contents equal to the source)`);
for (const id of Object.keys(samples)) { const b = busyNote(id, samples[id]); if (b) notes.push(b); }
for (const f of failures) notes.push(`${f.id} failed: ${f.reason}`);
notes.push(...problems.map((p) => `problem: ${p}`));
notes.push(`the link model runs ${linkPriority ? 'at priority -10 over the tools (nice 0)' : `at the tools' priority (not root), sharing the ${machine.nproc} cores`}; S3 server CPU during the full backup (median): ${f2(median(samples.full?.map((x) => x.serverCpuS) ?? []))} s`);
notes.push(`the script took ${(tookS / 60).toFixed(1)} min (${runs} run${runs > 1 ? 's' : ''} of the sequence, verification included)`);

const backupTable = markdownTable(backupRows, ['l', 'l']);
const opTable = markdownTable(opRows, ['l']);
const text = `Backups at each checkpoint (link: ${linkText}):\n\n${backupTable}\n\nRestore and compaction of the final tree:\n\n${opTable}\n\n` +
  `${goalLines.map((l) => `- ${l}`).join('\n')}\n\n${notes.map((n) => `- ${n}`).join('\n')}`;
console.log(`\n${text}`);

// ---------------------------------------------------------------------------------------------
// Recording: bench/out/results-<time>-incremental.json and a section at the top of bench/RESULTS.md.

const invocation = repoRelative(shJoin(['node', relative(REPO_DIR, fileURLToPath(import.meta.url)), ...process.argv.slice(2)]));
const tools = [
  capture(['mksquashfs', '-version']).split('\n')[0],
  capture(['unsquashfs', '-version']).split('\n')[0],
  `ours: node ${process.version}, ${DIST}/node.js built ${distBuilt} UTC (run from a copy taken at the start)`,
];
const jsonFile = join(outDir, `results-${stamp}-incremental.json`);
writeFileSync(jsonFile, repoRelative(JSON.stringify({
  schema: 1, date: new Date().toISOString(), op: 'incremental', invocation, settings, link, runs, goals: GOALS, machine, tookS,
  corpus: { version: corpusInfo.version, seed: corpusInfo.seed, summary: corpusInfo.summary, fingerprint: corpusInfo.fingerprint },
  tools, commands: commandLines, edits, medians: med, samples, failures, problems, verified,
  tables: { backups: backupTable, operations: opTable }, goalLines, notes,
}, null, 2)) + '\n');
console.error(`\nwrote ${relative(process.cwd(), jsonFile)}`);

if (!opt['no-record']) {
  const cs = corpusInfo.summary;
  const section = [
    `## ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC · incremental backups over a link · zstd -${settings.level} · ${settings.blockSize / 1024} KiB blocks · ${settings.layers}-layer chain · ${runs} run${runs > 1 ? 's' : ''}`,
    '',
    `- Command: \`${invocation}\``,
    `- Machine: ${machine.cpuModel}; nproc ${machine.nproc}; ${machine.memTotalGiB} GiB RAM; ${machine.kernel}; Node ${machine.node}; tree, work files and restores in tmpfs; repo ${machine.gitRev}${machine.srcDirty ? ' (src/ has uncommitted changes)' : ''}; load avg at start ${machine.loadavgAtStart.join(' ')}${machine.droppedEnv.length ? `; ${machine.droppedEnv.join(', ')} unset for every measured command` : ''}`,
    `- Tools: ${tools.join('; ')}`,
    `- Corpus: v${corpusInfo.version} seed "${corpusInfo.seed}", ${cs.files} files, ${cs.dirs} dirs, ${cs.symlinks} symlinks, ${cs.bytes.toLocaleString('en-US')} bytes; fingerprint \`${corpusInfo.fingerprint.slice(0, 16)}\`; copied to tmpfs at the start of each run, edited with seed "${settings.seed}"`,
    `- Link: ${linkText}: a pacing TCP proxy on 127.0.0.1 (bench/lib/link-proxy.mjs) in front of a lean in-memory S3 server in a child process (bench/lib/s3-lean-server.mjs); MB = 10^6 bytes`,
    `- Settings: ${JSON.stringify(settings)}; ${runs} run(s) of the whole sequence; median reported`,
    '',
    backupTable,
    '',
    opTable,
    '',
    ...goalLines.map((l) => `- ${l}`),
    ...notes.map((n) => `- ${n}`),
    '',
    'Commands as run in the first run (each under `/usr/bin/time -f \'%e %M %U %S %x\'`; `bash -c` for the reference pipelines):',
    '',
    ...Object.entries(commandLines).map(([id, c]) => `- ${id}: \`${c}\``),
    '',
    `Raw data: \`${relative(REPO_DIR, jsonFile)}\``,
    '',
  ].join('\n');
  prependResultsSection(section);
  console.error(`added a section to ${relative(process.cwd(), join(BENCH_DIR, 'RESULTS.md'))}`);
}
process.exit(anyFailed ? 1 : 0);

/** The measured command at the ordinary priority (nice 0), below the link's -10 that it would inherit from this process. */
function atToolPriority(command) {
  return linkPriority ? { ...command, argv: ['nice', '-n', '10', ...command.argv] } : command;
}

