/**
 * Bundles test/workerd/worker.ts (and through it the built dist/index.js)
 * into one ES module for workerd, with esbuild (which tsup brings along),
 * resolving packages the way Wrangler does for Workers (conditions
 * workerd, worker, browser). A node: import anywhere in the graph fails the
 * build: the browser platform has no node builtins.
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

export async function bundleWorker(outDir: string): Promise<WorkerBundle> {
  const dist = path.resolve(here, '../../dist/index.js');
  try {
    await fsp.access(dist);
  } catch {
    throw new Error(`${dist} is missing: run "npm run build" first (npm test does)`);
  }
  const file = path.join(outDir, 'worker.mjs');
  const result = await loadEsbuild().build({
    entryPoints: [path.join(here, 'worker.ts')],
    outfile: file,
    bundle: true,
    format: 'esm',
    platform: 'browser',
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
