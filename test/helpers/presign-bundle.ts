/**
 * Bundles the presign Worker (test/presign-workerd/worker.ts, and through it
 * the built dist/index.js, which its import of 'squashfs-ts' resolves to)
 * into one ES module for workerd, the way test/workerd/bundle.ts bundles
 * its Worker: esbuild, the browser platform (so a node: import anywhere
 * fails the build) and Wrangler's conditions (workerd, worker, browser).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadEsbuild } from './child.js';

const here = path.dirname(fileURLToPath(import.meta.url));

export interface PresignWorkerBundle {
  code: string;
  /** Input files, as esbuild's metafile names them. */
  inputs: string[];
}

export async function bundlePresignWorker(outDir: string): Promise<PresignWorkerBundle> {
  const dist = path.resolve(here, '../../dist/index.js');
  try {
    await fsp.access(dist);
  } catch {
    throw new Error(`${dist} is missing: run "npm run build" first (npm test does)`);
  }
  const outfile = path.join(outDir, 'presign-worker.mjs');
  const result = await loadEsbuild().build({
    entryPoints: [path.resolve(here, '../presign-workerd/worker.ts')],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    conditions: ['workerd', 'worker', 'browser'],
    target: 'es2022',
    metafile: true,
    logLevel: 'silent',
    plugins: [{
      name: 'squashfs-ts from dist',
      setup(build: { onResolve(options: { filter: RegExp }, callback: () => { path: string }): void }) {
        build.onResolve({ filter: /^squashfs-ts$/ }, () => ({ path: dist }));
      },
    }],
  });
  return { code: await fsp.readFile(outfile, 'utf8'), inputs: Object.keys(result.metafile!.inputs) };
}
