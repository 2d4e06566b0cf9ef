// Machine description recorded with every result.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { DROPPED_ENV } from './measure.mjs';
import { capture } from './shell.mjs';

function read(path) { try { return readFileSync(path, 'utf8').trim(); } catch { return null; } }

export function machineInfo({ outDir, repoDir }) {
  const cpuinfo = read('/proc/cpuinfo') ?? '';
  const cpuModel = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
  const nproc = Number(capture(['nproc'])) || os.availableParallelism();
  const git = capture(['git', '-C', repoDir, 'rev-parse', '--short', 'HEAD']);
  const dirty = capture(['git', '-C', repoDir, 'status', '--porcelain', '--', 'src']);
  return {
    hostname: os.hostname(),
    nproc,
    cpuModel,
    logicalCpus: os.cpus().length,
    cgroupCpuMax: read('/sys/fs/cgroup/cpu.max'),
    memTotalGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    outDirFs: capture(['df', '--output=fstype', outDir]).split('\n').at(-1)?.trim() || null,
    gitRev: /^[0-9a-f]{7,}$/.test(git) ? git : '(no commits)',
    srcDirty: dirty.length > 0,
    loadavgAtStart: os.loadavg().map((x) => +x.toFixed(2)),
    droppedEnv: DROPPED_ENV.filter((k) => process.env[k] !== undefined),
  };
}

const CLK_TCK = Number(capture(['getconf', 'CLK_TCK'])) || 100;

/** Machine-wide busy CPU seconds so far (all cores), from /proc/stat; NaN if unavailable. */
export function busyCpuSeconds() {
  const line = read('/proc/stat')?.split('\n')[0];
  if (!line?.startsWith('cpu ')) return NaN;
  // user nice system idle iowait irq softirq steal ...
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  return (user + nice + system + irq + softirq + (steal || 0)) / CLK_TCK;
}
