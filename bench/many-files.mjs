#!/usr/bin/env node
// Trees of many small files (issue #20): how time and peak memory grow with the number of files,
// ours against squashfs-tools on the same trees and the same 2 processors, in one run.
//
//   npm run build && node bench/many-files.mjs [--counts 100000,300000,1000000] [--ops pack,backup,unpack,restore]
//
// Trees: `count` files of 20-900 bytes, 250 to a directory, 100 directories to a package, in tmpfs
// (/dev/shm/sqfs-many/<count>, made once; removed at the end unless --keep-trees). mksquashfs is stopped
// after --reference-timeout seconds (default 900): it slows down sharply with the number of files.
// Each op runs each tool once under GNU time (wall seconds, peak RSS):
//   pack     sqfs pack --comp zstd --level 3           vs mksquashfs -comp zstd -Xcompression-level 3 -processors 2
//   backup   sqfs backup (a local store in tmpfs)       vs the same mksquashfs
//   unpack   sqfs unpack of mksquashfs's image          vs unsquashfs -processors 2 of it (into tmpfs)
//   restore  sqfs restore of the backup                 vs the same unsquashfs
// The table gives both, their ratio, and ours against ours at the smallest count (linear time is
// count / smallest). A section goes to the top of bench/RESULTS.md (--no-record skips it).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { prependResultsSection, REPO_DIR } from './lib/results-md.mjs';

const { values: opt } = parseArgs({
  options: {
    counts: { type: 'string', default: '100000,300000' },
    ops: { type: 'string', default: 'pack,backup,unpack,restore' },
    'keep-trees': { type: 'boolean', default: false },
    'reference-timeout': { type: 'string', default: '900' },
    'no-record': { type: 'boolean', default: false },
  },
});
const counts = opt.counts.split(',').map(Number).sort((a, b) => a - b);
const ops = opt.ops.split(',');
const ROOT = '/dev/shm/sqfs-many';
const CLI = join(REPO_DIR, 'dist', 'cli.js');
if (!existsSync(CLI)) throw new Error('run `npm run build` first (dist/cli.js is missing)');
mkdirSync(ROOT, { recursive: true });

/** Makes (once) a tree of `count` small files, 250 to a directory. */
function tree(count) {
  const dir = join(ROOT, String(count));
  if (existsSync(join(dir, '.complete'))) return dir;
  rmSync(dir, { recursive: true, force: true });
  console.error(`making ${count} files in ${dir} ...`);
  const script = `
import os, random, sys
random.seed(1)
n, root = int(sys.argv[1]), sys.argv[2]
for d in range((n + 249) // 250):
    dp = os.path.join(root, "pkg%04d" % (d // 100), "mod%06d" % d)
    os.makedirs(dp, exist_ok=True)
    for f in range(min(250, n - d * 250)):
        i = d * 250 + f
        with open(os.path.join(dp, "file%03d.js" % f), "w") as fh:
            fh.write(("module.exports = %d;\\n" % i) * random.randint(1, 40))
`;
  const r = spawnSync('python3', ['-c', script, String(count), dir], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('making the tree failed');
  writeFileSync(join(dir, '.complete'), '');
  return dir;
}

/**
 * Runs a command under GNU time; its wall seconds and peak RSS in MiB. With `timeoutS`, a command
 * still running then is killed and reported as taking longer (`over`), its RSS unknown.
 */
function timed(argv, { env = {}, timeoutS } = {}) {
  const timeFile = join(ROOT, 'time.txt');
  const r = spawnSync('/usr/bin/time', ['-o', timeFile, '-f', '%e %M', ...argv], {
    encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 1 << 28, timeout: timeoutS ? timeoutS * 1000 : undefined, killSignal: 'SIGKILL',
  });
  if (r.error?.code === 'ETIMEDOUT' || (timeoutS && r.signal === 'SIGKILL')) {
    spawnSync('pkill', ['-KILL', '-f', argv[0] === 'node' ? argv[1] : argv[0]]);
    return { seconds: timeoutS, mib: Number.NaN, over: true, stdout: '' };
  }
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  const [wall, kb] = readFileSync(timeFile, 'utf8').trim().split('\n').pop().split(' ').map(Number);
  return { seconds: wall, mib: kb / 1024, stdout: r.stdout };
}

const rows = [];
const oursAt = new Map(); // op -> seconds at the smallest count
for (const count of counts) {
  const src = tree(count);
  const work = join(ROOT, `work-${count}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work);
  const refImage = join(work, 'ref.sqfs');
  const mksquashfs = ['mksquashfs', src, refImage, '-comp', 'zstd', '-Xcompression-level', '3', '-processors', '2', '-noappend', '-quiet', '-no-progress'];
  const ref = { pack: null, unpack: null };
  const referenceTimeout = Number(opt['reference-timeout']);
  let handle;
  for (const op of ops) {
    let ours;
    let theirs;
    if (op === 'pack' || op === 'backup') {
      rmSync(refImage, { force: true });
      theirs = ref.pack ??= timed(mksquashfs, { timeoutS: referenceTimeout });
      if (op === 'pack') ours = timed(['node', CLI, 'pack', src, join(work, 'ours.sqfs'), '--comp', 'zstd', '--level', '3', '--processors', '2']);
      else {
        rmSync(join(work, 'store'), { recursive: true, force: true });
        ours = timed(['node', CLI, 'backup', src, '--store', `file://${join(work, 'store')}`, '--comp', 'zstd', '--level', '3']);
        handle = JSON.parse(ours.stdout);
      }
    } else {
      if (!ref.pack) ref.pack = timed(mksquashfs, { timeoutS: referenceTimeout });
      // Both tools unpack mksquashfs's image, or ours where mksquashfs did not finish in time.
      const input = ref.pack.over ? join(work, 'ours.sqfs') : refImage;
      if (!existsSync(input)) timed(['node', CLI, 'pack', src, input, '--comp', 'zstd', '--level', '3', '--processors', '2']);
      const unsquashfs = () => {
        rmSync(join(work, 'ref-out'), { recursive: true, force: true });
        const t = timed(['unsquashfs', '-q', '-n', '-processors', '2', '-d', join(work, 'ref-out'), input]);
        rmSync(join(work, 'ref-out'), { recursive: true, force: true });
        return t;
      };
      theirs = ref.unpack ??= unsquashfs();
      const out = join(work, 'ours-out');
      rmSync(out, { recursive: true, force: true });
      if (op === 'unpack') ours = timed(['node', CLI, 'unpack', input, out]);
      else {
        if (!handle) {
          rmSync(join(work, 'store'), { recursive: true, force: true });
          handle = JSON.parse(timed(['node', CLI, 'backup', src, '--store', `file://${join(work, 'store')}`]).stdout);
        }
        ours = timed(['node', CLI, 'restore', handle.id, out, '--store', `file://${join(work, 'store')}`]);
      }
      rmSync(out, { recursive: true, force: true });
    }
    if (!oursAt.has(op)) oursAt.set(op, { count, seconds: ours.seconds });
    const first = oursAt.get(op);
    const growth = count === first.count ? '1.00' : (ours.seconds / first.seconds).toFixed(2);
    const over = theirs.over ? '> ' : '';
    const timeRatio = `${theirs.over ? '< ' : ''}${(ours.seconds / theirs.seconds).toFixed(2)}`;
    const rss = theirs.over ? ['—', '—'] : [theirs.mib.toFixed(0), (ours.mib / theirs.mib).toFixed(2)];
    rows.push([count.toLocaleString('en'), op, ours.seconds.toFixed(2), `${over}${theirs.seconds.toFixed(2)}`, timeRatio,
      ours.mib.toFixed(0), rss[0], rss[1], `${growth} (count × ${(count / first.count).toFixed(1)})`]);
    console.error(`${count} ${op}: ours ${ours.seconds.toFixed(2)} s ${ours.mib.toFixed(0)} MiB, reference ${over}${theirs.seconds.toFixed(2)} s ${rss[0]} MiB`);
  }
  rmSync(work, { recursive: true, force: true });
  if (!opt['keep-trees']) rmSync(src, { recursive: true, force: true });
}

const header = ['files', 'op', 'ours s', 'reference s', 'time ×', 'ours MiB', 'reference MiB', 'RSS ×', `ours time / ours at ${counts[0].toLocaleString('en')}`];
const table = [header, header.map(() => '---'), ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
console.log(table);
if (!opt['no-record']) {
  const section = [
    `## many files — ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `\`node bench/many-files.mjs --counts ${opt.counts} --ops ${opt.ops} --reference-timeout ${opt['reference-timeout']}\` on ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'cpu'}), Node ${process.version};`,
    'reference: mksquashfs / unsquashfs with -processors 2, zstd level 3; trees and outputs in tmpfs; one run each. "> N": the reference was stopped after N s (unpack then reads our image).',
    '',
    table,
    '',
  ].join('\n');
  prependResultsSection(section);
}
