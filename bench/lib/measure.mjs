// Runs one command under GNU time and returns wall time, CPU time and peak RSS.
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';

export const GNU_TIME = '/usr/bin/time';
// %e wall s (2 decimals), %M peak RSS KiB, %U user s, %S sys s, %x exit status
const FORMAT = '%e %M %U %S %x';

/**
 * The environment every measured command gets. NODE_EXTRA_CA_CERTS is left
 * out: where it is set (this sandbox sets it), every Node process spends
 * ~100 ms of start-up parsing the certificates, and no tool measured here
 * makes a TLS connection. Each results section says so (see machineInfo).
 */
export const DROPPED_ENV = ['NODE_EXTRA_CA_CERTS'];
const BASE_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => !DROPPED_ENV.includes(k)));

let current = null; // process group currently running, for Ctrl-C cleanup
export function killCurrent(signal = 'SIGKILL') {
  if (current) { try { process.kill(-current, signal); } catch { /* gone */ } }
}

/**
 * @param {{argv: string[], cwd?: string, env?: Record<string,string>}} cmd
 * @param {{timeFile: string, timeoutSec: number}} opts
 * @returns {Promise<{ok: boolean, wallS: number, timeWallS: number, maxRssKiB: number,
 *   userS: number, sysS: number, exitCode: number|null, signal: string|null, timedOut: boolean, output: string}>}
 */
export function measure(cmd, { timeFile, timeoutSec }) {
  rmSync(timeFile, { force: true });
  const argv = [GNU_TIME, '-f', FORMAT, '-o', timeFile, '--', ...cmd.argv];
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    // detached => own process group, so a timeout can kill the whole pipeline.
    const child = spawn(argv[0], argv.slice(1), {
      cwd: cmd.cwd, env: { ...BASE_ENV, ...cmd.env },
      stdio: ['ignore', 'pipe', 'pipe'], detached: true,
    });
    current = child.pid;
    let output = '';
    const keep = (d) => { output = (output + d.toString()).slice(-16_384); };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; killCurrent('SIGKILL'); }, timeoutSec * 1000);
    child.on('error', (err) => { output += `\n${err.message}`; });
    child.on('close', (code, signal) => {
      const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
      clearTimeout(timer);
      current = null;
      let timeOut = '';
      try { timeOut = readFileSync(timeFile, 'utf8'); } catch { /* time itself died */ }
      // GNU time may prepend "Command exited with non-zero status N" / "Command terminated by signal N".
      const lines = timeOut.trim().split('\n');
      const last = lines.at(-1) ?? '';
      const m = /^([\d.]+) (\d+) ([\d.]+) ([\d.]+) (\d+)$/.exec(last.trim());
      const notes = lines.slice(0, -1).join('\n');
      if (notes) output = `${output}\n[time] ${notes}`.trim();
      const exitCode = m ? Number(m[5]) : code;
      resolve({
        ok: !timedOut && code === 0 && !!m && exitCode === 0 && !/terminated by signal/.test(notes),
        wallS,
        timeWallS: m ? Number(m[1]) : NaN,
        maxRssKiB: m ? Number(m[2]) : NaN,
        userS: m ? Number(m[3]) : NaN,
        sysS: m ? Number(m[4]) : NaN,
        exitCode, signal, timedOut, output: output.trim(),
      });
    });
  });
}
