// Shared measuring and reporting helpers for the ops in bench/ops/ (pack, unpack, read).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { measure } from './measure.mjs';
import { busyCpuSeconds } from './machine.mjs';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Wait (up to waitIdleSec) until other processes use < 10% of one core over a 2 s window. */
export async function waitIdle(waitIdleSec) {
  if (!waitIdleSec) return;
  const deadline = Date.now() + waitIdleSec * 1000;
  let said = false;
  for (;;) {
    const b0 = busyCpuSeconds();
    const self0 = process.cpuUsage();
    await sleep(2000);
    const self = process.cpuUsage(self0);
    const used = busyCpuSeconds() - b0 - (self.user + self.system) / 1e6;
    if (!(used > 0.2) || Date.now() > deadline) {
      if (said) console.error(`  ${used > 0.2 ? 'still busy, going ahead' : 'idle'}`);
      return;
    }
    if (!said) { console.error(`  waiting for the machine to go idle (others use ${(used / 2 * 100).toFixed(0)}% of a core)...`); said = true; }
  }
}

/**
 * One measured run: `before()` (untimed cleanup), `sync`, wait for idle, then the command under GNU
 * time. Returns measure()'s result and a sample with wall/CPU/RSS and `otherCpuS`: CPU seconds used by
 * other processes on the machine meanwhile (machine-wide busy time minus the command's and the
 * harness's own, e.g. the HTTP server of `--op read`). `onStart()` is called right before the command
 * is spawned, after the cleanup, sync and idle wait.
 */
export async function timedRun(command, { timeFile, timeoutSec, waitIdleSec, before, onStart }) {
  before?.();
  spawnSync('sync'); // flush the previous run's dirty pages so they don't compete with this run
  await waitIdle(waitIdleSec);
  onStart?.(); // right before the command starts (bench/link.mjs starts its link statistics here)
  const busy0 = busyCpuSeconds();
  const self0 = process.cpuUsage();
  const r = await measure(command, { timeFile, timeoutSec });
  const self = process.cpuUsage(self0);
  const busy = busyCpuSeconds() - busy0 - (self.user + self.system) / 1e6;
  const sample = {
    wallS: +r.wallS.toFixed(4), timeWallS: r.timeWallS, userS: r.userS, sysS: r.sysS,
    cpuS: +(r.userS + r.sysS).toFixed(2), maxRssKiB: r.maxRssKiB,
    otherCpuS: Number.isFinite(busy) ? +Math.max(0, busy - (r.userS + r.sysS)).toFixed(2) : null,
  };
  return { r, sample };
}

export function failureReason(r, timeoutSec) {
  return r.timedOut ? `timed out after ${timeoutSec}s` : `exit ${r.exitCode}${r.signal ? ` (${r.signal})` : ''}`;
}

export function indent(text) { return text.split('\n').map((l) => `      | ${l}`).join('\n'); }

export const median = (xs) => {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};

/** Medians and wall range of a list of samples (keys: wallS, cpuS, userS, sysS, maxRssKiB, plus `extra`). */
export function summarizeSamples(samples, extra = []) {
  const col = (k) => samples.map((x) => x[k]);
  const m = {};
  for (const k of ['wallS', 'cpuS', 'userS', 'sysS', 'maxRssKiB', ...extra]) m[k] = median(col(k));
  return { median: m, wallRange: [Math.min(...col('wallS')), Math.max(...col('wallS'))] };
}

/** Timed runs during which other processes used more than 10 % of a core (and > 0.5 s). */
export function busyNote(name, samples) {
  const noisy = samples.filter((x) => x.otherCpuS > Math.max(0.5, 0.1 * x.wallS));
  if (!noisy.length) return null;
  const worst = Math.max(...noisy.map((x) => x.otherCpuS / x.wallS));
  return `${name}: machine was busy during ${noisy.length} of ${samples.length} timed runs (other processes used up to ${(worst * 100).toFixed(0)}% of a core) - timings are not reliable`;
}

export const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '—');
export const ratio = (x) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '—');
export const int = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '—');
export const mib = (kib) => (Number.isFinite(kib) ? (kib / 1024).toFixed(1) : '—');

/** rows[0] is the header; align: per column 'l' or 'r'. */
export function markdownTable(rows, align) {
  const sep = rows[0].map((_, i) => ((align?.[i] ?? (i === 0 ? 'l' : 'r')) === 'l' ? '---' : '---:'));
  return [rows[0], sep, ...rows.slice(1)].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;

/** CPU seconds a process has used so far (utime + stime from /proc); NaN when it cannot be read. */
export function processCpuS(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime, stime (fields 14 and 15)
  } catch { return NaN; }
}

/** The JSON of the last line of `output` that starts with `tag` (a child's `OURS-RESULT {...}`), or null. */
export function parseResult(tag, output) {
  const line = output.split('\n').reverse().find((l) => l.startsWith(`${tag} `));
  try { return line ? JSON.parse(line.slice(tag.length + 1)) : null; } catch { return null; }
}

/** Gives the link model's processes priority -10 over the measured tools; false where that is not allowed. */
export function raisePriority(pids) {
  try {
    for (const pid of pids) if (pid) setPriority(pid, -10);
    return true;
  } catch {
    return false;
  }
}
