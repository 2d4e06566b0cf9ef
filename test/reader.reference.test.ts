/**
 * The reader against the reference implementations: images made by
 * mksquashfs (squashfs-tools 4.5.1) and gensquashfs (squashfs-tools-ng
 * 1.2.0) from the tricky tree, read back by us and by unsquashfs/rdsquashfs.
 *
 * For every image:
 * (a) unpackImage into A and `unsquashfs -d B` (as root: owners, xattrs)
 *     give the same trees (compareTrees: contents, modes, owners, mtimes,
 *     link targets, devices, hard-link groups, xattrs);
 * (b) `sqfs ls -lR IMAGE` (the CLI as a process, stdout as bytes) prints
 *     the lines of `unsquashfs -lln IMAGE` (paths "/", "/a/b"), TZ=UTC;
 * (c) spot checks of the API against the source tree.
 *
 * The committed images in test/fixtures/images are read too; that part
 * needs no tools.
 */
process.env.TZ = 'UTC';

import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { SquashfsError } from '../src/errors.js';
import { nodeCodecs } from '../src/node/codecs.js';
import { fileSource, openImage } from '../src/node/file-source.js';
import { unpackImage } from '../src/node/unpack.js';
import { SquashfsImage } from '../src/squashfs/reader/image.js';
import { bytesSource } from '../src/squashfs/reader/source.js';
import { buildEvilImage } from './helpers/fuzz.js';
import { compareTrees, devMajorMinor, isRoot, lineDiff, readSuperblock, showBytes, withTempDir } from './helpers/oracles.js';
import {
  bundleCli,
  fastTempRoot,
  makeReferenceImage,
  mapUnsquashfsPaths,
  mksquashfsHasCompressor,
  outputLines,
  parentsFirstViolations,
  referenceExtract,
  runCli,
  toolSupport,
  unsquashfsListing,
  type ReferenceImage,
  type ReferenceImageOptions,
} from './helpers/reference.js';
import { LONG_LINK_TARGET, makeTrickyTree, ODD_BYTES_NAME, treeCapabilities } from './helpers/tree.js';

const fixtures = path.join(__dirname, 'fixtures/images');

// ---------------------------------------------------------------------------
// Committed images (no tools needed)
// ---------------------------------------------------------------------------

interface ManifestEntry {
  type: 'directory' | 'file' | 'symlink' | 'fifo';
  size?: number;
  sha256?: string;
  target?: string;
  xattrs?: Record<string, string>;
}

async function cliLs(image: string): Promise<{ code: number; lines: string[]; stderr: string }> {
  const out: Buffer[] = [];
  let err = '';
  const code = await main(['ls', '-lR', image], {
    stdout: (t) => void out.push(Buffer.from(t)),
    stdoutBytes: async (b) => void out.push(Buffer.from(b)),
    stderr: (t) => (err += t),
    progress: { isTTY: false, write: () => true },
  });
  return { code, lines: outputLines(Buffer.concat(out)), stderr: err };
}

describe('committed reference images (test/fixtures/images)', async () => {
  const names = (await fsp.readdir(fixtures)).filter((n) => n.endsWith('.sqfs')).sort();
  const manifest = JSON.parse(await fsp.readFile(path.join(fixtures, 'tree.json'), 'utf8')) as Record<string, ManifestEntry>;

  it('are all there, each under 64 KiB', async () => {
    expect(names.length).toBeGreaterThanOrEqual(8);
    for (const n of names) expect((await fsp.stat(path.join(fixtures, n))).size, n).toBeLessThan(64 * 1024);
  });

  for (const name of names) {
    describe(name, () => {
      const file = path.join(fixtures, name);
      it('sqfs ls -lR prints the recorded unsquashfs -lln listing', async () => {
        const expected = mapUnsquashfsPaths(outputLines(await fsp.readFile(file.replace(/\.sqfs$/, '.listing.txt'))));
        const got = await cliLs(file);
        expect(got.stderr).toBe('');
        expect(got.code).toBe(0);
        // The same lines (ls -R goes parents first, unsquashfs depth first: compare sorted).
        expect([...got.lines].sort()).toEqual([...expected].sort());
        expect(parentsFirstViolations(got.lines)).toEqual([]);
      });

      it('contents, symlink targets and xattrs match the recipe (tree.json)', async () => {
        const image = await openImage(file);
        try {
          const seen: string[] = [];
          for await (const e of image.walk()) {
            const p = '/' + e.path;
            seen.push(p);
            const want = manifest[p];
            expect(want, `unexpected entry ${p}`).toBeDefined();
            expect(e.stat.type, p).toBe(want!.type);
            if (want!.type === 'file') {
              const data = await image.readFile(p);
              expect(data.length, p).toBe(want!.size);
              expect(createHash('sha256').update(data).digest('hex'), `${p} contents`).toBe(want!.sha256);
              // The same bytes through the streaming API.
              const chunks: Uint8Array[] = [];
              const reader = image.createReadStream(p).getReader();
              for (;;) {
                const { done, value } = await reader.read();
                if (done) break;
                chunks.push(value);
              }
              expect(Buffer.concat(chunks).equals(Buffer.from(data)), `${p} stream`).toBe(true);
            }
            if (want!.type === 'symlink') expect(Buffer.from(await image.readlink(p)).toString(), p).toBe(want!.target);
            const xattrs = await image.xattrs(p);
            const gotX = Object.fromEntries(xattrs.map((x) => [x.name, Buffer.from(x.value).toString()]));
            expect(gotX, `${p} xattrs`).toEqual(want!.xattrs ?? {});
            expect(e.stat.hasXattrs, `${p} hasXattrs`).toBe(xattrs.length > 0);
          }
          expect(seen.sort()).toEqual(Object.keys(manifest).sort());
          // Hard links: one inode for mksquashfs; gensquashfs does not detect them.
          const [a, b] = [await image.stat('/hello.txt'), await image.stat('/dir/hard')];
          if (name.startsWith('mksquashfs')) {
            expect(a.inode).toBe(b.inode);
            expect(a.nlink).toBe(2);
          }
          expect(await image.stat('/dir')).toMatchObject({ type: 'directory', mode: 0o40750, uid: 1000, gid: 100, mtime: 1_700_000_100 });
          expect(await image.stat('/dir/nested.txt')).toMatchObject({ type: 'file', mode: 0o100600, uid: 1000, gid: 100, mtime: 1_700_000_050, size: 12 });
          expect(await image.stat('/pipe')).toMatchObject({ type: 'fifo', mode: 0o10640 });
          const sparse = [];
          for await (const c of image.readChunks('/sparse.bin')) sparse.push(c.hole !== undefined ? `hole ${c.offset}+${c.hole}` : `data ${c.offset}+${c.bytes!.length}`);
          expect(sparse.join(', ')).toContain('hole 0+');
          const info = image.info();
          expect(info.blockSize).toBe(4096);
          expect(info.version).toBe('4.0');
          const comp = /-(gzip|lzma|lzo|xz|lz4|zstd)\.sqfs$/.exec(name)?.[1] ?? 'gzip';
          expect(info.compression).toBe(comp);
          expect(info.inodes).toBe(name.startsWith('gensquashfs') ? 13 : 12);
        } finally {
          await image.close();
        }
      });
    });
  }

  it('a missing path is NOT_FOUND; a file is not a directory', async () => {
    const image = await openImage(path.join(fixtures, 'mksquashfs-gzip.sqfs'));
    try {
      await expect(image.stat('/nope')).rejects.toMatchObject({ name: 'SquashfsError', code: 'NOT_FOUND' });
      await expect(image.readFile('/dir/nope')).rejects.toBeInstanceOf(SquashfsError);
      await expect(image.readdir('/hello.txt')).rejects.toBeInstanceOf(SquashfsError);
      await expect(image.readFile('/dir')).rejects.toBeInstanceOf(SquashfsError);
      await expect(image.readlink('/hello.txt')).rejects.toBeInstanceOf(SquashfsError);
      // Paths: "/" and "" are the root, "a//b" and "a/" resolve like the shell.
      expect((await image.stat('')).type).toBe('directory');
      expect((await image.stat('dir//nested.txt')).size).toBe(12);
    } finally {
      await image.close();
    }
  });

  it('the CLI: cat writes the bytes, info --json tells the superblock, a bad image exits 1, usage exits 2', async () => {
    const image = path.join(fixtures, 'mksquashfs-gzip.sqfs');
    let out = '';
    let err = '';
    const io = { stdout: (t: string) => (out += t), stderr: (t: string) => (err += t), progress: { isTTY: false, write: () => true } };
    expect(await main(['info', image, '--json'], io)).toBe(0);
    expect(JSON.parse(out)).toMatchObject({ compression: 'gzip', blockSize: 4096, inodes: 12, version: '4.0' });
    const chunks: Uint8Array[] = [];
    expect(await main(['cat', image, '/random.bin'], { ...io, stdoutBytes: async (b: Uint8Array) => void chunks.push(b.slice()) })).toBe(0);
    const want = await (await openImage(image)).readFile('/random.bin');
    expect(Buffer.concat(chunks).equals(Buffer.from(want))).toBe(true);
    const bad = path.join(os.tmpdir(), `sqfs-bad-${process.pid}.sqfs`);
    await fsp.writeFile(bad, Buffer.alloc(4096, 0x41));
    try {
      err = '';
      expect(await main(['ls', '-lR', bad], io)).toBe(1);
      expect(err).toMatch(/CORRUPT_IMAGE/);
      expect(await main(['cat', image, '/nope'], io)).toBe(1);
      expect(await main(['ls'], io)).toBe(2);
    } finally {
      await fsp.rm(bad, { force: true });
    }
  });

  it('many reads at once, and a one-block cache, give the same answers as one at a time', async () => {
    for (const name of ['mksquashfs-gzip.sqfs', 'mksquashfs-uncompressed.sqfs', 'mksquashfs-xz.sqfs']) {
      const bytes = new Uint8Array(await fsp.readFile(path.join(fixtures, name)));
      const files = Object.entries(manifest).filter(([, e]) => e.type === 'file').map(([p]) => p);
      const sequential = await SquashfsImage.open(bytesSource(bytes), { codecs: nodeCodecs() });
      const want = new Map<string, string>();
      for (const p of files) want.set(p, Buffer.from(await sequential.readFile(p)).toString('hex'));
      for (const options of [{}, { cacheBlocks: 1, cacheDataBlocks: 1 }]) {
        const image = await SquashfsImage.open(bytesSource(bytes), { codecs: nodeCodecs(), ...options });
        const jobs = [];
        for (let round = 0; round < 5; round++) {
          for (const p of files) jobs.push(image.readFile(p).then((d) => [p, Buffer.from(d).toString('hex')] as const));
          jobs.push(image.readdir('/dir').then((d) => ['/dir', d.map((e) => e.name).join(',')] as const));
        }
        for (const [p, got] of await Promise.all(jobs)) {
          if (p === '/dir') expect(got).toBe('empty,hard,nested.txt,sub,up');
          else expect(got, `${name} ${p} with ${JSON.stringify(options)}`).toBe(want.get(p));
        }
      }
    }
  });

  it('bytesSource and fileSource read the same image alike', async () => {
    const file = path.join(fixtures, 'mksquashfs-uncompressed.sqfs');
    const a = await SquashfsImage.open(bytesSource(new Uint8Array(await fsp.readFile(file))), { codecs: nodeCodecs() });
    const b = await SquashfsImage.open(await fileSource(file), { codecs: nodeCodecs() });
    const list = async (img: SquashfsImage) => {
      const out: string[] = [];
      for await (const e of img.walk()) out.push(`${e.path} ${e.stat.type} ${e.stat.size} ${e.stat.mode.toString(8)}`);
      return out;
    };
    expect(await list(a)).toEqual(await list(b));
    expect(await a.readFile('/random.bin')).toEqual(await b.readFile('/random.bin'));
    await Promise.all([a.close(), b.close()]);
  });
});

// ---------------------------------------------------------------------------
// Images made now by the reference writers from the tricky tree
// ---------------------------------------------------------------------------

const support = await toolSupport();
const canRun = support.mksquashfs && support.unsquashfs;
if (!canRun) console.warn('reader.reference: mksquashfs/unsquashfs are not installed; images made at test time are skipped (the committed ones are still read)');

interface Variant extends ReferenceImageOptions {
  label: string;
}

describe.skipIf(!canRun)('images made by mksquashfs and gensquashfs from the tricky tree', () => {
  let work: string;
  let src: string;
  let cli: string;
  const images = new Map<string, ReferenceImage>();
  const notes: string[] = [];
  const variants: Variant[] = [];

  const compressors = ['gzip', 'lzma', 'lzo', 'xz', 'lz4', 'zstd'];
  for (const comp of compressors) variants.push({ label: `mksquashfs -comp ${comp}`, tool: 'mksquashfs', comp });
  for (const extra of [
    ['-b', '4096'],
    ['-b', '1048576'],
    ['-no-fragments'],
    ['-always-use-fragments'],
    ['-tailends'],
    ['-noI', '-noD', '-noF', '-noX'],
    ['-no-exports'],
    ['-no-xattrs'],
    ['-all-root'],
  ]) {
    variants.push({ label: `mksquashfs -comp gzip ${extra.join(' ')}`, tool: 'mksquashfs', comp: 'gzip', extra });
  }
  for (const comp of support.gensquashfsCompressors) variants.push({ label: `gensquashfs -c ${comp}`, tool: 'gensquashfs', comp });

  beforeAll(async () => {
    const started = Date.now();
    work = await fsp.mkdtemp(path.join(await fastTempRoot(), 'sqfs-reader-ref-'));
    src = path.join(work, 'tree');
    const [, cliScript] = await Promise.all([makeTrickyTree(src, { blockSize: 4096 }), bundleCli(work)]);
    cli = cliScript;
    if (!support.gensquashfs) notes.push('gensquashfs is not installed: its images are skipped');
    const caps = await treeCapabilities();
    if (!caps.owners || !caps.devices || !caps.xattrs) notes.push(`tree made without ${JSON.stringify(caps)}`);
    // Which variants this mksquashfs can make.
    const available = new Map<string, boolean>();
    for (const v of variants) {
      if (v.tool === 'mksquashfs' && !available.has(v.comp)) available.set(v.comp, await mksquashfsHasCompressor(v.comp, work));
    }
    const queue = variants.filter((v) => {
      if (v.tool === 'gensquashfs' && !support.gensquashfs) return false;
      if (v.tool === 'mksquashfs' && !available.get(v.comp)) {
        notes.push(`${v.label}: this mksquashfs has no ${v.comp}; skipped`);
        return false;
      }
      if (v.extra?.includes('-tailends') && !support.mksquashfsOptions.has('-tailends')) {
        notes.push(`${v.label}: this mksquashfs has no -tailends; skipped`);
        return false;
      }
      return true;
    });
    // Two at a time (two cores); mksquashfs is itself parallel.
    let next = 0;
    const worker = async () => {
      while (next < queue.length) {
        const v = queue[next++]!;
        const out = path.join(work, `${v.label.replace(/[^a-z0-9]+/gi, '_')}.sqfs`);
        images.set(v.label, await makeReferenceImage(src, out, v));
      }
    };
    await Promise.all([worker(), worker()]);
    notes.push(`${images.size} images made in ${((Date.now() - started) / 1000).toFixed(1)} s under ${work}`);
  }, 120_000);

  afterAll(async () => {
    notes.push(`time per phase (summed over images, concurrent): ${[...timings].map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`).join(', ')}`);
    if (notes.length) console.log(`reader.reference:\n  ${notes.join('\n  ')}`);
    if (work) await fsp.rm(work, { recursive: true, force: true });
  });

  const imageFor = (label: string): ReferenceImage | undefined => images.get(label);
  const timings = new Map<string, number>();
  const timed = async <T>(phase: string, fn: () => Promise<T>): Promise<T> => {
    const t = Date.now();
    try {
      return await fn();
    } finally {
      timings.set(phase, (timings.get(phase) ?? 0) + (Date.now() - t));
    }
  };
  // The tests below are concurrent (their tools run in parallel), but at most
  // two at a time: this machine has two cores.
  let running = 0;
  const waiting: (() => void)[] = [];
  const slot = async <T>(fn: () => Promise<T>): Promise<T> => {
    if (running >= 2) await new Promise<void>((resolve) => waiting.push(resolve));
    running++;
    try {
      return await fn();
    } finally {
      running--;
      waiting.shift()?.();
    }
  };
  const SLOT_TIMEOUT = 300_000;

  /** (a) our unpack and the reference extraction of the same image are the same tree. */
  const sameTreeAsReference = async (ref: ReferenceImage) => {
    const a = path.join(work, `${path.basename(ref.image)}.ours`);
    const b = path.join(work, `${path.basename(ref.image)}.ref`);
    const warnings: string[] = [];
    await timed('unpackImage', async () => {
      const image = await openImage(ref.image);
      try {
        await unpackImage(image, a, { onWarning: (m) => warnings.push(m) });
      } finally {
        await image.close();
      }
    });
    await timed('reference extract', () => referenceExtract(ref, b));
    const problems = await timed('compareTrees', () => compareTrees(b, a));
    await Promise.all([fsp.rm(a, { recursive: true, force: true }), fsp.rm(b, { recursive: true, force: true })]);
    expect(
      problems,
      `${ref.argv.join(' ')}\n(compareTrees(reference=${ref.extractor}, ours); "missing from image" = missing from our unpack)\nwarnings: ${warnings.join('; ')}`,
    ).toEqual([]);
  };

  /** (b) `sqfs ls -lR` prints the lines of `unsquashfs -lln`. */
  const sameListingAsReference = async (ref: ReferenceImage, label: string, skip: (note: string) => never) => {
    let expected: string[];
    if (ref.extractor === 'unsquashfs') expected = await timed('unsquashfs -lln', () => unsquashfsListing(ref.image));
    else {
      // unsquashfs cannot read gensquashfs' lz4 images (see reference.ts): list
      // the gzip image of the same tree and options, whose listing is identical.
      const twin = imageFor(label.replace(/-c lz4$/, '-c gzip'));
      if (!twin) return skip('no gensquashfs gzip twin to take the listing from');
      expected = await unsquashfsListing(twin.image);
    }
    const r = await timed('sqfs ls -lR', () => runCli(cli, ['ls', '-lR', ref.image]));
    expect(r.stderr.toString(), 'stderr').toBe('');
    expect(r.code).toBe(0);
    const got = outputLines(r.stdout);
    const diff = lineDiff(expected, got, 30);
    expect(
      { missing: diff.missing, unexpected: diff.unexpected },
      `${ref.argv.join(' ')}: sqfs ls -lR vs unsquashfs -lln (missing = printed by unsquashfs only)`,
    ).toEqual({ missing: [], unexpected: [] });
    expect(parentsFirstViolations(got)).toEqual([]);
  };

  describe.concurrent.each(variants.map((v) => [v.label, v] as const))('%s', (label) => {
    it('(a) unpackImage gives the tree unsquashfs -d gives', async ({ skip }) => {
      const ref = imageFor(label);
      if (!ref) return skip(`${label} was not made here`);
      if (ref.extractor === 'rdsquashfs' && !support.rdsquashfs) return skip('rdsquashfs is not installed');
      await slot(() => sameTreeAsReference(ref));
    }, SLOT_TIMEOUT);

    it('(b) sqfs ls -lR prints what unsquashfs -lln prints', async ({ skip }) => {
      const ref = imageFor(label);
      if (!ref) return skip(`${label} was not made here`);
      await slot(() => sameListingAsReference(ref, label, skip as (note: string) => never));
    }, SLOT_TIMEOUT);

    it('(c) the API: readFile, stat, readlink, readdir, streams, xattrs, info; sqfs cat', async ({ skip }) => {
      const ref = imageFor(label);
      if (!ref) return skip(`${label} was not made here`);
      await slot(async () => {
        const image = await openImage(ref.image);
        try {
          await timed('API checks', () => spotChecks(image, ref, src));
        } finally {
          await image.close();
        }
        // sqfs cat as a process: the file's exact bytes on stdout (on two images:
        // a node process per call is not cheap, and cat reads like readChunks).
        if (label !== 'mksquashfs -comp gzip' && label !== 'mksquashfs -comp gzip -b 4096') return;
        for (const p of ['random/r-100k.bin', 'sparse/hole-at-end']) {
          const r = await timed('sqfs cat', () => runCli(cli, ['cat', ref.image, `/${p}`]));
          expect(r.code, `sqfs cat /${p}: ${r.stderr.toString()}`).toBe(0);
          expect(r.stdout.equals(await fsp.readFile(path.join(src, p))), `sqfs cat /${p} bytes`).toBe(true);
        }
      });
    }, SLOT_TIMEOUT);
  });
});

// ---------------------------------------------------------------------------
// Names and link targets that are not UTF-8
// ---------------------------------------------------------------------------

describe('names and symlink targets that are not UTF-8 (a hand-made image)', () => {
  const raw = (...b: number[]) => Uint8Array.from(b);
  // Sorted by bytes: "a\xff", "link", "\xc3(" (an invalid 2-byte sequence).
  const build = () =>
    buildEvilImage({
      nodes: [
        { kind: 'dir', entries: [{ name: raw(0x61, 0xff), node: 1 }, { name: 'link', node: 2 }, { name: raw(0xc3, 0x28), node: 3 }] },
        { kind: 'file', content: Buffer.from('not utf-8\n') },
        { kind: 'symlink', target: raw(0x2e, 0x2e, 0x2f, 0xfe, 0x80) },
        { kind: 'dir', entries: [] },
      ],
    }).bytes;

  it('readdir gives the bytes, readlink the target bytes, a raw-byte path finds the file', async () => {
    const image = await SquashfsImage.open(bytesSource(build()), { codecs: nodeCodecs() });
    const names = (await image.readdir('/')).map((e) => Buffer.from(e.nameBytes).toString('hex'));
    expect(names).toEqual(['61ff', '6c696e6b', 'c328']);
    expect(Buffer.from(await image.readlink('/link')).toString('hex')).toBe('2e2e2ffe80');
    expect(Buffer.from(await image.readFile(raw(0x2f, 0x61, 0xff))).toString()).toBe('not utf-8\n');
    const walked = [];
    for await (const e of image.walk()) walked.push(e.names.map((n) => Buffer.from(n).toString('hex')).join('/'));
    expect(walked).toEqual(['', '61ff', '6c696e6b', 'c328']);
  });

  it.skipIf(!canRun)('sqfs ls -lR prints them as raw bytes, like unsquashfs -lln', async () => {
    await withTempDir('sqfs-nonutf8-', async (dir) => {
      const file = path.join(dir, 'raw-names.sqfs');
      await fsp.writeFile(file, build());
      const cli = await bundleCli(dir);
      const expected = await unsquashfsListing(file);
      const r = await runCli(cli, ['ls', '-lR', file]);
      expect(r.code, r.stderr.toString()).toBe(0);
      const diff = lineDiff(expected, outputLines(r.stdout));
      expect({ missing: diff.missing, unexpected: diff.unexpected }, 'missing = printed by unsquashfs only').toEqual({ missing: [], unexpected: [] });
    });
  });
});

/** Checks a few entries of an image of the tricky tree against the source. */
async function spotChecks(image: SquashfsImage, ref: ReferenceImage, src: string): Promise<void> {
  const extra = ref.argv;
  const blockSize = extra.includes('-b') ? Number(extra[extra.indexOf('-b') + 1]) : 131072;
  const owners = isRoot() && !ref.keeps.allRoot;
  const j = (p: string) => path.join(src, p);

  // Contents: text, block boundaries, random, sparse, duplicates, odd names.
  for (const p of [
    'text/hello.txt',
    'text/lorem.txt',
    'random/r-100k.bin',
    'sizes/empty',
    'sizes/bs-plus-1.rand',
    'sizes/2bs-plus-1.text',
    'sizes/zeros-2bs',
    'dup/block-a',
    'dup2/block-b',
    'links/b/c/h3',
  ]) {
    const want = await fsp.readFile(j(p));
    const got = await image.readFile('/' + p);
    expect(Buffer.from(got).equals(want), `readFile /${p} (${want.length} bytes, got ${got.length})`).toBe(true);
  }
  for (const name of (await fsp.readdir(j('sparse'))).sort()) {
    const want = await fsp.readFile(j(`sparse/${name}`));
    expect(Buffer.from(await image.readFile(`/sparse/${name}`)).equals(want), `readFile /sparse/${name}`).toBe(true);
  }
  const odd = Buffer.concat([Buffer.from('/names/'), ODD_BYTES_NAME]);
  expect(Buffer.from(await image.readFile(odd)).toString(), 'a path given as raw bytes').toBe('odd bytes\n');

  // createReadStream and readChunks give readFile's bytes.
  for (const p of ['/random/r-100k.bin', '/sparse/hole-at-end']) {
    const whole = Buffer.from(await image.readFile(p));
    const parts: Uint8Array[] = [];
    const reader = image.createReadStream(p).getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
    }
    expect(Buffer.concat(parts).equals(whole), `createReadStream ${p}`).toBe(true);
    const assembled = Buffer.alloc(whole.length);
    let expectedOffset = 0;
    for await (const c of image.readChunks(p)) {
      expect(c.offset, `readChunks ${p} in order`).toBe(expectedOffset);
      if (c.bytes) assembled.set(c.bytes, c.offset);
      expectedOffset += c.bytes ? c.bytes.length : c.hole!;
    }
    expect(expectedOffset).toBe(whole.length);
    expect(assembled.equals(whole), `readChunks ${p}`).toBe(true);
  }

  // stat against lstat of the source.
  for (const p of ['text/hello.txt', 'modes/m4755-setuid', 'modes/d1777-sticky', 'owners/u2000000000-g3000000000', 'times/max', 'times/epoch', 'symlinks/relative', 'special/fifo']) {
    const st = await fsp.lstat(j(p));
    const got = await image.stat('/' + p);
    const want = {
      mode: st.isSymbolicLink() ? 0o120777 : st.mode,
      mtime: Math.floor(st.mtimeMs / 1000),
      ...(owners ? { uid: st.uid, gid: st.gid } : ref.keeps.allRoot ? { uid: 0, gid: 0 } : {}),
      ...(st.isFile() ? { size: st.size, type: 'file' } : {}),
      ...(st.isSymbolicLink() ? { size: (await fsp.readlink(j(p))).length, type: 'symlink' } : {}),
    };
    expect(got, `stat /${p}`).toMatchObject(want);
  }
  const root = await image.stat('/');
  expect(root.type).toBe('directory');
  expect(root.mtime).toBe(Math.floor((await fsp.stat(src)).mtimeMs / 1000));
  const h1 = await image.stat('/links/a/h1');
  const h3 = await image.stat('/links/b/c/h3');
  if (ref.keeps.hardLinks) {
    expect(h1.nlink, 'nlink of a 3-link group').toBe(3);
    expect(h3.inode).toBe(h1.inode);
  } else {
    expect(h3.inode).not.toBe(h1.inode);
  }
  if (isRoot()) {
    const dev = await image.stat('/special/big-numbers');
    expect(dev.type).toBe('char-device');
    const [maj, min] = devMajorMinor((await fsp.lstat(j('special/big-numbers'), { bigint: true })).rdev);
    expect(dev.rdev).toEqual({ major: maj, minor: min });
  }

  // readlink.
  expect(Buffer.from(await image.readlink('/symlinks/long-target')).toString()).toBe(LONG_LINK_TARGET);
  expect(Buffer.from(await image.readlink('/symlinks/self-dot')).toString()).toBe('.');

  // readdir of the 1,500-entry directory: the source names in byte order.
  const wide = await image.readdir('/wide');
  const names = ((await fsp.readdir(j('wide'), { encoding: 'buffer' })) as Buffer[]).sort(Buffer.compare);
  expect(wide.length).toBe(1500);
  expect(wide.map((e) => showBytes(Buffer.from(e.nameBytes)))).toEqual(names.map((n) => showBytes(n)));
  expect(wide.every((e) => e.type === 'file')).toBe(true);
  // and a lookup deep in it (through the directory index)
  expect((await image.stat('/wide/w1499')).size).toBe('entry 1499\n'.length);
  expect((await image.stat('/wide/w1400-a-somewhat-longer-name')).type).toBe('file');
  await expect(image.stat('/wide/w1500')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  const namesDir = await image.readdir('/names');
  expect(namesDir.map((e) => Buffer.from(e.nameBytes)).some((n) => n.equals(ODD_BYTES_NAME))).toBe(true);

  // xattrs.
  if (ref.keeps.xattrs && (await treeCapabilities()).xattrs) {
    const many = Object.fromEntries((await image.xattrs('/xattrs/user-many')).map((x) => [x.name, Buffer.from(x.value).toString('hex')]));
    const want: Record<string, string> = { 'user.a': Buffer.from('alpha').toString('hex'), 'user.b': '00ff00ff', 'user.long': Buffer.from('v'.repeat(1000)).toString('hex') };
    if (ref.keeps.emptyXattrValues) want['user.empty'] = '';
    expect(many).toEqual(want);
    expect((await image.stat('/xattrs/user-many')).hasXattrs).toBe(true);
    expect(await image.xattrs('/xattrs/none')).toEqual([]);
    expect((await image.xattrs('/xattrs/dir-with-xattrs')).map((x) => x.name)).toEqual(['user.dir']);
  } else {
    expect(await image.xattrs('/xattrs/user-many')).toEqual([]);
  }

  // info() against the superblock.
  const sb = await readSuperblock(ref.image);
  const info = image.info();
  expect(info.compression).toBe(ref.comp);
  expect(info.compressionId).toBe(sb.compressionId);
  expect(info.blockSize).toBe(ref.tool === 'gensquashfs' ? 131072 : blockSize);
  expect(info.inodes).toBe(sb.inodeCount);
  expect(info.ids).toBe(sb.idCount);
  expect(info.version).toBe('4.0');
  expect(info.bytesUsed).toBe(Number(sb.bytesUsed));
  expect(info.size).toBe((await fsp.stat(ref.image)).size);
  expect(info.exportable).toBe(ref.tool === 'mksquashfs' ? !extra.includes('-no-exports') : false);
  let count = 0;
  for await (const _ of image.walk()) count++;
  const distinctInodes = new Set<number>();
  for await (const e of image.walk()) distinctInodes.add(e.stat.inode);
  expect(distinctInodes.size, 'distinct inode numbers seen by walk = superblock inode count').toBe(sb.inodeCount);
  expect(count).toBeGreaterThan(1600);
}
