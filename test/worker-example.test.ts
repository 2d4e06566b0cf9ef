/**
 * examples/worker in real workerd (Miniflare), bundled from the package's
 * BUILT output (the "workerd" condition of package.json's exports, i.e.
 * dist/index.js, and dist/zstd.wasm as a CompiledWasm module): backups with
 * gzip and zstd into R2 (Miniflare's R2 binding) and into s3rver on
 * 127.0.0.1 through presigned URLs (behind the fault proxy, which checks
 * signatures and R2's part rules), restores, single files read by range,
 * and a bucket that refuses uploads.
 *
 * `npm test` builds dist/ first; alone, run `npm run build` before.
 */
import { execFileSync } from 'node:child_process';
import { promises as fsp, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { Miniflare, supportedCompatibilityDate } from 'miniflare';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEsbuild } from './helpers/child.js';
import { ACCESS_KEY, SECRET_KEY, startS3, type S3Harness } from './helpers/s3-server.js';

const root = path.resolve(__dirname, '..');
let work: string;
let mf: Miniflare;
let s3: S3Harness;
let bundle: { code: string; bytes: number; gzipped: number };
const wasm = readFileSync(path.join(root, 'dist/zstd.wasm'));

/** Bundles the example as wrangler would, but resolving squashfs-ts to this package's built "workerd" entry. */
async function bundleExample(outDir: string) {
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
  const entry = path.join(root, pkg.exports['.'].workerd.default);
  const outfile = path.join(outDir, 'worker.mjs');
  await loadEsbuild().build({
    entryPoints: [path.join(root, 'examples/worker/src/index.ts')],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'node', // memfs asks for Node's modules, which nodejs_compat provides
    conditions: ['workerd', 'worker', 'browser'],
    target: 'es2022',
    nodePaths: [path.join(root, 'node_modules')],
    // memfs is CommonJS: its require() calls of Node modules need a require.
    banner: { js: "import { createRequire as sqfsExampleCreateRequire } from 'node:module'; const require = sqfsExampleCreateRequire('/');" },
    logLevel: 'silent',
    plugins: [{
      name: 'squashfs-ts from dist',
      setup(build: { onResolve(o: { filter: RegExp }, f: (a: { path: string }) => unknown): void }) {
        build.onResolve({ filter: /^squashfs-ts\/zstd\.wasm$/ }, () => ({ path: './zstd.wasm', external: true }));
        build.onResolve({ filter: /^squashfs-ts$/ }, () => ({ path: entry }));
      },
    }],
  });
  const code = await fsp.readFile(outfile, 'utf8');
  return { code, bytes: Buffer.byteLength(code), gzipped: gzipSync(code).length };
}

beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'sqfs-worker-example-'));
  s3 = await startS3();
  bundle = await bundleExample(work);
  mf = new Miniflare({
    modules: [
      { type: 'ESModule', path: 'worker.mjs', contents: bundle.code },
      { type: 'CompiledWasm', path: 'zstd.wasm', contents: wasm },
    ],
    compatibilityDate: supportedCompatibilityDate,
    compatibilityFlags: ['nodejs_compat'],
    r2Buckets: ['BACKUPS'],
    bindings: { S3_ENDPOINT: s3.endpoint, S3_BUCKET: s3.bucket, S3_ACCESS_KEY_ID: ACCESS_KEY, S3_SECRET_ACCESS_KEY: SECRET_KEY },
    host: '127.0.0.1',
    port: 0,
    cf: false,
  });
  await mf.ready;
}, 60_000);

afterAll(async () => {
  await mf?.dispose();
  await s3?.close();
  if (work) await fsp.rm(work, { recursive: true, force: true });
});

async function call(route: string, init?: RequestInit) {
  const res = await mf.dispatchFetch(`http://localhost${route}`, init as never);
  return { status: res.status, text: await res.text(), headers: res.headers };
}

/** CPU seconds (user + system) the workerd processes under this one have used (from /proc). */
function workerdCpuSeconds(): number {
  const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));
  let total = 0;
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // gone
    }
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (name.startsWith('workerd') && Number(fields[1]) === process.pid) total += (Number(fields[11]) + Number(fields[12])) / ticks;
  }
  return total;
}

describe('examples/worker in workerd', () => {
  it('is bundled from the built package (sizes reported)', () => {
    expect(bundle.code).toContain('StreamUpload');
    console.log(`worker bundle: ${bundle.bytes} bytes (${bundle.gzipped} gzipped), memfs included; zstd.wasm: ${wasm.length} bytes (${gzipSync(wasm).length} gzipped)`);
    expect(bundle.bytes).toBeLessThan(2 * 1024 * 1024);
  });

  for (const [store, comp] of [['r2', 'zstd'], ['r2', 'gzip'], ['s3', 'zstd'], ['s3', 'gzip']] as const) {
    it(`backs up to ${store} with ${comp}, restores, and serves one file by range`, async () => {
      // 12 MiB, half noise: an image of two parts, so the multipart path runs.
      const mib = store === 's3' ? 12 : 6;
      const made = await call(`/backup?store=${store}&comp=${comp}&mib=${mib}`, { method: 'POST' });
      expect(made.status, made.text).toBe(200);
      const handle = JSON.parse(made.text);
      expect(handle).toMatchObject({ format: 'squashfs-4.0', compression: comp, dir: '/data', files: 4 });
      const restored = await call(`/restore?store=${store}&mib=${mib}`, { method: 'POST', body: made.text });
      expect(restored.status, restored.text).toBe(200);
      expect(JSON.parse(restored.text)).toMatchObject({ dir: '/restored', files: 4, differences: [] });
      const file = await call(`/file?store=${store}&id=${handle.id}&path=/analysis.json`);
      expect(file.status, file.text).toBe(200);
      expect(JSON.parse(file.text).result).toBe(42);
      expect(Number(file.headers.get('x-ranged-requests'))).toBeLessThanOrEqual(8);
      if (store === 's3') {
        expect(handle.size).toBeGreaterThan(5 * 1024 * 1024);
        expect([...s3.uploads.values()].filter((u) => u.key.endsWith(handle.key)).map((u) => u.state)).toEqual(['completed']);
        expect(s3.violations).toEqual([]);
        expect(s3.openUploads()).toEqual([]);
        // The stored image, fetched past the Worker, is one unsquashfs reads.
        const res = await fetch(`${s3.direct}/${s3.bucket}/worker/${handle.key}`);
        const image = path.join(work, `${store}-${comp}.sqfs`);
        await fsp.writeFile(image, new Uint8Array(await res.arrayBuffer()));
        const out = path.join(work, `${store}-${comp}`);
        execFileSync('unsquashfs', ['-no-progress', '-q', '-d', out, image]);
        expect(await fsp.readFile(path.join(out, 'readme.txt'), 'utf8')).toBe('hello from a Worker\n');
        expect(await fsp.readlink(path.join(out, 'link'))).toBe('readme.txt');
      }
    });
  }

  it('a bucket that refuses uploads: BACKUP_CREATE_ERROR, nothing left behind', async () => {
    const bucket = (await mf.getR2Bucket('BACKUPS')) as unknown as { list(o: { prefix: string }): Promise<{ objects: { key: string }[] }> };
    const before = (await bucket.list({ prefix: 'worker/' })).objects.map((o) => o.key).sort();
    for (const mib of [1, 12]) {
      const res = await call(`/backup?store=broken-r2&mib=${mib}`, { method: 'POST' });
      expect(res.status).toBe(422);
      expect(JSON.parse(res.text)).toMatchObject({ code: 'BACKUP_CREATE_ERROR', message: expect.stringMatching(/refuses uploads/) });
    }
    expect((await bucket.list({ prefix: 'worker/' })).objects.map((o) => o.key).sort()).toEqual(before);
  });

  it('measures the CPU time of backing up a 20 MB tree inside workerd', async () => {
    const before = workerdCpuSeconds();
    const started = performance.now();
    const res = await call('/backup?store=r2&comp=zstd&mib=20', { method: 'POST' });
    const wall = (performance.now() - started) / 1000;
    const cpu = workerdCpuSeconds() - before;
    expect(res.status, res.text).toBe(200);
    const handle = JSON.parse(res.text);
    console.log(`20 MiB tree backed up to R2 in workerd (zstd 3): ${wall.toFixed(2)} s wall, ${cpu.toFixed(2)} s workerd CPU, image ${handle.size} bytes`);
    expect(cpu).toBeGreaterThan(0);
  });
});
