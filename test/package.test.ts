/**
 * The package as users get it: the built ESM + CJS + d.ts output, the
 * `exports` map, a main entry that reaches no `node:` module, and the CLI
 * binary. `npm test` builds dist/ before running the suite.
 */
import { execFile } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..');
const dist = path.join(root, 'dist');
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
const exec = promisify(execFile);

/** Every file an ESM entry reaches through relative imports. */
async function importGraph(entry: string): Promise<Map<string, string>> {
  const seen = new Map<string, string>();
  const visit = async (file: string) => {
    if (seen.has(file)) return;
    const text = await fsp.readFile(file, 'utf8');
    seen.set(file, text);
    for (const match of text.matchAll(/(?:from|import)\s*\(?\s*["'](\.[^"']+)["']/g)) {
      if (match[1]!.endsWith('.wasm')) continue; // the Workers entry's module, for its bundler
      await visit(path.resolve(path.dirname(file), match[1]!));
    }
  };
  await visit(entry);
  return seen;
}

describe('package', () => {
  it('declares the entries, the bin and the types it builds', async () => {
    expect(pkg.name).toBe('squashfs-ts');
    expect(pkg.type).toBe('module');
    expect(pkg.bin).toEqual({ sqfs: './dist/cli.js' });
    expect(Object.keys(pkg.exports)).toEqual(['.', './node', './zstd.wasm', './xz.wasm', './lz4.wasm', './package.json']);
    for (const wasm of ['./zstd.wasm', './xz.wasm', './lz4.wasm']) await fsp.access(path.join(root, pkg.exports[wasm]));
    for (const entry of ['.', './node']) {
      for (const condition of ['import', 'require'] as const) {
        const target = pkg.exports[entry][condition];
        await fsp.access(path.join(root, target.default));
        await fsp.access(path.join(root, target.types));
      }
    }
    // Workers get the main entry with zstd.wasm imported (dist/workerd.js), browsers the main entry;
    // Node gets the one with Node's defaults (real fs, local store).
    for (const condition of ['workerd', 'worker']) expect(pkg.exports['.'][condition]).toEqual({ types: './dist/index.d.ts', default: './dist/workerd.js' });
    expect(pkg.exports['.'].browser.default).toBe('./dist/index.js');
    expect(pkg.exports['.'].node).toEqual(pkg.exports['./node']);
    expect(Object.keys(pkg.exports['.']).slice(0, 4)).toEqual(['workerd', 'worker', 'browser', 'node']);
  });

  it('keeps node: modules out of the main and Workers entries; the Workers entry imports zstd.wasm beside it', async () => {
    const workerd = await fsp.readFile(path.join(dist, 'workerd.js'), 'utf8');
    expect(workerd).toMatch(/^import \w+ from "\.\/zstd\.wasm";$/m);
    await fsp.access(path.join(dist, 'zstd.wasm'));
    const graph = new Map([...(await importGraph(path.join(dist, 'index.js'))), ...(await importGraph(path.join(dist, 'workerd.js')))]);
    for (const [file, text] of graph) {
      expect(text.match(/["']node:[a-z_/]+["']/g) ?? [], file).toEqual([]);
      expect(text.match(/require\(["'](fs|path|zlib|crypto|child_process)["']\)/g) ?? [], file).toEqual([]);
    }
  });

  it('loads as ESM and as CJS with the same API', async () => {
    const esm = await import(path.join(dist, 'index.js'));
    const cjs = createRequire(import.meta.url)(path.join(dist, 'index.cjs'));
    for (const name of ['writeImage', 'fsSource', 'SquashfsError', 'defaultCodecs', 'decodeSuperblock']) {
      expect(typeof esm[name], name).toBe('function');
      expect(typeof cjs[name], name).toBe('function');
    }
    const node = await import(path.join(dist, 'node.js'));
    expect(typeof node.packDirectory).toBe('function');
    for (const name of ['createBackup', 'openBackup', 'listBackups', 'deleteBackup', 'pruneExpiredBackups', 's3Store', 'r2Store', 'StreamUpload']) {
      expect(typeof esm[name], name).toBe('function');
      expect(typeof cjs[name], name).toBe('function');
    }
    expect(typeof node.restoreBackup).toBe('function');
    expect(typeof node.localStore).toBe('function');
    expect(node.createBackup).not.toBe(esm.createBackup); // Node's binds the real fs and a local store
  });

  it('runs the sqfs binary from dist', async () => {
    const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'sqfs-pkg-'));
    try {
      await fsp.mkdir(path.join(work, 'src/sub'), { recursive: true });
      await fsp.writeFile(path.join(work, 'src/sub/hello.txt'), 'hello\n');
      const image = path.join(work, 'out.sqfs');
      await exec(process.execPath, [path.join(dist, 'cli.js'), 'pack', path.join(work, 'src'), image, '--mtime', '0']);
      const { stdout } = await exec('unsquashfs', ['-lln', image]);
      expect(stdout).toContain('squashfs-root/sub/hello.txt');
      const usage = await exec(process.execPath, [path.join(dist, 'cli.js'), 'frobnicate']).catch((e) => e);
      expect(usage.code).toBe(2);
      const { version } = JSON.parse(await fsp.readFile(path.join(dist, '../package.json'), 'utf8')) as { version: string };
      expect((await exec(process.execPath, [path.join(dist, 'cli.js'), '--version'])).stdout).toBe(`sqfs ${version}\n`);
    } finally {
      await fsp.rm(work, { recursive: true, force: true });
    }
  });
});
