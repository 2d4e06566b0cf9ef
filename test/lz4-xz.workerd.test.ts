/**
 * lz4 and xz images written in real workerd (Miniflare, no nodejs_compat)
 * by the built package: lz4 from the default codecs (pure JS), xz with
 * liblzma's module handed to the Worker as a CompiledWasm module. Each image
 * must extract under unsquashfs to the tree the Worker packed, and read back
 * in our reader. `npm run build` first (npm test does).
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Miniflare, supportedCompatibilityDate } from 'miniflare';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytesSource, SquashfsImage } from '../src/index.js';
import { nodeCodecs } from '../src/node/codecs.js';
import { expectExtractMatches, expectSqfs2tarAccepts, isRoot } from './helpers/oracles.js';
import { bundleWorker } from './workerd/bundle.js';
import { materialize } from './workerd/materialize.js';
import { sampleSource } from './workerd/tree.js';

let work: string;
let srcDir: string;
let xattrs = false;
let mf: Miniflare;

beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'sqfs-lz4-xz-workerd-'));
  const bundle = await bundleWorker(work, { entry: 'lz4-xz-worker.ts' });
  expect(bundle.code.match(/["']node:[a-z_/]+["']/g) ?? []).toEqual([]);
  srcDir = path.join(work, 'src');
  xattrs = (await materialize(sampleSource(), '/', srcDir)).xattrs;
  mf = new Miniflare({
    modules: [
      { type: 'ESModule', path: 'worker.mjs', contents: bundle.code },
      // As a Worker imports it: `import m from 'squashfs-ts/xz.wasm'`.
      { type: 'CompiledWasm', path: 'xz.wasm', contents: await fsp.readFile(path.join(__dirname, '../dist/xz.wasm')) },
    ],
    compatibilityDate: supportedCompatibilityDate,
    compatibilityFlags: [],
    host: '127.0.0.1',
    port: 0,
    cf: false,
  });
  await mf.ready;
}, 60_000);

afterAll(async () => {
  try {
    await mf?.dispose();
  } finally {
    if (work) await fsp.rm(work, { recursive: true, force: true });
  }
});

describe('lz4 and xz written in workerd', () => {
  it.each([
    ['lz4', 'comp=lz4'],
    ['lz4 level 9 (high compression)', 'comp=lz4&level=9'],
    ['xz with the x86 filter', 'comp=xz&filters=x86'],
  ])('%s: unsquashfs and our reader read it', async (label, query) => {
    const res = await mf.dispatchFetch(`http://localhost/write?${query}`);
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect(res.status, new TextDecoder().decode(bytes.subarray(0, 2000))).toBe(200);
    const image = path.join(work, `${label.replace(/\W+/g, '_')}.sqfs`);
    await fsp.writeFile(image, bytes);
    await expectExtractMatches(image, srcDir, { xattrs: isRoot() && xattrs ? undefined : false, owners: isRoot() ? undefined : false });
    await expectSqfs2tarAccepts(image);
    const opened = await SquashfsImage.open(bytesSource(bytes), { codecs: nodeCodecs() });
    expect(opened.info().compression).toBe(query.includes('xz') ? 'xz' : 'lz4');
    if (query.includes('level=9')) expect(opened.info().compressorOptions).toEqual({ version: 1, flags: 1 });
    let files = 0;
    for await (const entry of opened.walk()) if (entry.stat.type === 'file') files++, await opened.readFile('/' + entry.path);
    expect(files).toBeGreaterThan(0);
  });
});
