// --op unpack: every adapter with unpack() (ours, unsquashfs) extracts the same input images (made by
// mksquashfs and by ours, see inputs.mjs) into a fresh directory; wall/CPU/RSS as ratios to the
// baseline (unsquashfs) on the same image. The target directory is removed (untimed) before each
// run, and lives on tmpfs by default: ext4 file creation on this kind of VM is slow and noisy
// (`--unpack-dir DIR` measures on a disk instead). The last tree of each tool is compared with the
// corpus (paths, types, modes, sizes, mtimes, symlink targets, and contents with diff -r).
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { shJoin } from '../lib/shell.mjs';
import { compareTrees } from '../lib/tree-compare.mjs';
import { inputImages, describeInputs, planInputs } from './inputs.mjs';
import {
  timedRun, failureReason, indent, summarizeSamples, busyNote, f2, ratio, mib, markdownTable,
} from '../lib/harness.mjs';

/** Parent directory of the per-run work dir: --unpack-dir, else /dev/shm (tmpfs). */
function unpackParent(ctx) {
  if (ctx.opt['unpack-dir']) return resolve(ctx.opt['unpack-dir']);
  return '/dev/shm';
}

export function planUnpack(ctx) {
  return ctx.adaptersFor('unpack').map(({ adapter: a, reason }) => {
    let version = null;
    if (!reason) { try { version = a.version?.() ?? null; } catch { /* unknown */ } }
    return { adapter: a, reason, version };
  });
}

export function dryRunUnpack(ctx) {
  const lines = planInputs(ctx).map((p) => p.status === 'pending' ? `make image (${p.name}): ${p.commandLine}` : `image ${p.name}: ${p.reason}`);
  const dir = join(unpackParent(ctx), 'sqfs-bench-XXXXXX');
  for (const t of planUnpack(ctx)) {
    if (t.reason) { lines.push(`${t.adapter.name}: skipped (${t.reason})`); continue; }
    for (const p of planInputs(ctx).filter((x) => x.status === 'pending')) {
      lines.push(`${t.adapter.name} (image by ${p.name}): ${shJoin(t.adapter.unpack(p.file, join(dir, `${t.adapter.name}-from-${p.name}`), ctx.settings).argv)}`);
    }
  }
  return lines;
}

export async function runUnpack(ctx) {
  const { settings, runs, warmups, timeoutSec, waitIdleSec } = ctx;
  const baselineName = ctx.baselineFor('unpack');
  const tools = planUnpack(ctx);
  for (const t of tools) if (t.reason) console.error(`skip ${t.adapter.name}: ${t.reason}`);

  console.error(`\n== unpack: input images (${ctx.imageMakers.join(', ')})`);
  const images = await inputImages(ctx);
  const goodImages = images.filter((im) => im.status === 'ok');

  const parent = unpackParent(ctx);
  mkdirSync(parent, { recursive: true });
  const work = mkdtempSync(join(parent, 'sqfs-bench-'));
  ctx.cleanups.push(() => rmSync(work, { recursive: true, force: true }));
  const fs = ctx.fsType(work) ?? '?';
  const where = `${fs === 'tmpfs' ? 'tmpfs' : `${fs} on disk`} (${work})`;
  if (!ctx.opt['unpack-dir'] && fs !== 'tmpfs') console.error(`warning: ${parent} is ${fs}, not tmpfs`);

  // One case per (image, tool); rounds interleave all cases.
  const cases = [];
  for (const im of goodImages) {
    for (const t of tools) {
      const c = { image: im, adapter: t.adapter, status: t.reason ? 'skipped' : 'pending', reason: t.reason, samples: [], warmup: [] };
      c.name = `${t.adapter.name} ← ${im.name}`;
      c.target = join(work, `${t.adapter.name}-from-${im.name}`);
      if (c.status === 'pending') { c.command = t.adapter.unpack(im.file, c.target, settings); c.commandLine = shJoin(c.command.argv); }
      cases.push(c);
    }
  }
  const active = () => cases.filter((c) => c.status === 'pending');

  async function runOnce(c, label, keep) {
    const clear = () => rmSync(c.target, { recursive: true, force: true });
    const { r, sample } = await timedRun(c.command, {
      timeFile: join(ctx.tmpDir, `unpack-${c.adapter.name}.time`), timeoutSec, waitIdleSec, before: clear,
    });
    const made = existsSync(c.target) && statSync(c.target).isDirectory();
    if (!keep) clear(); // untimed; keep only the last timed run's tree, for verification
    if (!r.ok || !made) {
      c.status = 'failed';
      c.reason = r.ok ? 'no output directory' : failureReason(r, timeoutSec);
      c.output = r.output;
      console.error(`  ${c.name} ${label}: FAILED (${c.reason})${r.output ? `\n${indent(r.output.slice(-3000))}` : ''}`);
      return null;
    }
    console.error(`  ${c.name.padEnd(24)} ${label.padEnd(9)} ${sample.wallS.toFixed(2).padStart(7)} s wall ` +
      `${sample.cpuS.toFixed(2).padStart(7)} s cpu ${(sample.maxRssKiB / 1024).toFixed(0).padStart(6)} MiB` +
      (sample.otherCpuS > 0.5 ? `  (other processes: ${sample.otherCpuS.toFixed(1)} cpu s)` : ''));
    return sample;
  }

  console.error(`\n== unpack into ${where}; processors ${settings.processors}; ${warmups} warm-up + ${runs} timed run(s) per tool and image, interleaved`);
  for (let w = 1; w <= warmups; w++) {
    for (const c of active()) { const smp = await runOnce(c, `warmup${warmups > 1 ? w : ''}`, false); if (smp) c.warmup.push(smp); }
  }
  for (let i = 1; i <= runs; i++) {
    for (const c of active()) { const smp = await runOnce(c, `run ${i}/${runs}`, i === runs); if (smp) c.samples.push(smp); }
  }
  for (const c of active()) c.status = 'ok';

  for (const c of cases.filter((x) => x.status === 'ok')) {
    if (!ctx.opt['no-verify']) {
      c.verify = compareTrees(ctx.corpusDir, c.target);
      const v = c.verify;
      console.error(`verify ${c.name}: ${v.ok ? `ok (${v.entries} entries, contents identical; ${(v.allocatedBytes / 2 ** 20).toFixed(1)} MiB allocated)` : `PROBLEMS: ${v.problems.join('; ')}`} [${v.seconds.toFixed(1)} s]`);
    }
    rmSync(c.target, { recursive: true, force: true });
  }
  rmSync(work, { recursive: true, force: true });

  for (const c of cases.filter((x) => x.status === 'ok')) Object.assign(c, summarizeSamples(c.samples));
  for (const c of cases.filter((x) => x.status === 'ok')) {
    const base = cases.find((b) => b.image === c.image && b.adapter.name === baselineName && b.status === 'ok');
    if (!base) continue;
    c.ratios = { wall: c.median.wallS / base.median.wallS, cpu: c.median.cpuS / base.median.cpuS, rss: c.median.maxRssKiB / base.median.maxRssKiB };
  }

  const rows = [['image by', 'tool', 'wall s (median)', 'wall min–max', 'CPU s (user+sys)', 'peak RSS MiB',
    `time × ${baselineName}`, `CPU × ${baselineName}`, `RSS × ${baselineName}`]];
  for (const c of cases) {
    const name = c.adapter.name + (c.adapter.name === baselineName ? ' (baseline)' : '');
    if (c.status !== 'ok') { rows.push([c.image.name, name, `*${c.status}*`, '', '', '', '', '', '']); continue; }
    const m = c.median;
    rows.push([c.image.name, name, f2(m.wallS), `${f2(c.wallRange[0])}–${f2(c.wallRange[1])}`, f2(m.cpuS), mib(m.maxRssKiB),
      ratio(c.ratios?.wall), ratio(c.ratios?.cpu), ratio(c.ratios?.rss)]);
  }
  const notes = [];
  for (const im of images) if (im.status !== 'ok') notes.push(`image by ${im.name} ${im.status}: ${im.reason}`);
  for (const im of goodImages) {
    if (!cases.some((c) => c.image === im && c.adapter.name === baselineName && c.status === 'ok')) notes.push(`No ratios for the image by ${im.name}: baseline ${baselineName} did not run successfully on it.`);
  }
  const skippedTools = new Set();
  for (const c of cases) {
    if (c.status === 'skipped' && !skippedTools.has(c.adapter.name)) { skippedTools.add(c.adapter.name); notes.push(`${c.adapter.name} skipped: ${c.reason}`); }
    if (c.status === 'failed') notes.push(`${c.name} failed: ${c.reason}`);
    const busy = busyNote(c.name, c.samples);
    if (busy) notes.push(busy);
    if (c.verify?.ok === false) notes.push(`${c.name} verification problems: ${c.verify.problems.join('; ')}`);
  }
  const verified = cases.filter((c) => c.verify?.ok);
  if (verified.length) notes.push(`Verified after the timed runs: ${verified.map((c) => c.name).join(', ')} extracted trees match the corpus (paths, types, modes, sizes, mtimes, symlink targets; contents with \`diff -r --no-dereference\`).`);

  return {
    op: 'unpack',
    title: `unpack into ${fs === 'tmpfs' ? 'tmpfs' : `${fs} on disk`}`,
    caption: `unpack into ${where}; ratios to ${baselineName} on the same image`,
    where: `unpacked into ${where}`,
    baseline: baselineName,
    inputs: describeInputs(images),
    table: markdownTable(rows, ['l', 'l']),
    notes,
    tools: tools.filter((t) => t.version).map((t) => `${t.adapter.name}: ${t.version}`),
    commandsHeading: 'Commands as run (each under `/usr/bin/time -f \'%e %M %U %S %x\'`; the target directory did not exist before each run):',
    commands: cases.filter((c) => c.commandLine).map((c) => `${c.name}: \`${c.commandLine}\``),
    failed: cases.some((c) => c.status === 'failed') || images.some((im) => im.status === 'failed'),
    results: {
      unpackDir: work, unpackFs: fs,
      images: images.map(({ name, status, reason, file, bytes, command, fromPackOp, verify }) => ({ name, status, reason: reason ?? null, file, bytes, command, fromPackOp, verify: verify ?? null })),
      cases: cases.map((c) => ({
        image: c.image.name, name: c.adapter.name, label: c.adapter.label, status: c.status, reason: c.reason ?? null,
        command: c.commandLine ?? null, target: c.target,
        median: c.median ?? null, wallRange: c.wallRange ?? null, ratios: c.ratios ?? null,
        samples: c.samples, warmup: c.warmup, verify: c.verify ?? null, output: c.status === 'failed' ? c.output : undefined,
      })),
    },
  };
}
