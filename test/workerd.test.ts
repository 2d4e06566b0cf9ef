/**
 * The runtime-agnostic main entry in real Cloudflare workerd: the built
 * dist/index.js, bundled with a Worker (test/workerd/worker.ts), runs in
 * workerd through Miniflare WITHOUT nodejs_compat, at the newest
 * compatibility date the installed workerd supports. The Worker packs an
 * in-memory tree (memorySource) with gzip through fflate and through the
 * Web CompressionStream; the images it returns must extract exactly under
 * unsquashfs and pass sqfs2tar and 7z; its reader route must read images
 * back, mksquashfs's included. Only loopback is reached: Miniflare listens
 * on 127.0.0.1 and the Request.cf fetch is turned off.
 *
 * A second Worker (test/workerd/backup-worker.ts, with an R2 binding and
 * nodejs_compat for memfs alone) makes a chain in R2, a full backup and a
 * delta of a memfs tree, compacts it with compactBackup, and restores both
 * the compacted backup and the delta into memfs: each must equal the tree
 * after the edit, and unsquashfs must extract the compacted image (taken
 * from R2) to it too.
 *
 * `npm test` builds dist/ before the suite; alone, run `npm run build` first.
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inflateSync } from 'node:zlib';
import { unzlibSync } from 'fflate';
import { Miniflare, supportedCompatibilityDate } from 'miniflare';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytesSource, SquashfsImage, type DirectoryBackup } from '../src/index.js';
import { expect7zAccepts, expectExtractMatches, expectImageMatches, expectSqfs2tarAccepts, isRoot, mksquashfs, run } from './helpers/oracles.js';
import { bundleWorker, type WorkerBundle } from './workerd/bundle.js';
import { materialize } from './workerd/materialize.js';
import { treeView } from './workerd/tree-view.js';
import { BIG_SIZE, compressibleText, noise, ROOT_MTIME, sampleSource, TREE_MTIME } from './workerd/tree.js';

/** The smallest valid WebAssembly module, given as a CompiledWasm module to show that a precompiled Module instantiates. */
const EMPTY_WASM = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);

let work: string;
let srcDir: string;
let xattrsLaidOut = false;
let bundle: WorkerBundle;
let mf: Miniflare;

beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'sqfs-workerd-'));
  bundle = await bundleWorker(work);
  srcDir = path.join(work, 'src');
  xattrsLaidOut = (await materialize(sampleSource(), '/', srcDir)).xattrs;
  mf = new Miniflare({
    // The bundle is handed over as one module: Miniflare's own module walker
    // refuses the probe's computed dynamic import, which workerd itself answers.
    modules: [
      { type: 'ESModule', path: 'worker.mjs', contents: bundle.code },
      { type: 'CompiledWasm', path: 'probe.wasm', contents: EMPTY_WASM },
      // The package's zstd encoder, as a Worker imports it: `import m from 'squashfs-ts/zstd.wasm'`.
      { type: 'CompiledWasm', path: 'zstd.wasm', contents: await fsp.readFile(path.join(__dirname, '../dist/zstd.wasm')) },
    ],
    compatibilityDate: supportedCompatibilityDate,
    compatibilityFlags: [], // no nodejs_compat: the core must not need it
    host: '127.0.0.1',
    port: 0,
    cf: false, // else Miniflare fetches Request.cf data from the internet
  });
  await mf.ready;
});

afterAll(async () => {
  try {
    await mf?.dispose();
  } finally {
    if (work) await fsp.rm(work, { recursive: true, force: true });
  }
});

async function call(route: string, body?: Uint8Array): Promise<{ status: number; bytes: Uint8Array; headers: Headers }> {
  const res = await mf.dispatchFetch(`http://localhost${route}`, body ? { method: 'POST', body } : {});
  return { status: res.status, bytes: new Uint8Array(await res.arrayBuffer()), headers: res.headers as unknown as Headers };
}

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

function adler32(data: Uint8Array): number {
  let a = 1;
  let b = 0;
  for (let i = 0; i < data.length; i++) {
    a = (a + data[i]!) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/** Every oracle there is for this environment: as root owners are laid out, so the listing compares too. */
async function expectMatchesTree(image: string): Promise<void> {
  const opts = { xattrs: isRoot() && xattrsLaidOut ? undefined : false };
  if (isRoot()) {
    await expectImageMatches(image, srcDir, opts);
  } else {
    await expectExtractMatches(image, srcDir, { ...opts, owners: false });
    await expectSqfs2tarAccepts(image);
    await expect7zAccepts(image);
  }
}

describe('workerd (Miniflare, no nodejs_compat)', () => {
  it('bundles dist/index.js for the Worker without node: modules', () => {
    expect(bundle.inputs.some(([name]) => name.endsWith('dist/index.js'))).toBe(true);
    expect(bundle.code.match(/["']node:[a-z_/]+["']/g) ?? []).toEqual([]);
    expect(bundle.bytes).toBeLessThan(1024 * 1024);
  });

  it('runs in workerd, which refuses WebAssembly from bytes and node: modules', async () => {
    const { status, bytes } = await call('/probe');
    expect(status).toBe(200);
    const probe = JSON.parse(text(bytes));
    expect(probe.userAgent).toBe('Cloudflare-Workers');
    expect(probe.compressionStream).toBe(true);
    expect(probe.process).toBe('undefined');
    expect(probe.Buffer).toBe('undefined');
    expect(probe.wasmModuleFromBytes).toMatch(/^CompileError: .*Wasm code generation disallowed by embedder/);
    expect(probe.wasmCompileFromBytes).toMatch(/Wasm code generation disallowed by embedder/);
    expect(probe.wasmInstantiateFromBytes).toMatch(/Wasm code generation disallowed by embedder/);
    expect(probe.wasmInstantiateImportedModule).toBe('ok');
    expect(probe.importNodeZlib).toBe('Error: No such module "node:zlib".');
    expect(probe.zstdModule).toBe(true);
  });

  it("has CompressionStream('deflate') emit a zlib stream (header, deflate, Adler-32)", async () => {
    const input = compressibleText(100_000);
    const { status, bytes } = await call('/deflate', input);
    expect(status).toBe(200);
    const [cmf, flg] = [bytes[0]!, bytes[1]!];
    expect(cmf & 0x0f).toBe(8); // deflate
    expect(cmf >> 4).toBeLessThanOrEqual(7); // window <= 32 KiB
    expect((cmf * 256 + flg) % 31).toBe(0);
    expect(flg & 0x20).toBe(0); // no preset dictionary
    expect(new DataView(bytes.buffer, bytes.byteOffset).getUint32(bytes.length - 4)).toBe(adler32(input));
    expect(Buffer.compare(inflateSync(bytes), input)).toBe(0); // zlib checks the Adler-32 too
    expect(Buffer.compare(unzlibSync(bytes), input)).toBe(0); // and fflate, the codec's decompress, reads it
  });

  // fflate at level 9 writes the zlib header 78 da; workerd's native zlib (CompressionStream) 78 9c.
  const cases = [
    { name: 'gzip through fflate', route: '/write?codec=gzip-fflate', level: 9, dataHeader: [0x78, 0xda] },
    { name: 'gzip through CompressionStream', route: '/write?codec=gzip-native', level: 9, dataHeader: [0x78, 0x9c] },
    { name: 'gzip through CompressionStream, level 1 (metadata only)', route: '/write?codec=gzip-native&level=1', level: 1, dataHeader: [0x78, 0x9c] },
  ];
  const images = new Map<string, Uint8Array>();

  for (const c of cases) {
    it(`writes an image unsquashfs extracts exactly: ${c.name}`, async () => {
      const { status, bytes, headers } = await call(c.route, new Uint8Array(0));
      expect(status, text(bytes).slice(0, 2000)).toBe(200);
      const result = JSON.parse(headers.get('x-write-result')!);
      expect(result).toMatchObject({ compression: 'gzip', level: c.level, blockSize: 131072, files: 7, imageSize: bytes.length });
      expect(bytes.length % 4096).toBe(0);
      const view = new DataView(bytes.buffer, bytes.byteOffset);
      expect(view.getUint32(0, true)).toBe(0x73717368);
      expect(view.getUint16(20, true)).toBe(1); // gzip
      // The first data block (big.txt's) follows the superblock and, for levels but 9, the options.
      const dataStart = 96 + (c.level === 9 ? 0 : 2 + 8);
      expect([bytes[dataStart], bytes[dataStart + 1]]).toEqual(c.dataHeader);
      images.set(c.route, bytes);
      const file = path.join(work, `${c.route.replace(/\W+/g, '_')}.sqfs`);
      await fsp.writeFile(file, bytes);
      await expectMatchesTree(file);
    });
  }

  it('lays the tree out as described (the oracles compare the images against this)', async () => {
    expect(Buffer.compare(await fsp.readFile(path.join(srcDir, 'big.txt')), compressibleText(BIG_SIZE))).toBe(0);
    expect(Buffer.compare(await fsp.readFile(path.join(srcDir, 'bin/random.bin')), noise(5000))).toBe(0);
    expect(await fsp.readFile(path.join(srcDir, 'readme.txt'), 'utf8')).toBe('hello from workerd\n');
    expect(await fsp.readFile(path.join(srcDir, 'docs/héllo wörld.md'), 'utf8')).toBe('# unicode name\n');
    expect(await fsp.readlink(path.join(srcDir, 'link'))).toBe('readme.txt');
    expect(await fsp.readlink(path.join(srcDir, 'bin/up'))).toBe('../big.txt');
    expect((await fsp.stat(path.join(srcDir, 'bin/tool.sh'))).mode & 0o7777).toBe(0o755);
    expect((await fsp.stat(path.join(srcDir, 'big.txt'))).mode & 0o7777).toBe(0o600);
    expect((await fsp.stat(path.join(srcDir, 'docs'))).mode & 0o7777).toBe(0o750);
    expect((await fsp.stat(path.join(srcDir, 'empty'))).size).toBe(0);
    expect(await fsp.readdir(path.join(srcDir, 'emptydir'))).toEqual([]);
    expect((await fsp.stat(path.join(srcDir, 'docs/old'))).mtimeMs).toBe(1_000_000_000_000);
    expect((await fsp.stat(path.join(srcDir, 'readme.txt'))).mtimeMs).toBe(TREE_MTIME * 1000);
    expect((await fsp.stat(srcDir)).mtimeMs).toBe(ROOT_MTIME * 1000);
    if (isRoot()) expect((await fsp.stat(path.join(srcDir, 'big.txt'))).uid).toBe(1000);
  });

  it('reads files back through the Worker (its own images and mksquashfs)', async () => {
    const reference = path.join(work, 'mksquashfs.sqfs');
    await mksquashfs(srcDir, reference);
    const sources = [...images.values(), new Uint8Array(await fsp.readFile(reference))];
    expect(sources).toHaveLength(cases.length + 1);
    for (const image of sources) {
      const big = await call('/read?path=big.txt', image);
      expect(big.status, text(big.bytes).slice(0, 2000)).toBe(200);
      expect(Buffer.compare(big.bytes, compressibleText(BIG_SIZE))).toBe(0);
      const streamed = await call('/read?path=/big.txt&stream=1', image);
      expect(Buffer.compare(streamed.bytes, compressibleText(BIG_SIZE))).toBe(0);
      const random = await call('/read?path=bin/random.bin', image);
      expect(Buffer.compare(random.bytes, noise(5000))).toBe(0);
      expect(text((await call(`/read?path=${encodeURIComponent('docs/héllo wörld.md')}`, image)).bytes)).toBe('# unicode name\n');
      expect(text((await call('/readlink?path=bin/up', image)).bytes)).toBe('../big.txt');
      const missing = await call('/read?path=nope', image);
      expect(missing.status).toBe(404);
      expect(JSON.parse(text(missing.bytes)).code).toBe('NOT_FOUND');
      const listing = JSON.parse(text((await call('/list', image)).bytes));
      expect(listing.entries.map((e: { path: string }) => e.path).sort()).toEqual(
        ['', 'big.txt', 'bin', 'bin/random.bin', 'bin/tool.sh', 'bin/up', 'docs', 'docs/héllo wörld.md', 'docs/old', 'empty', 'emptydir', 'link', 'readme.txt'].sort(),
      );
    }
  });

  for (const level of [3, 15]) {
    it(`writes a zstd image (level ${level}) from the precompiled module that unsquashfs extracts exactly`, async () => {
      const { status, bytes, headers } = await call(`/write?codec=zstd&level=${level}`, new Uint8Array(0));
      expect(status, text(bytes).slice(0, 2000)).toBe(200);
      expect(JSON.parse(headers.get('x-write-result')!)).toMatchObject({ compression: 'zstd', level });
      expect(new DataView(bytes.buffer, bytes.byteOffset).getUint16(20, true)).toBe(6); // zstd
      const file = path.join(work, `zstd-${level}.sqfs`);
      await fsp.writeFile(file, bytes);
      await expectMatchesTree(file);
      const back = await call('/read?path=big.txt', bytes);
      expect(back.status, text(back.bytes).slice(0, 500)).toBe(200);
      expect(Buffer.compare(back.bytes, compressibleText(BIG_SIZE))).toBe(0);
    });
  }

  it('leaves the sqfs2tar tar listing complete', async () => {
    const file = path.join(work, 'tar-check.sqfs');
    await fsp.writeFile(file, images.get('/write?codec=gzip-native')!);
    const tar = path.join(work, 'out.tar');
    const r = await run('sh', ['-c', 'sqfs2tar "$1" > "$2"', 'sh', file, tar]);
    expect(r.code, r.stderr.toString()).toBe(0);
    const list = await run('tar', ['-tf', tar]);
    const names = list.stdout.toString().split('\n').filter(Boolean).map((n) => n.replace(/\/$/, ''));
    expect(names.sort()).toEqual(
      ['big.txt', 'bin', 'bin/random.bin', 'bin/tool.sh', 'bin/up', 'docs', 'docs/héllo wörld.md', 'docs/old', 'empty', 'emptydir', 'link', 'readme.txt'].sort(),
    );
  });
});

describe('a chain of backups compacted in workerd (R2, memfs)', () => {
  let chainMf: Miniflare;
  let chainBundle: WorkerBundle;

  beforeAll(async () => {
    chainBundle = await bundleWorker(work, { entry: 'backup-worker.ts', nodejsCompat: true });
    chainMf = new Miniflare({
      modules: [
        { type: 'ESModule', path: 'backup-worker.mjs', contents: chainBundle.code },
        { type: 'CompiledWasm', path: 'zstd.wasm', contents: await fsp.readFile(path.join(__dirname, '../dist/zstd.wasm')) },
      ],
      compatibilityDate: supportedCompatibilityDate,
      compatibilityFlags: ['nodejs_compat'], // for memfs: the package needs none (the Worker above runs it without)
      r2Buckets: ['BACKUPS'],
      host: '127.0.0.1',
      port: 0,
      cf: false,
    });
    await chainMf.ready;
  });

  afterAll(async () => {
    await chainMf?.dispose();
  });

  /** A stored image, as the Worker left it in R2. */
  async function fromR2(key: string): Promise<Uint8Array> {
    const bucket = (await chainMf.getR2Bucket('BACKUPS')) as unknown as { get(key: string): Promise<{ arrayBuffer(): Promise<ArrayBuffer> } | null> };
    const object = await bucket.get(key);
    expect(object, key).not.toBeNull();
    return new Uint8Array(await object!.arrayBuffer());
  }

  it('bundles dist/index.js with memfs', () => {
    expect(chainBundle.inputs.some(([name]) => name.endsWith('dist/index.js'))).toBe(true);
    expect(chainBundle.inputs.some(([name]) => /node_modules\/memfs\//.test(name))).toBe(true);
  });

  for (const comp of ['zstd', 'gzip'] as const) {
    it(`makes a full backup and a delta, compacts the delta, and restores both to the edited tree (${comp})`, async () => {
      const res = await chainMf.dispatchFetch(`http://localhost/chain?comp=${comp}`, { method: 'POST' });
      const body = await res.text();
      expect(res.status, body.slice(0, 3000)).toBe(200);
      const answer = JSON.parse(body) as {
        full: DirectoryBackup; delta: DirectoryBackup; compacted: DirectoryBackup;
        before: string[]; after: string[]; restoredCompacted: string[]; restoredDelta: string[];
        results: { compacted: { entries: number; files: number }; delta: { entries: number; files: number } };
      };
      const { full, delta, compacted, before, after } = answer;
      expect(full.base).toBeUndefined();
      expect(delta).toMatchObject({ base: full.id, chain: [full.id, delta.id], compression: comp });
      expect(compacted.base).toBeUndefined();
      expect(compacted.chain ?? [compacted.id]).toEqual([compacted.id]);
      expect(compacted).toMatchObject({ dir: '/data', name: delta.name, compression: comp, blockSize: full.blockSize });
      expect(new Set([full.id, delta.id, compacted.id]).size).toBe(3);

      // The edit is in the tree the delta was made of (so the checks below can fail).
      expect(after).not.toEqual(before);
      const names = (lines: string[]) => lines.map((l) => l.split(' ').slice(0, 2).join(' '));
      expect(names(after)).toEqual(expect.arrayContaining(['new/added.bin f', 'new/empty f', 'emptydir f', 'docs/fresh.md f', 'link l']));
      expect(names(after)).not.toEqual(expect.arrayContaining(['bin/random.bin f']));
      expect(after.some((l) => l.startsWith('old'))).toBe(false);
      expect(after).toContain('link l -> big.txt');

      // Restored, the compacted backup and the delta (through its chain) are the tree after the edit.
      expect(answer.restoredCompacted).toEqual(after);
      expect(answer.restoredDelta).toEqual(after);
      expect(answer.results.compacted).toMatchObject({ entries: compacted.entries, files: compacted.files });

      // unsquashfs extracts the compacted image, as stored in R2, to that tree as well.
      const image = await fromR2(`chain-${comp}/${compacted.key}`);
      expect(image.length).toBe(compacted.size);
      const file = path.join(work, `compacted-${comp}.sqfs`);
      await fsp.writeFile(file, image);
      const out = path.join(work, `compacted-${comp}`);
      const r = await run('unsquashfs', ['-no-progress', '-no-xattrs', '-d', out, file]);
      expect(r.code, r.stderr.toString()).toBe(0);
      expect(await treeView(fsp as never, out)).toEqual(after);

      // big.txt was not touched: its blocks are the full backup's, copied as stored.
      const [a, b] = await Promise.all([
        SquashfsImage.open(bytesSource(await fromR2(`chain-${comp}/${full.key}`))),
        SquashfsImage.open(bytesSource(image)),
      ]);
      const [was, is] = await Promise.all([a.storedData('/big.txt'), b.storedData('/big.txt')]);
      expect(was.words.length).toBeGreaterThanOrEqual(2); // two full blocks (and the tail, where it is not in a fragment)
      expect([...is.words]).toEqual([...was.words]);
      for (let i = 0; i < was.words.length; i++) expect(Buffer.compare(await is.block(i), await was.block(i))).toBe(0);
    });
  }
});
