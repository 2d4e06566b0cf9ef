// Input images for --op unpack and --op read: made once per harness invocation from the corpus by the
// packers named in --images (default mksquashfs,ours) with the run's settings (default gzip -9, 128 KiB
// blocks), untimed. With --op all the images the pack op just made and verified are reused.
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { adapters } from '../adapters/index.mjs';
import { measure } from '../lib/measure.mjs';
import { verifyImage } from '../lib/verify.mjs';
import { shJoin } from '../lib/shell.mjs';
import { failureReason, indent } from '../lib/harness.mjs';

/** The command that would make each input image (for --dry-run and the report). */
export function planInputs(ctx) {
  return ctx.imageMakers.map((name) => {
    const a = adapters.find((x) => x.name === name);
    if (!a || typeof a.pack !== 'function' || a.format !== 'squashfs') return { name, status: 'skipped', reason: `${name} does not make SquashFS images` };
    const reason = a.check(ctx.settings);
    if (reason) return { name, status: 'skipped', reason };
    const file = join(ctx.imageDir, `${a.name}.${a.ext}`);
    const command = a.pack(ctx.corpusDir, file, ctx.settings);
    return { name, status: 'pending', file, command, commandLine: shJoin(command.argv) };
  });
}

/** @returns {Promise<Array<{name: string, status: 'ok'|'skipped'|'failed', reason?: string, file?: string, bytes?: number, command?: string}>>} */
export async function inputImages(ctx) {
  const out = [];
  for (const plan of planInputs(ctx)) {
    const known = ctx.madeImages.get(plan.name);
    if (known) { out.push({ status: 'ok', ...known }); continue; }
    if (plan.status !== 'pending') { out.push(plan); continue; }
    console.error(`making input image with ${plan.name} (untimed): ${plan.commandLine}`);
    rmSync(plan.file, { force: true });
    const r = await measure(plan.command, { timeFile: join(ctx.tmpDir, `input-${plan.name}.time`), timeoutSec: ctx.timeoutSec });
    const entry = { name: plan.name, file: plan.file, command: plan.commandLine, fromPackOp: false };
    if (!r.ok) {
      console.error(`  FAILED (${failureReason(r, ctx.timeoutSec)})${r.output ? `\n${indent(r.output.slice(-3000))}` : ''}`);
      const failed = { ...entry, status: 'failed', reason: `making the image failed: ${failureReason(r, ctx.timeoutSec)}` };
      ctx.madeImages.set(plan.name, failed);
      out.push(failed);
      continue;
    }
    entry.bytes = statSync(plan.file).size;
    entry.makeWallS = +r.wallS.toFixed(2);
    if (!ctx.opt['no-verify']) {
      entry.verify = verifyImage('squashfs', plan.file, ctx.expectedPaths, ctx.settings);
      if (entry.verify.ok === false) {
        console.error(`  image PROBLEMS: ${entry.verify.problems.join('; ')}`);
        const failed = { ...entry, status: 'failed', reason: `image does not match the corpus: ${entry.verify.problems.join('; ')}` };
        ctx.madeImages.set(plan.name, failed);
        out.push(failed);
        continue;
      }
    }
    console.error(`  ${entry.bytes.toLocaleString('en-US')} bytes in ${entry.makeWallS} s${entry.verify?.ok ? `, verified (${entry.verify.entries} entries, ${entry.verify.compression}, block ${entry.verify.blockSize})` : ''}`);
    ctx.madeImages.set(plan.name, { ...entry, status: 'ok' });
    out.push({ ...entry, status: 'ok' });
  }
  return out;
}

/** One line per input image for the report. */
export function describeInputs(images) {
  return images.map((im) => im.status === 'ok'
    ? `image by ${im.name}: \`${im.file}\`, ${im.bytes.toLocaleString('en-US')} bytes${im.fromPackOp ? ' (from the pack op above)' : ''}; made with \`${im.command}\``
    : `image by ${im.name}: ${im.status} (${im.reason})`);
}
