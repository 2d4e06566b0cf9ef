/**
 * Runs the writer in a child node process: as another user (to make files
 * unreadable even though the tests run as root), or so that the test can
 * watch the child's open files in /proc and change a file under it.
 *
 * The child is test/helpers/pack-child.ts bundled with esbuild (which tsup,
 * a devDependency, brings along) into one self-contained .mjs, so it runs
 * from a temp dir, by any user, without a TypeScript loader.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadEsbuild, nodeBundleOptions } from './esbuild.mjs';

export { loadEsbuild, nodeBundleOptions, type EsbuildLike } from './esbuild.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Bundles a TypeScript entry and what it imports into one ESM file that plain `node` runs. */
export async function bundleForNode(entry: string, outfile: string): Promise<string> {
  await loadEsbuild().build({ ...nodeBundleOptions, entryPoints: [entry], outfile });
  return outfile;
}

/**
 * Bundles a child entry (default: the real writer's, pack-child.ts) into
 * `outDir/<entry>.mjs` and returns its path. Makes `outDir` mode 0755.
 */
export async function buildPackChild(outDir: string, entry = 'pack-child.ts'): Promise<string> {
  const outfile = await bundleForNode(path.join(here, entry), path.join(outDir, entry.replace(/\.ts$/, '.mjs')));
  // Runnable by the unprivileged child too (mkdtemp makes 0700 dirs).
  await fsp.chmod(outfile, 0o644);
  await fsp.chmod(outDir, 0o755);
  return outfile;
}

export interface ChildError {
  isSquashfsError: boolean;
  name: string;
  code?: string;
  path?: string;
  message: string;
  stack: string;
}

export type ApiOutcome = { ok: true; result: unknown } | { ok: false; error: ChildError };
export type CliOutcome =
  | { code: number; stdout: string; stderr: string; threw?: undefined }
  | { threw: ChildError; stdout: string; stderr: string; code?: undefined };

export interface ChildRunOptions {
  /** Run as this uid/gid (via setpriv; needs root). */
  asUser?: { uid: number; gid: number };
  /** Called with the child process right after it is spawned. */
  onSpawn?: (child: ChildProcess) => void;
  timeoutMs?: number;
}

async function runChild(script: string, mode: 'api' | 'cli', req: unknown, opts: ChildRunOptions): Promise<unknown> {
  const nodeArgs = [script, mode, JSON.stringify(req)];
  const [cmd, args] = opts.asUser
    ? [
        'setpriv',
        [
          `--reuid=${opts.asUser.uid}`,
          `--regid=${opts.asUser.gid}`,
          '--clear-groups',
          '--inh-caps=-all',
          process.execPath,
          ...nodeArgs,
        ],
      ]
    : [process.execPath, nodeArgs];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: opts.timeoutMs ?? 60_000,
      env: { ...process.env, HOME: opts.asUser ? '/tmp' : process.env.HOME },
    });
    opts.onSpawn?.(child);
    let out = '';
    let err = '';
    child.stdout!.on('data', (b: Buffer) => (out += b.toString('utf8')));
    child.stderr!.on('data', (b: Buffer) => (err += b.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      try {
        resolve(JSON.parse(out));
      } catch {
        reject(new Error(`pack child failed: exit ${code} ${signal ?? ''}\nstdout: ${out}\nstderr: ${err}`));
      }
    });
  });
}

export function packInChild(
  script: string,
  dir: string,
  image: string,
  options: Record<string, unknown> = {},
  opts: ChildRunOptions = {},
): Promise<ApiOutcome> {
  return runChild(script, 'api', { dir, image, options }, opts) as Promise<ApiOutcome>;
}

export function cliInChild(script: string, argv: string[], opts: ChildRunOptions = {}): Promise<CliOutcome> {
  return runChild(script, 'cli', { argv }, opts) as Promise<CliOutcome>;
}

/**
 * Resolves when process `pid` has `file` open (polling /proc/pid/fd every
 * millisecond or so); rejects after `timeoutMs`.
 */
export async function waitUntilOpened(pid: number, file: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const fdDir = `/proc/${pid}/fd`;
  file = await fsp.realpath(file); // /proc shows resolved paths
  for (;;) {
    let fds: string[] = [];
    try {
      fds = await fsp.readdir(fdDir);
    } catch {
      throw new Error(`process ${pid} exited before opening ${file}`);
    }
    for (const fd of fds) {
      try {
        if ((await fsp.readlink(`${fdDir}/${fd}`)) === file) return;
      } catch {
        // fd closed meanwhile
      }
    }
    if (Date.now() > deadline) throw new Error(`process ${pid} did not open ${file} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 1));
  }
}
