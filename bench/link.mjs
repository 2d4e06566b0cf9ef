#!/usr/bin/env node
// End-to-end network benchmark (issue #13): backup to and restore from S3-compatible object storage
// over a modelled network link, ours against the reference pipelines, in one run:
//
//   ours backup        createBackup → s3Store, zstd, in a child process (bench/lib/link-ours.mjs)
//   reference backup   mksquashfs into tmpfs, then a multipart upload with all parts at once
//   ours restore       restoreBackup(handle, {store, dir}) into tmpfs, in a child process
//   reference restore  ranged GETs (8 at once, 8 MiB each) into tmpfs, then unsquashfs
//   link limit         image bytes / the rate the link gives that direction
//
// The link is a pacing TCP proxy on 127.0.0.1 (bench/lib/link-proxy.mjs) in front of a lean
// in-memory S3 endpoint in a child process (bench/lib/s3-lean-server.mjs); the reference transfers
// are bench/lib/s3-ref-client.mjs. Every measured thing is one command under GNU time (wall, CPU,
// peak RSS of that tool alone), runs are interleaved, medians are reported.
//
//   npm run build && node bench/link.mjs [--link model|gbit|both] [--runs 3] [--only backup|restore]
//
// See bench/README.md ("Backup and restore over a link") for the flags and the columns.
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { ensureCorpus, formatSummary, summarize, walkTree, BENCH_DIR, REPO_DIR, DEFAULT_CORPUS_DIR, DEFAULT_SEED } from './corpus.mjs';
import { measure, killCurrent, GNU_TIME } from './lib/measure.mjs';
import { machineInfo } from './lib/machine.mjs';
import { shJoin, which, capture } from './lib/shell.mjs';
import { timedRun, failureReason, indent, summarizeSamples, busyNote, median, f2, ratio, mib, markdownTable, processCpuS, parseResult, raisePriority } from './lib/harness.mjs';
import { verifyImage } from './lib/verify.mjs';
import { compareTrees } from './lib/tree-compare.mjs';
import { startLeanS3 } from './lib/s3-lean-server.mjs';
import { startLinkProxy } from './lib/link-proxy.mjs';
import { prependResultsSection, repoRelative } from './lib/results-md.mjs';

const MB = 1e6;
const MiB = 1024 * 1024;
const OURS = fileURLToPath(new URL('./lib/link-ours.mjs', import.meta.url));
const REF_CLIENT = fileURLToPath(new URL('./lib/s3-ref-client.mjs', import.meta.url));
const DIST = process.env.BENCH_OURS_DIST || join(REPO_DIR, 'dist');
/** Issue #13's goals. */
const GOALS = { backupVsRef: 0.85, backupVsLink: 1.25, restoreVsRef: 0.85 };

const USAGE = `usage: node bench/link.mjs [options]

  --link L            model (default link: --up/--down shared, --per-conn per connection), gbit
                      (125 MB/s each way, no per-connection cap) or both (default both)
  --up MBPS           model link: upload rate shared by all connections, MB/s (10^6 B/s; default 25; 0 = no cap)
  --down MBPS         model link: download rate shared by all connections (default 90)
  --per-conn MBPS     model link: cap per connection and direction (default 16)
  --rtt MS            round-trip time added to every byte, half each way (default 10; both links)
  --only OP           backup or restore (default both)
  --runs N            timed runs of each case, interleaved (default 3); median and range reported
  --warmup N          untimed runs of each case first (default 0)
  --level N           zstd level (default 3)
  --block-size N      block size in bytes (default 131072)
  --processors N      mksquashfs / unsquashfs -processors (default 2)
  --part-mib N        reference upload: part size in MiB (default 5, the minimum); all parts go at once
  --ref-conns N       reference restore: ranged GETs at once (default 8)
  --range-mib N       reference restore: range size in MiB (default 8)
  --corpus DIR        back up DIR instead of the generated corpus
  --timeout S         kill one run after S seconds (default 900)
  --wait-idle S       before each run, wait up to S seconds for other processes to stop using CPU
  --profile           run ours with --cpu-prof (profiles in bench/out/profiles/; slows ours down)
  --no-verify         skip checking the uploaded images and the restored trees (last run)
  --no-record         do not add a section to bench/RESULTS.md (JSON is still written)
  -h, --help`;

const { values: opt } = parseArgs({
  options: {
    link: { type: 'string', default: 'both' },
    up: { type: 'string', default: '25' },
    down: { type: 'string', default: '90' },
    'per-conn': { type: 'string', default: '16' },
    rtt: { type: 'string', default: '10' },
    only: { type: 'string' },
    runs: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '0' },
    level: { type: 'string', default: '3' },
    'block-size': { type: 'string', default: '131072' },
    processors: { type: 'string', default: '2' },
    'part-mib': { type: 'string', default: '5' },
    'ref-conns': { type: 'string', default: '8' },
    'range-mib': { type: 'string', default: '8' },
    corpus: { type: 'string' },
    timeout: { type: 'string', default: '900' },
    'wait-idle': { type: 'string', default: '0' },
    profile: { type: 'boolean', default: false },
    'no-verify': { type: 'boolean', default: false },
    'no-record': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) { console.log(USAGE); process.exit(0); }

function die(msg) { console.error(`bench/link: ${msg}`); process.exit(2); }
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
  rttMs: num('rtt', 0, 10_000, false),
  refPartSize: num('part-mib', 5, 5120) * MiB,
  refConns: num('ref-conns', 1, 256),
  refRangeSize: num('range-mib', 1, 4096) * MiB,
};
if (settings.blockSize & (settings.blockSize - 1)) die('--block-size must be a power of two');
const runs = num('runs', 1, 1000);
const warmups = num('warmup', 0, 100);
const timeoutSec = num('timeout', 1, 86400);
const waitIdleSec = num('wait-idle', 0, 86400);
const rate = (name) => num(name, 0, 100_000, false) * MB;

/** The links: rates in bytes/s, 0 = no cap. */
const LINKS = {
  model: { name: 'model', up: rate('up'), down: rate('down'), perConn: rate('per-conn') },
  gbit: { name: 'gbit', up: 125 * MB, down: 125 * MB, perConn: 0 },
};
const linkArg = opt.link === 'default' ? 'model' : opt.link;
if (!['model', 'gbit', 'both'].includes(linkArg)) die(`--link must be model, gbit or both, got ${opt.link}`);
const links = linkArg === 'both' ? [LINKS.model, LINKS.gbit] : [LINKS[linkArg]];
const mbps = (r) => (r ? `${+(r / MB).toFixed(1)}` : '∞');
const describeLink = (l) => `${l.name}: ${mbps(l.up)} MB/s up, ${mbps(l.down)} MB/s down shared, ${l.perConn ? `${mbps(l.perConn)} MB/s per connection` : 'no per-connection cap'}, RTT ${settings.rttMs} ms`;

if (opt.only && !['backup', 'restore'].includes(opt.only)) die(`--only must be backup or restore, got ${opt.only}`);
const ops = opt.only ? [opt.only] : ['backup', 'restore'];

for (const [bin, hint] of [[GNU_TIME, 'apt-get install time'], ['mksquashfs', 'apt-get install squashfs-tools'], ['unsquashfs', 'apt-get install squashfs-tools'], ['bash', '']]) {
  if (!which(bin)) die(`${bin} is required${hint ? ` (${hint})` : ''}`);
}
if (!existsSync(join(DIST, 'node.js'))) die(`${relative(process.cwd(), join(DIST, 'node.js'))} not found - run \`npm run build\` (or npx tsup) first`);

// ---------------------------------------------------------------------------------------------
// Corpus, work directory (tmpfs), server. Everything started here is stopped by cleanup().

let corpusDir, corpusInfo;
if (opt.corpus) {
  corpusDir = resolve(opt.corpus);
  if (!existsSync(corpusDir) || !statSync(corpusDir).isDirectory()) die(`--corpus ${corpusDir} is not a directory`);
  corpusInfo = { custom: true, summary: summarize(walkTree(corpusDir)) };
} else {
  corpusInfo = await ensureCorpus({ dir: DEFAULT_CORPUS_DIR, seed: DEFAULT_SEED });
  corpusDir = corpusInfo.tree;
  console.error(formatSummary(corpusInfo));
}
const expectedPaths = ['', ...walkTree(corpusDir).map((e) => e.path)];

const outDir = join(BENCH_DIR, 'out');
const tmpDir = join(outDir, 'tmp');
mkdirSync(tmpDir, { recursive: true });
const stamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
const profileDir = join(outDir, 'profiles', `link-${stamp}`);
if (opt.profile) mkdirSync(profileDir, { recursive: true });
const machine = machineInfo({ outDir, repoDir: REPO_DIR }); // before anything runs: the load average is the idle-ness at start
if (machine.loadavgAtStart[0] > 0.5) console.error(`warning: 1-min load average is ${machine.loadavgAtStart[0]}; other processes will skew timings`);

const cleanups = [];
async function cleanup() {
  for (const fn of cleanups.splice(0).reverse()) { try { await fn(); } catch { /* best effort */ } }
}
const onSignal = (code) => async () => { killCurrent(); console.error('\nbench/link: interrupted'); await cleanup(); process.exit(code); };
process.on('SIGINT', onSignal(130));
process.on('SIGTERM', onSignal(143));

const work = mkdtempSync('/dev/shm/sqfs-link-');
cleanups.push(() => rmSync(work, { recursive: true, force: true }));
// Ours runs from a copy of the build taken now, so a rebuild of dist/ during the run (src/ is being
// worked on) cannot mix two builds in one table. The copy stays inside the repository, where Node
// finds the package's dependencies in node_modules.
const distBuilt = statSync(join(DIST, 'node.js')).mtime.toISOString().slice(0, 19).replace('T', ' ');
const distCopy = join(tmpDir, `link-dist-${stamp}`);
cpSync(DIST, distCopy, { recursive: true, filter: (f) => !f.endsWith('.map') });
cleanups.push(() => rmSync(distCopy, { recursive: true, force: true }));
const oursEnv = { BENCH_OURS_DIST: distCopy };
const s3 = await startLeanS3();
// The link is a network, not a program on our cores: the proxy (in this process) and the server run at
// a higher priority than the tools measured, so the 2 cores the tools share do not slow the link down.
// (Root only; elsewhere the priorities stay as they are, and the report says so.)
const linkPriority = raisePriority([process.pid, s3.pid]);
cleanups.push(() => s3.close());

/** CPU seconds the server child has used so far (it is not part of any measured command). */
const serverCpuS = () => processCpuS(s3.pid);

const nodeArgv = (script, args) => [process.execPath, ...(opt.profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []), script, ...args];
const objectUrl = (base, bucket, key) => `${base}/${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;

// ---------------------------------------------------------------------------------------------
// The restore input: one backup by ours, made directly against the server (not through the link),
// untimed. Both restores read this same object, so they move the same bytes.

let restoreInput = null;
const notes = [];
let anyFailed = false;
if (ops.includes('restore')) {
  const handleFile = join(work, 'restore-input.json');
  const argv = [process.execPath, OURS, 'backup', '--endpoint', s3.url, '--bucket', 'restore-input', '--dir', corpusDir, '--handle', handleFile,
    '--level', String(settings.level), '--block-size', String(settings.blockSize)];
  console.error(`\n== restore input (untimed, straight to the server): ${shJoin(argv)}`);
  const r = await measure({ argv, env: oursEnv }, { timeFile: join(tmpDir, 'link-input.time'), timeoutSec });
  if (!r.ok) {
    console.error(`  FAILED (${failureReason(r, timeoutSec)})\n${indent(r.output.slice(-3000))}`);
    await cleanup();
    process.exit(1);
  }
  const handle = JSON.parse(readFileSync(handleFile, 'utf8'));
  restoreInput = { handleFile, key: handle.key, bytes: handle.size, command: shJoin(argv) };
  if (!opt['no-verify']) {
    const file = join(work, 'restore-input.sqfs');
    writeFileSync(file, await s3.getObject('restore-input', handle.key));
    restoreInput.verify = verifyImage('squashfs', file, expectedPaths, settings);
    rmSync(file);
    if (restoreInput.verify.ok === false) notes.push(`restore input: image problems: ${restoreInput.verify.problems.join('; ')}`);
  }
  console.error(`  ${handle.size.toLocaleString('en-US')} bytes at ${handle.key}${restoreInput.verify?.ok ? `, verified (${restoreInput.verify.entries} entries)` : ''}`);
}

// ---------------------------------------------------------------------------------------------
// The four cases. Each gives a command for one run and checks what it left behind.

let bucketSeq = 0;
const CASES = [
  {
    id: 'ours-backup', op: 'backup', tool: 'ours', dir: 'up',
    label: 'ours: createBackup → s3Store',
    command(link) {
      this.bucket = `backup-${++bucketSeq}`;
      this.handleFile = join(work, 'ours-backup.json');
      return {
        argv: nodeArgv(OURS, ['backup', '--endpoint', link.url, '--bucket', this.bucket, '--dir', corpusDir, '--handle', this.handleFile,
          '--level', String(settings.level), '--block-size', String(settings.blockSize)]),
        env: oursEnv,
      };
    },
    before() { rmSync(this.handleFile, { force: true }); },
    async after(sample, verify) {
      const handle = JSON.parse(readFileSync(this.handleFile, 'utf8'));
      sample.imageBytes = handle.size;
      if (verify) {
        const file = join(work, 'verify.sqfs');
        const body = await s3.getObject(this.bucket, handle.key);
        writeFileSync(file, body ?? Buffer.alloc(0));
        this.verify = body?.length === handle.size
          ? verifyImage('squashfs', file, expectedPaths, settings)
          : { ok: false, problems: [`stored object is ${body?.length ?? 'missing'} bytes, the handle says ${handle.size}`] };
        rmSync(file, { force: true });
      }
      await s3.dropBucket(this.bucket);
    },
  },
  {
    id: 'ref-backup', op: 'backup', tool: 'reference', dir: 'up',
    label: 'reference: mksquashfs, then multipart PUT (all parts at once)',
    command(link) {
      this.bucket = `backup-${++bucketSeq}`;
      this.file = join(work, 'ref-backup.sqfs');
      const mk = ['mksquashfs', corpusDir, this.file, '-comp', 'zstd', '-Xcompression-level', String(settings.level), '-b', String(settings.blockSize),
        '-processors', String(settings.processors), '-noappend', '-no-progress', '-quiet'];
      const put = [process.execPath, REF_CLIENT, 'put', '--url', objectUrl(link.url, this.bucket, 'ref.sqfs'), '--file', this.file, '--part-size', String(settings.refPartSize)];
      return { argv: ['bash', '-c', `set -e; ${shJoin(mk)}; ${shJoin(put)}`] };
    },
    before() { rmSync(this.file, { force: true }); },
    async after(sample, verify) {
      sample.imageBytes = statSync(this.file).size;
      if (verify) {
        const body = await s3.getObject(this.bucket, 'ref.sqfs');
        this.verify = body && body.equals(readFileSync(this.file))
          ? verifyImage('squashfs', this.file, expectedPaths, settings)
          : { ok: false, problems: [`the stored object (${body?.length ?? 'missing'} bytes) differs from the file mksquashfs made`] };
      }
      rmSync(this.file, { force: true });
      await s3.dropBucket(this.bucket);
    },
  },
  {
    id: 'ours-restore', op: 'restore', tool: 'ours', dir: 'down',
    label: 'ours: restoreBackup ← s3Store',
    command(link) {
      this.target = join(work, 'ours-restore');
      return { argv: nodeArgv(OURS, ['restore', '--endpoint', link.url, '--bucket', 'restore-input', '--handle', restoreInput.handleFile, '--dir', this.target]), env: oursEnv };
    },
    before() { rmSync(this.target, { recursive: true, force: true }); },
    async after(sample, verify) {
      sample.imageBytes = restoreInput.bytes;
      if (verify) this.verify = compareTrees(corpusDir, this.target);
      rmSync(this.target, { recursive: true, force: true });
    },
  },
  {
    id: 'ref-restore', op: 'restore', tool: 'reference', dir: 'down',
    label: `reference: ranged GETs (${settings.refConns} at once), then unsquashfs`,
    command(link) {
      this.target = join(work, 'ref-restore');
      this.file = join(work, 'ref-restore.sqfs');
      const get = [process.execPath, REF_CLIENT, 'get', '--url', objectUrl(link.url, 'restore-input', restoreInput.key), '--out', this.file,
        '--concurrency', String(settings.refConns), '--range-size', String(settings.refRangeSize)];
      const un = ['unsquashfs', '-processors', String(settings.processors), '-no-progress', '-quiet', '-d', this.target, this.file];
      return { argv: ['bash', '-c', `set -e; ${shJoin(get)}; ${shJoin(un)}`] };
    },
    before() { rmSync(this.target, { recursive: true, force: true }); rmSync(this.file, { force: true }); },
    async after(sample, verify) {
      sample.imageBytes = restoreInput.bytes;
      if (verify) this.verify = compareTrees(corpusDir, this.target);
      rmSync(this.target, { recursive: true, force: true });
      rmSync(this.file, { force: true });
    },
  },
].filter((c) => ops.includes(c.op));

/**
 * The rate a direction of the link gives a client with `conns` connections (bytes/s; Infinity if
 * uncapped): the shared cap or the per-connection cap times the connections, whichever binds.
 */
function linkRate(link, dir, conns) {
  return Math.min(link[dir] || Infinity, link.perConn ? link.perConn * conns : Infinity);
}
/** Connections the reference uses, so the link limit is what a well-parallelised client can reach. */
function refConns(op, bytes) {
  return op === 'backup' ? Math.max(1, Math.ceil(bytes / settings.refPartSize)) : Math.min(settings.refConns, Math.max(1, Math.ceil(bytes / settings.refRangeSize)));
}

// ---------------------------------------------------------------------------------------------
// Runs: per link, rounds of all cases interleaved (A B C D A B C D ...).

const results = [];
for (const link of links) {
  const proxy = await startLinkProxy({ target: { host: '127.0.0.1', port: s3.port }, up: link.up, down: link.down, perConn: link.perConn, rttMs: settings.rttMs });
  const closeProxy = () => proxy.close();
  cleanups.push(closeProxy);
  const L = { ...link, url: proxy.url };
  console.error(`\n== link ${describeLink(link)}; proxy 127.0.0.1:${proxy.port} -> server 127.0.0.1:${s3.port}; ${warmups} warm-up + ${runs} timed run(s) per case, interleaved`);
  const states = CASES.map((c) => ({ c: Object.create(c), samples: [], warmup: [], status: 'ok', commandLine: null }));

  for (let round = 1 - warmups; round <= runs; round++) {
    const label = round < 1 ? 'warm-up' : `run ${round}/${runs}`;
    for (const s of states.filter((x) => x.status === 'ok')) {
      const command = s.c.command(L);
      s.commandLine ??= command.argv[0] === 'bash' ? command.argv[2] : shJoin(command.argv);
      let server0 = 0, self0 = null;
      await s3.resetStats(); // the server's request counts are per run
      const { r, sample } = await timedRun(atToolPriority(command), {
        timeFile: join(tmpDir, `link-${s.c.id}.time`), timeoutSec, waitIdleSec,
        before: () => s.c.before(),
        onStart: () => { proxy.mark(); server0 = serverCpuS(); self0 = process.cpuUsage(); },
      });
      const self = process.cpuUsage(self0);
      const serverCpu = serverCpuS() - server0;
      const linkStats = proxy.stats();
      const main = linkStats[s.c.dir];
      Object.assign(sample, {
        linkBytes: main.bytes, firstByteS: main.firstS, lastByteS: main.lastS,
        connections: linkStats.connections, maxOpen: linkStats.maxOpen,
        // The harness (the proxy) and the server are not part of the measured command: their CPU is
        // recorded, and the server's is not counted as "other processes".
        proxyCpuS: +((self.user + self.system) / 1e6).toFixed(2),
        serverCpuS: Number.isFinite(serverCpu) ? +serverCpu.toFixed(2) : null,
        bins: { ms: linkStats.binMs, up: linkStats.up.bins, down: linkStats.down.bins },
        server: await s3.stats().catch(() => null),
        client: parseResult(s.c.tool === 'ours' ? 'OURS-RESULT' : 'REF-RESULT', r.output),
      });
      if (Number.isFinite(serverCpu) && sample.otherCpuS !== null) sample.otherCpuS = +Math.max(0, sample.otherCpuS - serverCpu).toFixed(2);
      if (!r.ok) {
        s.status = 'failed';
        s.reason = failureReason(r, timeoutSec);
        s.output = r.output;
        console.error(`  ${s.c.id.padEnd(13)} ${label}: FAILED (${s.reason})\n${indent(r.output.slice(-3000))}`);
        await s.c.after(sample, false).catch(() => undefined);
        anyFailed = true;
        continue;
      }
      const verify = round === runs && !opt['no-verify'];
      try { await s.c.after(sample, verify); } catch (err) { s.c.verify = { ok: false, problems: [`checking the result failed: ${err.message}`] }; }
      (round < 1 ? s.warmup : s.samples).push(sample);
      console.error(`  ${s.c.id.padEnd(13)} ${label.padEnd(9)} ${sample.wallS.toFixed(2).padStart(6)} s wall ${sample.cpuS.toFixed(2).padStart(6)} s cpu ` +
        `${(sample.maxRssKiB / 1024).toFixed(0).padStart(5)} MiB  ${(sample.linkBytes / MB).toFixed(1)} MB ${s.c.dir} from ${f2(sample.firstByteS)} to ${f2(sample.lastByteS)} s` +
        (sample.otherCpuS > 0.5 ? `  (other processes: ${sample.otherCpuS.toFixed(1)} cpu s)` : ''));
      if (verify && s.c.verify) {
        if (s.c.verify.ok === false) { console.error(`    verification PROBLEMS: ${s.c.verify.problems.join('; ')}`); anyFailed = true; }
        else console.error(`    verified (${s.c.verify.entries} entries)`);
      }
    }
  }
  await proxy.close();
  cleanups.splice(cleanups.indexOf(closeProxy), 1);
  results.push({ link, states });
}
await cleanup();

// ---------------------------------------------------------------------------------------------
// Report: one table per link, the issue's ratios with their goals, notes on where time goes.

const TIMELINE_MS = 500;
/** A run's link use as MB/s per TIMELINE_MS, from the proxy's 100 ms bins (shows idle stretches). */
function timeline(sample, dir) {
  const { ms, [dir]: bins } = sample.bins;
  const per = Math.round(TIMELINE_MS / ms);
  const out = [];
  for (let i = 0; i < bins.length; i += per) out.push(Math.round(bins.slice(i, i + per).reduce((a, b) => a + b, 0) / MB / (TIMELINE_MS / 1000)));
  return out.join(' ');
}
const mark = (x, goal) => (Number.isFinite(x) ? `${x.toFixed(2)}× ${x <= goal ? '✓' : '✗'}` : '—');
const s1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '—');
const tables = [];
const summaryLines = [];
for (const { link, states } of results) {
  for (const s of states) Object.assign(s, s.samples.length ? summarizeSamples(s.samples, ['linkBytes', 'firstByteS', 'lastByteS', 'imageBytes', 'maxOpen']) : { median: null });
  const byId = Object.fromEntries(states.map((s) => [s.c.id, s]));
  const rows = [['op', 'what', 'wall s (median)', 'wall min–max', 'CPU s', 'peak RSS MiB', 'MB over link', 'first / last byte s', 'link busy',
    `× reference (goal ≤ ${GOALS.backupVsRef})`, `× link limit (backup goal ≤ ${GOALS.backupVsLink})`]];
  for (const op of ops) {
    const ours = byId[`ours-${op}`], ref = byId[`ref-${op}`];
    const dir = op === 'backup' ? 'up' : 'down';
    const bytes = ours?.median?.imageBytes ?? ref?.median?.imageBytes;
    const conns = refConns(op, bytes);
    const rateBps = linkRate(link, dir, conns);
    const limitS = Number.isFinite(rateBps) ? bytes / rateBps : NaN;
    const goalRef = op === 'backup' ? GOALS.backupVsRef : GOALS.restoreVsRef;
    rows.push([op, `link limit: ${s1(bytes / MB)} MB at ${s1(rateBps / MB)} MB/s ${dir} (${conns} conn${conns > 1 ? 's' : ''})`, f2(limitS), '', '', '', '', '', '', '', '1.00×']);
    const vsRef = ours?.median && ref?.median ? ours.median.wallS / ref.median.wallS : NaN;
    const vsLink = ours?.median ? ours.median.wallS / limitS : NaN;
    for (const s of [ours, ref]) {
      if (!s) continue;
      const m = s.median;
      if (!m) { rows.push([op, s.c.label, `failed: ${s.reason ?? 'no runs'}`, '', '', '', '', '', '', '', '']); continue; }
      const busy = Number.isFinite(rateBps) ? m.linkBytes / (rateBps * m.wallS) : NaN;
      const isOurs = s.c.tool === 'ours';
      rows.push([op, s.c.label, f2(m.wallS), `${f2(s.wallRange[0])}–${f2(s.wallRange[1])}`, f2(m.cpuS), mib(m.maxRssKiB), s1(m.linkBytes / MB),
        `${f2(m.firstByteS)} / ${f2(m.lastByteS)}`, Number.isFinite(busy) ? `${(busy * 100).toFixed(0)}%` : '—',
        isOurs ? mark(vsRef, goalRef) : '1.00×',
        isOurs ? (op === 'backup' ? mark(vsLink, GOALS.backupVsLink) : ratio(vsLink)) : ratio(m.wallS / limitS)]);
    }
    summaryLines.push(`**${op}, ${link.name} link**: ours ${f2(ours?.median?.wallS)} s, reference ${f2(ref?.median?.wallS)} s, link limit ${f2(limitS)} s; ` +
      `ours/reference ${mark(vsRef, goalRef)} (goal ≤ ${goalRef}×), ours/link limit ${op === 'backup' ? `${mark(vsLink, GOALS.backupVsLink)} (goal ≤ ${GOALS.backupVsLink}×)` : ratio(vsLink)}`);
    // Where the time goes: when the link first and last carried the image, and how busy it was.
    for (const s of [ours, ref]) {
      if (!s?.median) continue;
      const m = s.median;
      const span = m.lastByteS - m.firstByteS;
      const during = Number.isFinite(rateBps) && span > 0 ? `${((m.linkBytes / span / rateBps) * 100).toFixed(0)}% of the link's ${s1(rateBps / MB)} MB/s between them` : '';
      const srv = s.samples.at(-1).server?.byOp;
      const reqs = srv ? Object.entries(srv).map(([k, v]) => `${v.requests} ${k}`).join(', ') : '?';
      notes.push(`${link.name} ${op}, ${s.c.tool}: first byte ${dir} at ${f2(m.firstByteS)} s, last at ${f2(m.lastByteS)} s, exit at ${f2(m.wallS)} s (${f2(m.wallS - m.lastByteS)} s after the last byte); ` +
        `${during}; ${s.samples.at(-1).connections} connection(s), at most ${m.maxOpen} open at once; requests (last run): ${reqs}; ` +
        `MB/s ${dir} per ${TIMELINE_MS / 1000} s (last run): ${timeline(s.samples.at(-1), dir)}`);
    }
  }
  const caption = `${describeLink(link)}`;
  tables.push({ link: link.name, caption, table: markdownTable(rows, ['l', 'l']) });
  for (const s of states) {
    const b = busyNote(`${link.name} ${s.c.id}`, s.samples);
    if (b) notes.push(b);
    if (s.c.verify?.ok === false) notes.push(`${link.name} ${s.c.id}: verification problems: ${s.c.verify.problems.join('; ')}`);
    else if (s.c.verify?.ok) notes.push(`${link.name} ${s.c.id}: last run verified (${s.c.verify.entries} entries${s.c.op === 'restore' ? ', metadata and contents equal to the corpus' : ', paths, zstd and block size as asked'})`);
    if (s.status === 'failed') notes.push(`${link.name} ${s.c.id} failed: ${s.reason}`);
  }
}
const proxyCpu = median(results.flatMap((r) => r.states.flatMap((s) => s.samples.map((x) => x.proxyCpuS))));
const serverCpu = median(results.flatMap((r) => r.states.flatMap((s) => s.samples.map((x) => x.serverCpuS))));
notes.push(`the link model's own CPU per run (median): proxy ${f2(proxyCpu)} s (in the harness), S3 server ${f2(serverCpu)} s (child process); not part of any tool's CPU or RSS; ${linkPriority ? 'both run at priority -10 over the tools (nice 0), so the tools do not slow the link down' : `they share the ${machine.nproc} cores with the tools at the same priority (not root)`}`);
if (opt.profile) notes.push(`ours ran with --cpu-prof (timings include the profiler): ${relative(REPO_DIR, profileDir)}`);

const printed = tables.map((t) => `${t.caption}\n\n${t.table}`).join('\n\n');
const text = `${printed}\n\n${summaryLines.map((l) => `- ${l}`).join('\n')}\n\n${notes.map((n) => `- ${n}`).join('\n')}`;
console.log(`\n${text}`);

// ---------------------------------------------------------------------------------------------
// Recording: bench/out/results-<time>-link.json and a section at the top of bench/RESULTS.md.

const invocation = repoRelative(shJoin(['node', relative(REPO_DIR, fileURLToPath(import.meta.url)), ...process.argv.slice(2)]));
const tools = [
  capture(['mksquashfs', '-version']).split('\n')[0],
  capture(['unsquashfs', '-version']).split('\n')[0],
  `ours: node ${process.version}, ${DIST}/node.js built ${distBuilt} UTC (run from a copy taken at the start)`,
];
const commands = [];
if (restoreInput) commands.push(`restore input (untimed, straight to the server): \`${restoreInput.command}\``);
for (const { link, states } of results.slice(0, 1)) for (const s of states) if (s.commandLine) commands.push(`${s.c.id} (${link.name} link): \`${s.commandLine}\``);
const jsonFile = join(outDir, `results-${stamp}-link.json`);
writeFileSync(jsonFile, repoRelative(JSON.stringify({
  schema: 1, date: new Date().toISOString(), op: 'link', invocation, settings, runs, warmups, goals: GOALS, machine,
  links: results.map((r) => r.link), corpus: corpusInfo.custom ? { custom: true, tree: corpusDir, summary: corpusInfo.summary } : { version: corpusInfo.version, seed: corpusInfo.seed, summary: corpusInfo.summary, fingerprint: corpusInfo.fingerprint },
  restoreInput, tools, commands,
  results: results.map(({ link, states }) => ({
    link: link.name,
    cases: states.map((s) => ({ id: s.c.id, label: s.c.label, status: s.status, reason: s.reason ?? null, command: s.commandLine, median: s.median, wallRange: s.wallRange ?? null, verify: s.c.verify ?? null, samples: s.samples, warmup: s.warmup, output: s.status === 'failed' ? s.output : undefined })),
  })),
  tables, summary: summaryLines, notes,
}, null, 2)) + '\n');
console.error(`\nwrote ${relative(process.cwd(), jsonFile)}`);

if (!opt['no-record']) {
  const cs = corpusInfo.summary;
  const section = [
    `## ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC · backup/restore over a link (${results.map((r) => r.link.name).join(', ')}) · zstd -${settings.level} · ${settings.blockSize / 1024} KiB blocks · ${runs} run${runs > 1 ? 's' : ''}`,
    '',
    `- Command: \`${invocation}\``,
    `- Machine: ${machine.cpuModel}; nproc ${machine.nproc}; ${machine.memTotalGiB} GiB RAM; ${machine.kernel}; Node ${machine.node}; work files and restores in tmpfs; repo ${machine.gitRev}${machine.srcDirty ? ' (src/ has uncommitted changes)' : ''}; load avg at start ${machine.loadavgAtStart.join(' ')}${machine.droppedEnv.length ? `; ${machine.droppedEnv.join(', ')} unset for every measured command` : ''}`,
    `- Tools: ${tools.join('; ')}`,
    corpusInfo.custom
      ? `- Corpus: custom directory ${corpusDir}: ${cs.files} files, ${cs.bytes.toLocaleString('en-US')} bytes`
      : `- Corpus: v${corpusInfo.version} seed "${corpusInfo.seed}", ${cs.files} files, ${cs.dirs} dirs, ${cs.symlinks} symlinks, ${cs.bytes.toLocaleString('en-US')} bytes; fingerprint \`${corpusInfo.fingerprint.slice(0, 16)}\``,
    `- Link: a pacing TCP proxy on 127.0.0.1 (bench/lib/link-proxy.mjs) in front of a lean in-memory S3 server in a child process (bench/lib/s3-lean-server.mjs); MB = 10^6 bytes. Links: ${results.map((r) => describeLink(r.link)).join('; ')}`,
    `- Settings: ${JSON.stringify(settings)}; ${warmups} untimed warm-up + ${runs} timed run(s) per case, interleaved; median reported. Link limit = image bytes / the direction's rate for the reference's connections (shared cap or per-connection cap × connections, whichever binds)`,
    '',
    ...tables.flatMap((t) => [`${t.caption}:`, '', t.table, '']),
    ...summaryLines.map((l) => `- ${l}`),
    ...notes.map((n) => `- ${n}`),
    '',
    'Commands as run (each under `/usr/bin/time -f \'%e %M %U %S %x\'`; `bash -c` for the reference pipelines; the same for every link with its proxy port):',
    '',
    ...commands.map((c) => `- ${c}`),
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

