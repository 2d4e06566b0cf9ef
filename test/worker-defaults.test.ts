/**
 * createBackup's defaults, by bundler (issue 18). One Worker
 * (test/browser-bundle/worker.ts: createBackup with only dir, fs and store),
 * in an app that has the built package installed as node_modules/squashfs-ts,
 * bundled twice and run in workerd, which compiles no WebAssembly from bytes:
 *
 * - as the Cloudflare Vite plugin builds a Worker: Vite with its Workers
 *   conditions (workerd, worker, module, browser), so dist/workerd.js, and
 *   the plugin's rule that a `.wasm` import is a CompiledWasm module, emitted
 *   beside the bundle (its additional-modules plugin, mimicked here: the
 *   plugin is not installed). The backup is zstd, with no warning;
 * - as a plain browser bundle: esbuild for the browser platform (the
 *   `browser` condition: dist/index.js, which imports no .wasm) and no rule
 *   for .wasm files. The backup is still made, with gzip, and its handle's
 *   warnings say why; zstd asked for by name fails, saying what it needs.
 *
 * Wrangler's own bundling (esbuild with its CompiledWasm rule) of
 * examples/worker is in test/worker-example.test.ts. `npm test` builds
 * dist/ first; alone, run `npm run build` before.
 */
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Miniflare, supportedCompatibilityDate, type WorkerOptions } from 'miniflare';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DirectoryBackup } from '../src/index.js';
import { FILES } from './browser-bundle/worker.js';
import { loadEsbuild } from './helpers/child.js';

const root = path.resolve(__dirname, '..');
let work: string;
/** The app: the Worker's source, and node_modules/squashfs-ts linking to this repository. */
let app: string;
let mf: Miniflare;

interface Built {
  /** Files of this repository the bundle took in. */
  inputs: string[];
  code: string;
  modules: NonNullable<WorkerOptions['modules']>;
}
let vite: Built;
let browser: Built;

/** Vite as the Cloudflare Vite plugin runs it for a Worker (no nodejs_compat), with its CompiledWasm rule for `.wasm` imports. */
async function buildWithVite(outDir: string): Promise<Built> {
  const { build } = await import('vite');
  const conditions = ['workerd', 'worker', 'module', 'browser'];
  const inputs = new Set<string>();
  const REFERENCE = /__CLOUDFLARE_MODULE__CompiledWasm__(.*?)__CLOUDFLARE_MODULE__/g;
  type Context = {
    resolve(source: string, importer?: string, options?: unknown): Promise<{ id: string } | null>;
    emitFile(file: { type: 'asset'; name: string; source: Uint8Array }): string;
    getFileName(reference: string): string;
  };
  await build({
    configFile: false,
    logLevel: 'silent',
    root: app,
    resolve: { conditions, mainFields: ['browser', 'module', 'jsnext:main', 'jsnext'] },
    ssr: { target: 'webworker', noExternal: true, resolve: { conditions, externalConditions: conditions } },
    build: {
      ssr: path.join(app, 'worker.ts'),
      outDir,
      emptyOutDir: true,
      ssrEmitAssets: true, // as the plugin's Worker environments do: the .wasm goes out with the bundle
      target: 'es2022',
      minify: false,
      rollupOptions: { output: { format: 'es', entryFileNames: 'worker.mjs' } },
    },
    plugins: [{
      // @cloudflare/vite-plugin's additional-modules: a `.wasm` (or `.wasm?module`) import is resolved, kept external, and emitted as an asset.
      name: 'cloudflare additional modules (CompiledWasm)',
      enforce: 'pre',
      async resolveId(this: Context, source: string, importer: string | undefined, options: unknown) {
        if (!/\.wasm(\?module)?$/.test(source)) return undefined;
        const resolved = await this.resolve(source.replace(/\?.*$/, ''), importer, options);
        if (!resolved) throw new Error(`Import "${source}" not found`);
        return { external: true, id: `__CLOUDFLARE_MODULE__CompiledWasm__${resolved.id}__CLOUDFLARE_MODULE__` };
      },
      async renderChunk(this: Context, code: string) {
        let out = code;
        for (const [reference, file] of code.matchAll(REFERENCE)) {
          const id = this.emitFile({ type: 'asset', name: path.basename(file!), source: new Uint8Array(await fsp.readFile(file!)) });
          out = out.replace(reference, `./${this.getFileName(id)}`);
        }
        return out === code ? null : out;
      },
      load(id: string) {
        if (id.startsWith(root) && !id.includes('node_modules')) inputs.add(path.relative(root, id));
        return null;
      },
    }],
  });
  const code = await fsp.readFile(path.join(outDir, 'worker.mjs'), 'utf8');
  const modules: Built['modules'] = [{ type: 'ESModule', path: 'worker.mjs', contents: code }];
  for (const file of await fsp.readdir(outDir, { recursive: true })) {
    if (file.endsWith('.wasm')) modules.push({ type: 'CompiledWasm', path: file, contents: await fsp.readFile(path.join(outDir, file)) });
  }
  return { inputs: [...inputs], code, modules };
}

/** esbuild for the browser platform: the `browser` condition, and a node: import anywhere fails the build. */
async function buildForBrowser(outDir: string): Promise<Built> {
  const outfile = path.join(outDir, 'worker.mjs');
  const result = await loadEsbuild().build({
    entryPoints: [path.join(app, 'worker.ts')],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    metafile: true,
    logLevel: 'silent',
  });
  const code = await fsp.readFile(outfile, 'utf8');
  const inputs = Object.keys(result.metafile!.inputs).map((input) => path.relative(root, path.resolve(input))).filter((input) => !input.startsWith('..') && !input.includes('node_modules'));
  return { inputs, code, modules: [{ type: 'ESModule', path: 'worker.mjs', contents: code }] };
}

beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'sqfs-worker-defaults-'));
  app = path.join(work, 'app');
  await fsp.mkdir(path.join(app, 'node_modules'), { recursive: true });
  await fsp.symlink(root, path.join(app, 'node_modules/squashfs-ts'), 'dir');
  await fsp.copyFile(path.join(root, 'test/browser-bundle/worker.ts'), path.join(app, 'worker.ts'));
  [vite, browser] = await Promise.all([buildWithVite(path.join(work, 'vite')), buildForBrowser(path.join(work, 'browser'))]);
  mf = new Miniflare({
    workers: [
      { name: 'vite', modules: vite.modules, compatibilityDate: supportedCompatibilityDate, r2Buckets: ['BACKUPS'] },
      { name: 'browser', modules: browser.modules, compatibilityDate: supportedCompatibilityDate, r2Buckets: ['BACKUPS'] },
    ],
  });
  await mf.ready;
}, 60_000);

afterAll(async () => {
  await mf?.dispose();
  if (work) await fsp.rm(work, { recursive: true, force: true });
});

async function backup(worker: 'vite' | 'browser', query = ''): Promise<{ status: number; body: Record<string, unknown> }> {
  const fetcher = (await mf.getWorker(worker)) as unknown as { fetch(url: string, init: RequestInit): Promise<Response> };
  const res = await fetcher.fetch(`http://localhost/backup${query}`, { method: 'POST' });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** A stored image, and its compressor id (superblock offset 20). */
async function storedImage(worker: string, key: string): Promise<{ image: Uint8Array; compressorId: number }> {
  const bucket = (await mf.getR2Bucket('BACKUPS', worker)) as unknown as { get(key: string): Promise<{ arrayBuffer(): Promise<ArrayBuffer> } | null> };
  const image = new Uint8Array(await (await bucket.get(`browser/${key}`))!.arrayBuffer());
  return { image, compressorId: new DataView(image.buffer).getUint16(20, true) };
}

/** unsquashfs extracts exactly the Worker's files. */
async function expectExtracts(image: Uint8Array, name: string): Promise<void> {
  const file = path.join(work, `${name}.sqfs`);
  await fsp.writeFile(file, image);
  const out = path.join(work, `${name}-extracted`);
  execFileSync('unsquashfs', ['-no-progress', '-q', '-d', out, file]);
  for (const [entry, text] of Object.entries(FILES)) expect(await fsp.readFile(path.join(out, entry.slice('/data/'.length)), 'utf8')).toBe(text);
}

const IMPORTS_WASM = /(?:from|import)\s*\(?\s*["'][^"']*\.wasm["']/;

describe('a Worker built as the Cloudflare Vite plugin builds it, in workerd', () => {
  it('is dist/workerd.js, its zstd.wasm emitted beside it as a compiled module', () => {
    expect(vite.inputs).toContain('dist/workerd.js');
    expect(vite.inputs).not.toContain('dist/index.js');
    expect(vite.code).toMatch(IMPORTS_WASM);
    expect(vite.modules.map((m: { type?: string }) => m.type)).toEqual(['ESModule', 'CompiledWasm']);
  });

  it('createBackup with only dir, fs and store makes a zstd backup, with no warning', async () => {
    const { status, body } = await backup('vite');
    expect(status, JSON.stringify(body)).toBe(200);
    const handle = body as unknown as DirectoryBackup;
    expect(handle).toMatchObject({ format: 'squashfs-4.0', compression: 'zstd', level: 3, dir: '/data', files: 2, warnings: [] });
    const { image, compressorId } = await storedImage('vite', handle.key);
    expect(compressorId).toBe(6);
    await expectExtracts(image, 'vite');
  });
});

describe('a browser bundle, without zstd.wasm, in workerd', () => {
  it('is dist/index.js, with no .wasm import', () => {
    expect(browser.inputs).toContain('dist/index.js');
    expect(browser.inputs).not.toContain('dist/workerd.js');
    expect(browser.code).not.toMatch(IMPORTS_WASM);
  });

  it('createBackup with only dir, fs and store backs up with gzip, and the handle says why', async () => {
    const { status, body } = await backup('browser');
    expect(status, JSON.stringify(body)).toBe(200);
    const handle = body as unknown as DirectoryBackup;
    expect(handle).toMatchObject({ format: 'squashfs-4.0', compression: 'gzip', level: 9, dir: '/data', files: 2 });
    expect(handle.warnings).toHaveLength(1);
    expect(handle.warnings[0]).toMatch(/^gzip was used: zstd, the default, cannot compress here: .*zstd\.wasm.*workerd entry/);
    // The image is a gzip one (compressor id 1) that unsquashfs extracts.
    const { image, compressorId } = await storedImage('browser', handle.key);
    expect(compressorId).toBe(1);
    await expectExtracts(image, 'browser');
  });

  it('zstd asked for by name fails, saying what it needs', async () => {
    const { status, body } = await backup('browser', '?comp=zstd');
    expect(status).toBe(422);
    expect(body).toMatchObject({ code: 'BACKUP_CREATE_ERROR', message: expect.stringMatching(/zstd\.wasm/) });
  });
});
