// --op pack: every adapter with pack() packs the corpus; wall/CPU/RSS/image size as ratios to the
// baseline (mksquashfs) measured in the same run.
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { verifyImage } from '../lib/verify.mjs';
import { shJoin } from '../lib/shell.mjs';
import {
  timedRun, failureReason, indent, summarizeSamples, busyNote, f2, ratio, mib, markdownTable,
} from '../lib/harness.mjs';

/** Adapter states for pack, with commands, before anything runs (also used by --dry-run). */
export function planPack(ctx) {
  return ctx.adaptersFor('pack').map(({ adapter: a, reason }) => {
    const s = { adapter: a, status: reason ? 'skipped' : 'pending', reason, samples: [], warmup: [], version: null, command: null };
    s.outFile = join(ctx.imageDir, `${a.name}.${a.ext}`);
    if (s.status === 'pending') {
      s.command = a.pack(ctx.corpusDir, s.outFile, ctx.settings);
      s.commandLine = shJoin(s.command.argv);
      try { s.version = a.version?.() ?? null; } catch { s.version = null; }
    }
    return s;
  });
}

export async function runPack(ctx) {
  const { settings, runs, warmups, timeoutSec, waitIdleSec } = ctx;
  const baselineName = ctx.baselineFor('pack');
  const states = planPack(ctx);
  for (const s of states) if (s.status === 'skipped') console.error(`skip ${s.adapter.name}: ${s.reason}`);
  const active = () => states.filter((s) => s.status === 'pending');

  async function runOnce(s, label) {
    const { r, sample } = await timedRun(s.command, {
      timeFile: join(ctx.tmpDir, `${s.adapter.name}.time`), timeoutSec, waitIdleSec,
      before: () => rmSync(s.outFile, { force: true }),
    });
    let imageBytes = null;
    try { imageBytes = statSync(s.outFile).size; } catch { /* no output */ }
    sample.imageBytes = imageBytes;
    if (!r.ok || imageBytes === null) {
      s.status = 'failed';
      s.reason = r.ok ? 'no output file' : failureReason(r, timeoutSec);
      s.output = r.output;
      console.error(`  ${s.adapter.name} ${label}: FAILED (${s.reason})${r.output ? `\n${indent(r.output.slice(-3000))}` : ''}`);
      return null;
    }
    console.error(`  ${s.adapter.name.padEnd(11)} ${label.padEnd(9)} ${sample.wallS.toFixed(2).padStart(7)} s wall ` +
      `${sample.cpuS.toFixed(2).padStart(7)} s cpu ${(sample.maxRssKiB / 1024).toFixed(0).padStart(6)} MiB ${imageBytes.toLocaleString('en-US').padStart(13)} B` +
      (sample.otherCpuS > 0.5 ? `  (other processes: ${sample.otherCpuS.toFixed(1)} cpu s)` : ''));
    return sample;
  }

  console.error(`\n== pack: settings ${JSON.stringify(settings)}; ${warmups} warm-up + ${runs} timed run(s) per adapter, interleaved`);
  for (let w = 1; w <= warmups; w++) {
    for (const s of active()) { const smp = await runOnce(s, `warmup${warmups > 1 ? w : ''}`); if (smp) s.warmup.push(smp); }
  }
  for (let i = 1; i <= runs; i++) {
    for (const s of active()) { const smp = await runOnce(s, `run ${i}/${runs}`); if (smp) s.samples.push(smp); }
  }
  for (const s of active()) s.status = 'ok';

  // Verification of the last image of each adapter.
  for (const s of states.filter((x) => x.status === 'ok')) {
    s.sizeStable = new Set(s.samples.map((x) => x.imageBytes)).size === 1;
    if (ctx.opt['no-verify']) continue;
    s.verify = verifyImage(s.adapter.format, s.outFile, ctx.expectedPaths, settings);
    const v = s.verify;
    console.error(`verify ${s.adapter.name}: ${v.ok === null ? v.note : v.ok ? `ok (${v.entries} entries${v.compression ? `, ${v.compression}, block ${v.blockSize}` : ''})` : `PROBLEMS: ${v.problems.join('; ')}`}`);
  }

  for (const s of states.filter((x) => x.status === 'ok')) Object.assign(s, summarizeSamples(s.samples, ['imageBytes']));
  const base = states.find((s) => s.adapter.name === baselineName && s.status === 'ok');
  for (const s of states.filter((x) => x.status === 'ok')) {
    if (!base) continue;
    s.ratios = {
      wall: s.median.wallS / base.median.wallS,
      cpu: s.median.cpuS / base.median.cpuS,
      rss: s.median.maxRssKiB / base.median.maxRssKiB,
      size: s.median.imageBytes / base.median.imageBytes,
    };
  }

  const rows = [['tool', 'wall s (median)', 'wall min–max', 'CPU s (user+sys)', 'peak RSS MiB', 'image bytes',
    `time × ${baselineName}`, `RSS × ${baselineName}`, `size × ${baselineName}`]];
  for (const s of states) {
    const name = s.adapter.name + (s.adapter.name === baselineName ? ' (baseline)' : '');
    if (s.status !== 'ok') { rows.push([name, `*${s.status}*`, '', '', '', '', '', '', '']); continue; }
    const m = s.median;
    rows.push([name, f2(m.wallS), `${f2(s.wallRange[0])}–${f2(s.wallRange[1])}`, f2(m.cpuS), mib(m.maxRssKiB),
      Math.round(m.imageBytes).toLocaleString('en-US') + (s.sizeStable ? '' : ' (varies)'),
      ratio(s.ratios?.wall), ratio(s.ratios?.rss), ratio(s.ratios?.size)]);
  }
  const notes = [];
  if (!base) notes.push(`No ratios: baseline ${baselineName} did not run successfully in this run.`);
  for (const s of states) {
    if (s.status === 'skipped') notes.push(`${s.adapter.name} skipped: ${s.reason}`);
    if (s.status === 'failed') notes.push(`${s.adapter.name} failed: ${s.reason}`);
    if (s.status === 'ok' && !s.sizeStable) notes.push(`${s.adapter.name}: image size differed between runs (${[...new Set(s.samples.map((x) => x.imageBytes))].join(', ')})`);
    const busy = busyNote(s.adapter.name, s.samples); // timed runs only
    if (busy) notes.push(busy);
    if (s.verify?.ok === false) notes.push(`${s.adapter.name} verification problems: ${s.verify.problems.join('; ')}`);
  }

  // Good images made here serve as the inputs of unpack/read in the same invocation (--op all).
  for (const s of states) {
    if (s.status === 'ok' && s.adapter.format === 'squashfs' && s.verify?.ok !== false) {
      ctx.madeImages.set(s.adapter.name, { name: s.adapter.name, file: s.outFile, bytes: statSync(s.outFile).size, command: s.commandLine, fromPackOp: true, verify: s.verify ?? null });
    }
  }

  return {
    op: 'pack',
    title: 'pack',
    caption: `pack the corpus, images written to ${ctx.fsType(ctx.imageDir) ?? '?'}; ratios to ${baselineName}`,
    where: `images written to ${ctx.fsType(ctx.imageDir) ?? '?'}`,
    baseline: baselineName,
    table: markdownTable(rows),
    notes,
    tools: states.filter((s) => s.version).map((s) => `${s.adapter.name}: ${s.version}`),
    commandsHeading: 'Commands as run (each under `/usr/bin/time -f \'%e %M %U %S %x\'`):',
    commands: states.filter((s) => s.commandLine).map((s) => `${s.adapter.name}: \`${s.commandLine}\``),
    failed: states.some((s) => s.status === 'failed'),
    results: states.map((s) => ({
      name: s.adapter.name, label: s.adapter.label, format: s.adapter.format, status: s.status, reason: s.reason ?? null,
      version: s.version, command: s.commandLine ?? null, outFile: s.outFile,
      median: s.median ?? null, wallRange: s.wallRange ?? null, ratios: s.ratios ?? null, sizeStable: s.sizeStable ?? null,
      samples: s.samples, warmup: s.warmup, verify: s.verify ?? null, output: s.status === 'failed' ? s.output : undefined,
    })),
  };
}
