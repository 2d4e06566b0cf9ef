/**
 * Bundles test/workerd/worker.ts (and through it the built dist/index.js)
 * into one ES module for workerd, with esbuild (which tsup brings along),
 * resolving packages the way Wrangler does for Workers (conditions
 * workerd, worker, browser). A node: import anywhere in the graph fails the
 * build: the browser platform has no node builtins (a Worker bundled with
 * `nodejsCompat`, for memfs, is the exception).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadEsbuild } from '../helpers/child.js';

const here = path.dirname(fileURLToPath(import.meta.url));

export interface WorkerBundle {
  file: string;
  code: string;
  /** Bundle size in bytes. */
  bytes: number;
  /** Input files by bytes contributed, largest first. */
  inputs: [string, number][];
}

export interface BundleOptions {
  /** The Worker's source, a file of this directory (default worker.ts). */
  entry?: string;
  /**
   * For a Worker run with nodejs_compat, whose own dependencies (memfs)
   * ask for Node's modules: bundled for the node platform, with a require
   * for CommonJS, as test/worker-example.test.ts bundles examples/worker.
   * The package is still dist/index.js (the first test shows it has no
   * node: imports).
   */
  nodejsCompat?: boolean;
}

export async function bundleWorker(outDir: string, options: BundleOptions = {}): Promise<WorkerBundle> {
  const entry = options.entry ?? 'worker.ts';
  const dist = path.resolve(here, '../../dist/index.js');
  try {
    await fsp.access(dist);
  } catch {
    throw new Error(`${dist} is missing: run "npm run build" first (npm test does)`);
  }
  const file = path.join(outDir, `${path.basename(entry, '.ts')}.mjs`);
  const result = await loadEsbuild().build({
    entryPoints: [path.join(here, entry)],
    outfile: file,
    bundle: true,
    format: 'esm',
    platform: options.nodejsCompat ? 'node' : 'browser',
    ...(options.nodejsCompat && {
      banner: { js: "import { createRequire as sqfsTestCreateRequire } from 'node:module'; const require = sqfsTestCreateRequire('/');" },
    }),
    conditions: ['workerd', 'worker', 'browser'],
    target: 'es2022',
    metafile: true,
    logLevel: 'silent',
  });
  const code = await fsp.readFile(file, 'utf8');
  const inputs = Object.entries(result.metafile!.inputs)
    .map(([name, { bytes }]): [string, number] => [name, bytes])
    .sort((a, b) => b[1] - a[1]);
  return { file, code, bytes: Buffer.byteLength(code), inputs };
}
