/**
 * The reader on hostile input: truncated images, a mutation fuzzer over
 * real images, and hand-made evil images (loops, absurd sizes and counts,
 * indexes out of range, names that try to leave the target directory).
 *
 * What must hold for every input:
 * - the reader throws nothing but SquashfsError (never RangeError,
 *   TypeError, ...);
 * - it never hangs (every case runs in a worker thread under a watchdog,
 *   so even a synchronous endless loop is caught);
 * - it never allocates more than the image justifies (the ArrayBuffer
 *   memory of the worker is sampled on every read of the source);
 * - unpackImage never writes outside its target: an image that tries is
 *   refused with a SquashfsError and the whole sandbox (target, its parent,
 *   the directory a symlink points to) is left exactly as it was.
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeCodecs } from '../src/node/codecs.js';
import { InodeType, NO_INDEX } from '../src/squashfs/constants.js';
import type { FileInode } from '../src/squashfs/inode/inode.js';
import { SquashfsImage } from '../src/squashfs/reader/image.js';
import { bytesSource } from '../src/squashfs/reader/source.js';
import { run } from './helpers/oracles.js';
import {
  applyMutations,
  buildEvilImage,
  bundleWorker,
  bytesOf,
  failureOf,
  IsolatedReader,
  mutationsArb,
  patchU16,
  patchU32,
  patchU64,
  SB,
  snapshotTree,
  type EvilEntry,
  type NodeCommon,
  type EvilNode,
  type EvilSpec,
  type ExerciseOutcome,
  type Mutation,
  type TaskResult,
} from './helpers/fuzz.js';

const fixtures = path.join(__dirname, 'fixtures/images');
let work: string;
let runner: IsolatedReader;

beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'sqfs-hostile-'));
  runner = new IsolatedReader(await bundleWorker(work), { maxOldGenerationSizeMb: 1024 });
});

afterAll(async () => {
  await runner?.close();
  if (work) await fsp.rm(work, { recursive: true, force: true });
});

/** Runs the exerciser on `bytes` in the worker; fails the test on any non-SquashfsError, hang or over-allocation. */
async function exercise(bytes: Uint8Array, what: string, options: { timeoutMs?: number; allocationLimit?: number; extraPaths?: (string | Uint8Array)[]; readFileLimit?: number } = {}): Promise<ExerciseOutcome> {
  const result: TaskResult = await runner.run(
    { kind: 'exercise', bytes, options: { allocationLimit: options.allocationLimit ?? 64 * 2 ** 20, extraPaths: options.extraPaths, readFileLimit: options.readFileLimit } },
    options.timeoutMs ?? 5000,
  );
  const failure = failureOf(result);
  if (failure) throw new Error(`${what}:\n    ${failure}`);
  if (result.kind !== 'exercise') throw new Error(`${what}: unexpected ${result.kind}`);
  return result.outcome;
}

async function fixture(name: string): Promise<Uint8Array> {
  return new Uint8Array(await fsp.readFile(path.join(fixtures, name)));
}

const u64At = (b: Uint8Array, o: number) => Number(new DataView(b.buffer, b.byteOffset).getBigUint64(o, true));

// ---------------------------------------------------------------------------
// The harness itself
// ---------------------------------------------------------------------------

describe('harness self-check (a fake reader that misbehaves on purpose)', () => {
  // bytes[0] picks the misbehaviour: 1 a synchronous endless loop, 2 a 1 GiB
  // allocation, 3 a TypeError, 4 a SquashfsError (fine), else a clean image.
  const fake = `
class SquashfsError extends Error { constructor(code, message) { super(message); this.name = 'SquashfsError'; this.code = code; } }
const bytesSource = (b) => ({ size: b.length, read: async (o, n) => b.subarray(o, o + n) });
const nodeCodecs = () => undefined;
const unpackImage = undefined;
let keep;
class SquashfsImage {
  static async open(source) {
    const b = await source.read(0, 1);
    const img = new SquashfsImage();
    img.mode = b[0];
    img.source = source;
    return img;
  }
  info() { return {}; }
  async *walk() {
    if (this.mode === 1) for (;;) {}
    if (this.mode === 2) { keep = new Uint8Array(2 ** 30); await this.source.read(0, 1); }
    if (this.mode === 3) null.x;
    if (this.mode === 4) throw new SquashfsError('CORRUPT_IMAGE', 'fine');
    yield { path: '', names: [], stat: { type: 'directory', size: 3, hasXattrs: false } };
  }
  async stat() { return { type: 'directory', size: 3, hasXattrs: false }; }
  async readdir() { return []; }
  async close() {}
}`;
  let fakeRunner: IsolatedReader;
  beforeAll(async () => {
    fakeRunner = new IsolatedReader(await bundleWorker(work, { custom: fake, name: 'fake' }));
  });
  afterAll(async () => fakeRunner?.close());
  const task = (b: number) => ({ kind: 'exercise' as const, bytes: new Uint8Array([b, 0, 0, 0]), options: { allocationLimit: 64 * 2 ** 20 } });

  it('catches a synchronous endless loop (and recovers with a new worker)', async () => {
    const r = await fakeRunner.run(task(1), 500);
    expect(failureOf(r)).toMatch(/^hang/);
    expect(failureOf(await fakeRunner.run(task(0), 2000))).toBeUndefined();
  });
  it('catches a 1 GiB allocation', async () => {
    expect(failureOf(await fakeRunner.run(task(2), 5000))).toMatch(/ArrayBuffer memory grew by 10\d\d/);
  });
  it('catches a TypeError and lets a SquashfsError pass', async () => {
    expect(failureOf(await fakeRunner.run(task(3), 2000))).toMatch(/walk: TypeError/);
    expect(failureOf(await fakeRunner.run(task(4), 2000))).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------
// Truncation
// ---------------------------------------------------------------------------

describe('truncated images', () => {
  for (const name of ['mksquashfs-uncompressed.sqfs', 'mksquashfs-gzip.sqfs']) {
    it(`every prefix of ${name} (stepped): only SquashfsErrors, and a prefix short of bytes_used never reads clean`, async () => {
      const image = await fixture(name);
      const bytesUsed = u64At(image, SB.bytesUsed);
      const lengths = new Set<number>();
      for (let n = 0; n <= 160; n++) lengths.add(n);
      for (let n = 0; n <= image.length; n += 7) lengths.add(n);
      // Around every table start and the end of the used bytes.
      for (const field of [SB.inodeTableStart, SB.directoryTableStart, SB.fragmentTableStart, SB.idTableStart, SB.xattrIdTableStart, SB.exportTableStart, SB.bytesUsed]) {
        const at = u64At(image, field);
        if (at < image.length) for (let d = -3; d <= 10; d++) lengths.add(Math.max(0, Math.min(image.length, at + d)));
      }
      const problems: string[] = [];
      let cleanShort = 0;
      for (const n of [...lengths].sort((a, b) => a - b)) {
        const outcome = await exercise(image.subarray(0, n), `${name} cut to ${n} bytes`, { timeoutMs: 5000 });
        if (n < bytesUsed && outcome.squashfsErrors.length === 0) {
          cleanShort++;
          if (problems.length < 10) problems.push(`cut to ${n} < bytes_used ${bytesUsed}: read ${outcome.entries} entries without any error`);
        }
        if (n >= bytesUsed && outcome.squashfsErrors.length > 0 && problems.length < 20) {
          problems.push(`cut to ${n} >= bytes_used ${bytesUsed} (only padding lost): ${outcome.squashfsErrors[0]!.op}: ${outcome.squashfsErrors[0]!.message}`);
        }
      }
      expect(problems, `${lengths.size} prefixes, ${cleanShort} short ones read clean`).toEqual([]);
    });
  }
});

// ---------------------------------------------------------------------------
// Mutation fuzzer
// ---------------------------------------------------------------------------

describe('mutation fuzzer', () => {
  it('flipped and overwritten bytes (1-8, anywhere or aimed at the superblock and tables): only SquashfsErrors, no hang, bounded memory (~10 s)', async () => {
    // The committed fixtures; the codecs that are not there yet only give UNSUPPORTED_COMPRESSOR.
    const names = (await fsp.readdir(fixtures)).filter((n) => n.endsWith('.sqfs')).sort();
    const pool: { name: string; bytes: Uint8Array }[] = [];
    const skipped: string[] = [];
    for (const name of names) {
      const bytes = await fixture(name);
      const outcome = await exercise(bytes, `${name} (unmutated)`);
      if (outcome.squashfsErrors.length === 0 && outcome.walkCompleted) pool.push({ name, bytes });
      else skipped.push(`${name}: ${outcome.squashfsErrors[0]?.message}`);
    }
    if (skipped.length) console.warn(`fuzzer: not fuzzing images the reader cannot read yet:\n  ${skipped.join('\n  ')}`);
    expect(pool.length, 'at least the uncompressed and gzip fixtures are readable').toBeGreaterThanOrEqual(2);
    // The uncompressed image twice: its mutations reach the parsers, not the decompressor.
    const weighted = [...pool, ...pool.filter((p) => p.name.includes('uncompressed'))];
    const arb = fc
      .constantFrom(...weighted)
      .chain((img) => fc.tuple(fc.constant(img), mutationsArb(img.bytes)));
    let runs = 0;
    let opened = 0;
    let walked = 0;
    const started = Date.now();
    const result = await fc.check(
      fc.asyncProperty(arb, async ([img, mutations]: [{ name: string; bytes: Uint8Array }, Mutation[]]) => {
        runs++;
        const bytes = applyMutations(img.bytes, mutations);
        const r = await runner.run({ kind: 'exercise', bytes, options: { allocationLimit: 64 * 2 ** 20 } }, 3000);
        if (r.kind === 'exercise') {
          if (r.outcome.opened) opened++;
          if (r.outcome.walkCompleted) walked++;
        }
        const failure = failureOf(r);
        if (failure) throw new Error(`${img.name} with ${JSON.stringify(mutations)}:\n    ${failure}`);
      }),
      { numRuns: 1_000_000, interruptAfterTimeLimit: 10_000, markInterruptAsFailure: false, seed: Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31) },
    );
    console.log(`fuzzer: ${runs} cases in ${((Date.now() - started) / 1000).toFixed(1)} s over ${pool.map((p) => p.name).join(', ')}; ${opened} opened, ${walked} walked completely; seed ${result.seed}`);
    if (result.failed) {
      throw new Error(
        `fuzzer failure (seed ${result.seed}, path ${result.counterexamplePath}; replay with FUZZ_SEED=${result.seed}):\n` +
          `${(result.errorInstance as Error)?.message ?? String(result.errorInstance)}`,
      );
    }
    expect(runs).toBeGreaterThan(100);
  });
});

// ---------------------------------------------------------------------------
// Damaged compressed blocks, for every codec
// ---------------------------------------------------------------------------

describe('damaged compressed data blocks, every codec (~6 s)', () => {
  it('a real compressed block, mutated, truncated, extended or replaced by noise: only SquashfsErrors, no hang', async () => {
    // First compressed block of /blocks.bin in each committed image, taken with the reader itself.
    const samples: { name: string; id: number; block: Uint8Array }[] = [];
    const skipped: string[] = [];
    for (const name of (await fsp.readdir(fixtures)).filter((n) => n.endsWith('.sqfs') && !n.includes('uncompressed')).sort()) {
      const bytes = await fixture(name);
      try {
        const image = await SquashfsImage.open(bytesSource(bytes), { codecs: nodeCodecs() });
        const inode = (await image.resolve('/blocks.bin')) as FileInode;
        const word = inode.blockSizes[0]!;
        if (word & (1 << 24)) continue;
        samples.push({ name, id: image.info().compressionId, block: bytes.slice(inode.blocksStart, inode.blocksStart + (word & 0xffffff)) });
      } catch (e) {
        skipped.push(`${name}: ${(e as Error).message}`);
      }
    }
    if (skipped.length) console.warn(`damaged blocks: skipped\n  ${skipped.join('\n  ')}`);
    expect(samples.length).toBeGreaterThan(0);
    const damaged = fc.oneof(
      // flip/overwrite 1-8 bytes
      fc.tuple(fc.constantFrom(...samples), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 })).map(([s, edits]) => {
        const b = s.block.slice();
        for (const [at, v] of edits) b[at % b.length] = v;
        return { s, b, how: `edits ${JSON.stringify(edits)}` };
      }),
      // truncated
      fc.tuple(fc.constantFrom(...samples), fc.nat()).map(([s, n]) => ({ s, b: s.block.slice(0, 1 + (n % s.block.length)), how: `cut to ${1 + (n % s.block.length)}` })),
      // extended with noise
      fc.tuple(fc.constantFrom(...samples), fc.uint8Array({ minLength: 1, maxLength: 64 })).map(([s, tail]) => ({ s, b: Uint8Array.from([...s.block, ...tail]), how: `+${tail.length} bytes` })),
      // noise
      fc.tuple(fc.constantFrom(...samples), fc.uint8Array({ minLength: 1, maxLength: 4096 })).map(([s, b]) => ({ s, b, how: `noise of ${b.length}` })),
    );
    let runs = 0;
    const codes = new Map<string, number>();
    const result = await fc.check(
      fc.asyncProperty(damaged, async ({ s, b, how }) => {
        runs++;
        // One 4096-byte file whose only block is the damaged one, marked compressed.
        const bytes = buildEvilImage({
          superblock: { compressionId: s.id },
          nodes: [
            { kind: 'dir', entries: [{ name: 'f', node: 1 }] },
            { kind: 'file', content: b.length ? b : new Uint8Array(1), fragment: false, override: { fileSize: 4096, blockSizes: Uint32Array.from([Math.max(1, b.length)]) } },
          ],
        }).bytes;
        const r = await runner.run({ kind: 'exercise', bytes, options: { allocationLimit: 64 * 2 ** 20 } }, 3000);
        if (r.kind === 'exercise') for (const e of r.outcome.squashfsErrors) codes.set(`${s.name} ${e.code}`, (codes.get(`${s.name} ${e.code}`) ?? 0) + 1);
        const failure = failureOf(r);
        if (failure) throw new Error(`${s.name} block (${s.block.length} bytes) ${how}:\n    ${failure}`);
      }),
      { numRuns: 100_000, interruptAfterTimeLimit: 6_000, markInterruptAsFailure: false, seed: Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31) },
    );
    console.log(`damaged blocks: ${runs} cases over ${samples.map((x) => x.name).join(', ')}; seed ${result.seed}; errors: ${[...codes].map(([k, v]) => `${k} x${v}`).join(', ')}`);
    if (result.failed) {
      throw new Error(`damaged block failure (seed ${result.seed}; FUZZ_SEED=${result.seed} to replay):\n${(result.errorInstance as Error)?.message ?? String(result.errorInstance)}`);
    }
  });
});

// ---------------------------------------------------------------------------
// Hand-made evil images
// ---------------------------------------------------------------------------

const hello = bytesOf('hello, world\n');

/** A small valid tree: /a.txt, /big (2.5 blocks), /dir/inner, /dir/hard (hard link to /a.txt), /link -> a.txt, /sparse. */
function baseSpec(): EvilSpec {
  return {
    nodes: [
      /* 0 */ { kind: 'dir', entries: [{ name: 'a.txt', node: 1 }, { name: 'big', node: 2 }, { name: 'dir', node: 3 }, { name: 'link', node: 4 }, { name: 'sparse', node: 6 }] },
      /* 1 */ { kind: 'file', content: hello, xattrs: [{ name: 'user.x', value: bytesOf('y') }] },
      /* 2 */ { kind: 'file', content: Uint8Array.from({ length: 10_000 }, (_, i) => (i * 7) & 0xff) },
      /* 3 */ { kind: 'dir', entries: [{ name: 'hard', node: 1 }, { name: 'inner', node: 5 }], uidIndex: 1, gidIndex: 1 },
      /* 4 */ { kind: 'symlink', target: 'a.txt' },
      /* 5 */ { kind: 'file', content: bytesOf('inner\n') },
      /* 6 */ { kind: 'file', content: new Uint8Array(9000) },
    ],
    ids: [0, 1000],
    exportTable: true,
  };
}

function withNodes(mod: (nodes: EvilSpec['nodes']) => void, spec = baseSpec()): EvilSpec {
  mod(spec.nodes);
  return spec;
}

/** The base image with node `i` given more fields (overrides, ids, extended...). */
function withNode(i: number, extra: NodeCommon): EvilSpec {
  return withNodes((n) => void Object.assign(n[i]!, extra));
}

interface Sandbox {
  root: string;
  parent: string;
  target: string;
  outside: string;
}

async function makeSandbox(withContent: boolean): Promise<Sandbox> {
  const root = await fsp.mkdtemp(path.join(work, 'sandbox-'));
  const parent = path.join(root, 'parent');
  const target = path.join(parent, 'target');
  const outside = path.join(root, 'outside');
  await fsp.mkdir(parent);
  await fsp.mkdir(outside);
  await fsp.writeFile(path.join(outside, 'keep'), 'outside\n');
  await fsp.writeFile(path.join(parent, 'sibling'), 'sibling\n');
  if (withContent) {
    await fsp.mkdir(path.join(target, 'old'), { recursive: true });
    await fsp.writeFile(path.join(target, 'old/keep.txt'), 'old content\n');
  }
  return { root, parent, target, outside };
}

type UnpackExpectation = 'refuse' | 'safe' | 'ok';

/**
 * Unpacks into a sandbox twice (existing target with content + force, and a
 * missing target). 'refuse': must fail with a SquashfsError. Whenever it
 * fails, the sandbox must be exactly as before; whenever it succeeds,
 * nothing outside the target may have changed.
 */
async function checkUnpack(bytes: Uint8Array | ((sb: Sandbox) => Uint8Array), expectation: UnpackExpectation): Promise<string[]> {
  const notes: string[] = [];
  for (const existing of [true, false]) {
    const sb = await makeSandbox(existing);
    const image = typeof bytes === 'function' ? bytes(sb) : bytes;
    const before = await snapshotTree(sb.root);
    const r = await runner.run({ kind: 'unpack', bytes: image, dir: sb.target, force: existing }, 10_000);
    const after = await snapshotTree(sb.root);
    const label = existing ? 'into an existing target (force)' : 'into a new target';
    if (r.kind !== 'unpack') {
      throw new Error(`unpack ${label}: ${failureOf(r)}`);
    }
    const o = r.outcome;
    if (!o.ok && !o.error!.isSquashfsError) throw new Error(`unpack ${label} threw ${o.error!.name}: ${o.error!.message}\n${o.error!.stack}`);
    if (expectation === 'refuse' && o.ok) {
      throw new Error(`unpack ${label} should refuse this image but succeeded; sandbox now:\n  ${after.join('\n  ')}`);
    }
    if (expectation === 'ok' && !o.ok) throw new Error(`unpack ${label} failed: ${o.error!.code}: ${o.error!.message}`);
    if (!o.ok) {
      expect(after, `unpack ${label} failed (${o.error!.code}: ${o.error!.message}) but changed the sandbox`).toEqual(before);
      notes.push(`unpack ${label}: ${o.error!.code}: ${o.error!.message}`);
    } else {
      const outsideTarget = (lines: string[]) => lines.filter((l) => !l.startsWith('/parent/target/') && !l.startsWith('/parent/target '));
      expect(outsideTarget(after), `unpack ${label} succeeded but changed something outside the target`).toEqual(outsideTarget(before));
      notes.push(`unpack ${label}: ok`);
    }
    await fsp.rm(sb.root, { recursive: true, force: true });
  }
  return notes;
}

type ReaderExpectation = 'ok' | 'reject' | 'any';

interface EvilCase {
  name: string;
  build: (sb?: Sandbox) => Uint8Array;
  reader: ReaderExpectation;
  /** With 'reject': the code of at least one SquashfsError. */
  code?: string;
  unpack: UnpackExpectation;
  extraPaths?: (string | Uint8Array)[];
  timeoutMs?: number;
  /** Extra checks on the exercise outcome. */
  check?: (o: ExerciseOutcome) => void;
  readFileLimit?: number;
}

const spec = (s: EvilSpec) => () => buildEvilImage(s).bytes;

/** Builds the base image and patches bytes given the layout. */
function patched(mod: (b: Uint8Array, layout: ReturnType<typeof buildEvilImage>['layout']) => void, s: EvilSpec = baseSpec()): () => Uint8Array {
  return () => {
    const { bytes, layout } = buildEvilImage(s);
    mod(bytes, layout);
    return bytes;
  };
}

/** An image whose root holds `entries`; node 1 is nodes[0], and so on. */
function rootWith(entries: EvilEntry[], nodes: EvilNode[]): EvilSpec {
  return { nodes: [{ kind: 'dir', entries }, ...nodes] };
}

const EVIL: EvilCase[] = [
  // --- sanity ------------------------------------------------------------------------
  {
    name: 'the unmodified hand-made image (sanity)',
    build: spec(baseSpec()),
    reader: 'ok',
    unpack: 'ok',
    check: (o) => expect(o.entries).toBe(8),
  },

  // --- loops -------------------------------------------------------------------------
  {
    name: 'a directory listing that names the root (loop)',
    build: spec(withNodes((n) => (n[3] = { kind: 'dir', entries: [{ name: 'inner', node: 5 }, { name: 'up', node: 0 }] }))),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
    extraPaths: ['/dir/up/dir/up/dir/up/a.txt'],
  },
  {
    name: 'a directory that lists itself',
    build: spec(withNodes((n) => (n[3] = { kind: 'dir', entries: [{ name: 'inner', node: 5 }, { name: 'self', node: 3 }] }))),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'the root lists itself',
    build: spec(withNodes((n) => (n[0] = { kind: 'dir', entries: [{ name: 'a.txt', node: 1 }, { name: 'me', node: 0 }] }))),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'a three-level loop a/b/c -> a',
    build: spec({
      nodes: [
        { kind: 'dir', entries: [{ name: 'a', node: 1 }] },
        { kind: 'dir', entries: [{ name: 'b', node: 2 }] },
        { kind: 'dir', entries: [{ name: 'c', node: 3 }] },
        { kind: 'dir', entries: [{ name: 'back', node: 1 }, { name: 'f', node: 4 }] },
        { kind: 'file', content: hello },
      ],
    }),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'one directory listed under two names (not a loop)',
    build: spec(rootWith([{ name: 'x', node: 1 }, { name: 'y', node: 1 }], [{ kind: 'dir', entries: [{ name: 'f', node: 2 }] }, { kind: 'file', content: hello }])),
    reader: 'any',
    unpack: 'safe',
  },

  // --- superblock --------------------------------------------------------------------
  { name: 'inode count 2^32-1', build: patched((b) => patchU32(b, SB.inodeCount, 0xffffffff)), reader: 'any', unpack: 'safe' },
  { name: 'id count 65535 with a one-block id table', build: patched((b) => patchU16(b, SB.idCount, 0xffff)), reader: 'any', unpack: 'safe' },
  { name: 'fragment count 2^32-1', build: patched((b) => patchU32(b, SB.fragmentEntryCount, 0xffffffff)), reader: 'any', unpack: 'safe' },
  { name: 'bytes_used beyond the image', build: patched((b) => patchU64(b, SB.bytesUsed, BigInt(b.length + 1))), reader: 'reject', code: 'CORRUPT_IMAGE', unpack: 'refuse' },
  { name: 'bytes_used 2^64-1', build: patched((b) => patchU64(b, SB.bytesUsed, -1n)), reader: 'reject', unpack: 'refuse' },
  { name: 'id table at 2^40', build: patched((b) => patchU64(b, SB.idTableStart, 1n << 40n)), reader: 'reject', unpack: 'refuse' },
  { name: 'inode table at 2^62', build: patched((b) => patchU64(b, SB.inodeTableStart, 1n << 62n)), reader: 'reject', unpack: 'refuse' },
  { name: 'inode table start = directory table start', build: patched((b, l) => patchU64(b, SB.inodeTableStart, BigInt(l.directoryTableStart))), reader: 'reject', unpack: 'refuse' },
  { name: 'inode table inside the superblock', build: patched((b) => patchU64(b, SB.inodeTableStart, 10n)), reader: 'reject', unpack: 'refuse' },
  { name: 'xattr table at 2^50', build: patched((b) => patchU64(b, SB.xattrIdTableStart, 1n << 50n)), reader: 'reject', unpack: 'refuse' },
  { name: 'fragment table beyond the image', build: patched((b) => patchU64(b, SB.fragmentTableStart, BigInt(b.length + 100))), reader: 'reject', unpack: 'refuse' },
  { name: 'block size 2^31 (block_log 31)', build: patched((b) => { patchU32(b, SB.blockSize, 2 ** 31); patchU16(b, SB.blockLog, 31); }), reader: 'reject', code: 'CORRUPT_IMAGE', unpack: 'refuse' },
  { name: 'block size and block_log disagree', build: patched((b) => patchU16(b, SB.blockLog, 13)), reader: 'reject', code: 'CORRUPT_IMAGE', unpack: 'refuse' },
  { name: 'compressor id 99', build: patched((b) => patchU16(b, SB.compressionId, 99)), reader: 'reject', code: 'UNSUPPORTED_COMPRESSOR', unpack: 'refuse' },
  { name: 'compressor options flag with no options block', build: patched((b) => patchU16(b, SB.flags, 0x400)), reader: 'any', unpack: 'safe' },
  { name: 'root inode reference beyond the inode table', build: patched((b) => patchU64(b, SB.rootInodeRef, (1n << 32n) | 5n)), reader: 'reject', code: 'CORRUPT_IMAGE', unpack: 'refuse' },
  { name: 'root inode reference at an offset past the block (0xffff)', build: patched((b) => patchU64(b, SB.rootInodeRef, 0xffffn)), reader: 'reject', unpack: 'refuse' },
  { name: 'root inode is a file', build: patched((b, l) => patchU64(b, SB.rootInodeRef, BigInt(l.positions[1]!.offset))), reader: 'reject', code: 'CORRUPT_IMAGE', unpack: 'refuse' },
  { name: 'version 3.1', build: patched((b) => { patchU16(b, 28, 3); patchU16(b, 30, 1); }), reader: 'reject', code: 'CORRUPT_IMAGE', unpack: 'refuse' },

  // --- inodes: sizes, counts, indexes ------------------------------------------------------
  {
    name: 'a file of 2^40 bytes (extended inode) with one block word in a 12 KiB image',
    build: spec(withNode(2, { override: { type: InodeType.EXT_FILE, fileSize: 2 ** 40 } })),
    reader: 'reject',
    unpack: 'refuse',
  },
  {
    name: 'a file of 2^32-1 bytes (basic inode) whose block list runs off the table',
    build: spec(withNode(5, { override: { fileSize: 0xffffffff } })),
    reader: 'reject',
    unpack: 'refuse',
  },
  {
    name: 'a file of 2^53 bytes',
    build: spec(withNode(2, { override: { type: InodeType.EXT_FILE, fileSize: 2 ** 53 - 1 } })),
    reader: 'reject',
    unpack: 'refuse',
  },
  {
    name: 'a file whose blocks start beyond the image',
    build: spec(withNode(2, { override: { blocksStart: 0xfffff000 } })),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'a block size word larger than the block size',
    build: spec(withNode(2, { override: { blockSizes: Uint32Array.from([0xffffff, 4096 | (1 << 24)]) } })),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'a block size word with stray high bits',
    build: spec(withNode(2, { override: { blockSizes: Uint32Array.from([0xff000000 | 4096, 4096 | (1 << 24)]) } })),
    reader: 'reject',
    unpack: 'refuse',
  },
  {
    name: 'an uncompressed block shorter than the block',
    build: spec(withNode(2, { override: { blockSizes: Uint32Array.from([100 | (1 << 24), 4096 | (1 << 24)]) } })),
    reader: 'reject',
    unpack: 'refuse',
  },
  {
    name: 'a "compressed" block of garbage',
    build: spec(withNode(2, { override: { blockSizes: Uint32Array.from([4096, 4096 | (1 << 24)]) } })),
    reader: 'reject',
    code: 'CODEC_ERROR',
    unpack: 'refuse',
  },
  {
    name: 'fragment index out of range (5 of 1)',
    build: spec(withNode(5, { override: { fragmentIndex: 5 } })),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'fragment index 2^32-2',
    build: spec(withNode(5, { override: { fragmentIndex: 0xfffffffe } })),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'fragment offset past the fragment block',
    build: spec(withNode(5, { override: { fragmentOffset: 4000 } })),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'fragment offset 2^32-1',
    build: spec(withNode(5, { override: { fragmentOffset: 0xffffffff } })),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'a fragment table entry pointing beyond the image, with size 2^24-1',
    build: spec({ ...baseSpec(), extraFragments: [[2 ** 40, 0xffffff]] }),
    reader: 'ok',
    unpack: 'ok',
  },
  {
    name: 'a file using a fragment entry that points beyond the image',
    build: spec({ ...withNode(5, { override: { fragmentIndex: 1 } }), extraFragments: [[2 ** 40, 100]] }),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'uid index out of range (300 of 2)',
    build: spec(withNode(5, { uidIndex: 300 })),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'gid index 65535 on the root',
    build: spec(withNode(0, { gidIndex: 0xffff })),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'xattr index out of range',
    build: spec(withNode(1, { override: { xattrIndex: 99 } })),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'a symlink target of 2^32-1 bytes',
    build: patched((b, l) => patchU32(b, l.inodeOffsets[4]! + 20, 0xffffffff)),
    reader: 'reject',
    unpack: 'refuse',
  },
  {
    name: 'a symlink target of 2^20 bytes (more than the table)',
    build: patched((b, l) => patchU32(b, l.inodeOffsets[4]! + 20, 2 ** 20)),
    reader: 'reject',
    unpack: 'refuse',
  },
  {
    name: 'an unknown inode type (0x4242)',
    build: patched((b, l) => patchU16(b, l.inodeOffsets[5]!, 0x4242)),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'a directory inode whose listing size is 2^32-1 (extended)',
    build: spec(withNode(3, { extended: true, override: { fileSize: 0xffffffff } })),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'a directory inode with size 0 (< 3)',
    build: spec(withNode(3, { override: { fileSize: 0 } })),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'a directory listing that starts beyond the directory table',
    build: spec(withNode(3, { override: { startBlock: 0x7fffffff } })),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'an extended directory with 65535 index entries',
    build: patched((b, l) => patchU16(b, l.inodeOffsets[3]! + 32, 0xffff), withNode(3, { extended: true })),
    reader: 'reject',
    unpack: 'refuse',
  },
  {
    name: 'a directory index entry pointing far beyond the directory table (lookups use it, walk does not)',
    build: spec(withNode(3, { extended: true, override: { index: [{ index: 0, start: 0x7ffffff0, name: bytesOf('a') }] } })),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    // unpack reads what walk() found and needs no lookups: it may succeed.
    unpack: 'safe',
    extraPaths: ['/dir/inner', '/dir/zzz'],
  },
  {
    name: 'a directory index entry pointing into the middle of an entry',
    build: spec(withNode(3, { extended: true, override: { index: [{ index: 17, start: 0, name: bytesOf('a') }] } })),
    reader: 'any',
    unpack: 'safe',
    extraPaths: ['/dir/inner', '/dir/hard'],
  },
  {
    name: 'directory index entries out of order, with an index past the listing',
    build: spec(withNode(3, { extended: true, override: { index: [{ index: 1000, start: 0, name: bytesOf('zzz') }, { index: 0, start: 0, name: bytesOf('a') }] } })),
    reader: 'any',
    unpack: 'safe',
    extraPaths: ['/dir/inner'],
  },
  {
    name: 'an out-of-line xattr value whose reference points back at its own key',
    build: patched(
      (b) => {
        const kvStart = u64At(b, u64At(b, SB.xattrIdTableStart));
        // The pair: u16 type, u16 name size, "x", u32 value size (8), value (8 bytes).
        const pair = kvStart + 2;
        patchU16(b, pair, 0x100);
        patchU64(b, pair + 4 + 1 + 4, 0n);
      },
      withNode(1, { xattrs: [{ name: 'user.x', value: bytesOf('12345678') }] }),
    ),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'an xattr set claiming 2^32-1 pairs',
    build: patched((b) => {
      const header = u64At(b, SB.xattrIdTableStart);
      const idBlock = u64At(b, header + 16);
      patchU32(b, idBlock + 2 + 8, 0xffffffff);
    }),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'an xattr value of 2^32-1 bytes',
    build: patched((b) => {
      const kvStart = u64At(b, u64At(b, SB.xattrIdTableStart));
      patchU32(b, kvStart + 2 + 4 + 1, 0xffffffff);
    }),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'an xattr of an unknown namespace (type 7)',
    build: patched((b) => patchU16(b, u64At(b, u64At(b, SB.xattrIdTableStart)) + 2, 7)),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'an id table index pointing at the superblock',
    build: patched((b, l) => patchU64(b, l.idTableStart, 0n)),
    reader: 'any',
    unpack: 'safe',
  },
  {
    name: 'an empty symlink target',
    build: spec(withNodes((n) => (n[4] = { kind: 'symlink', target: '' }))),
    reader: 'any',
    unpack: 'safe',
  },
  {
    name: 'a directory header claiming 2^32 entries',
    build: patched((b, l) => patchU32(b, l.listingOffsets[3]!, 0xffffffff)),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'a directory header pointing at an inode block far beyond the table',
    build: patched((b, l) => patchU32(b, l.listingOffsets[3]! + 4, 0x7ffffff0)),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'a name length of 65536 (size field 0xffff)',
    build: patched((b, l) => patchU16(b, l.listingOffsets[3]! + 12 + 6, 0xffff)),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'an entry type of 0 and one of 99',
    build: patched((b, l) => {
      patchU16(b, l.listingOffsets[3]! + 12 + 4, 0);
      patchU16(b, l.listingOffsets[0]! + 12 + 4, 99);
    }),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'an entry whose type disagrees with its inode (says directory, is a file)',
    build: spec(withNodes((n) => (n[0] = { kind: 'dir', entries: [{ name: 'a.txt', node: 1, type: InodeType.DIR }, { name: 'big', node: 2 }] }))),
    reader: 'any',
    unpack: 'safe',
  },
  {
    name: 'an entry whose inode number disagrees with its inode',
    build: spec(withNodes((n) => (n[0] = { kind: 'dir', entries: [{ name: 'a.txt', node: 1, inodeNumber: 77 }, { name: 'big', node: 2 }] }))),
    reader: 'any',
    unpack: 'safe',
  },
  {
    name: 'an inode number 0',
    build: spec(withNode(5, { number: 0 })),
    reader: 'any',
    unpack: 'safe',
  },
  {
    name: 'a listing 5 bytes longer than its entries (stray bytes shorter than a header)',
    build: patched((b, l) => patchU16(b, l.inodeOffsets[3]! + 24, new DataView(b.buffer).getUint16(l.inodeOffsets[3]! + 24, true) + 5)),
    reader: 'any',
    unpack: 'safe',
  },
  {
    name: 'a sparse file of 16 GiB (16384 holes of 1 MiB): readChunks yields holes, readFile refuses, nothing big is allocated',
    build: spec({
      blockSize: 1 << 20,
      nodes: [
        { kind: 'dir', entries: [{ name: 'huge', node: 1 }] },
        {
          kind: 'file',
          content: new Uint8Array(0),
          override: { type: InodeType.EXT_FILE, fileSize: 2 ** 34, sparse: 2 ** 34, blockSizes: new Uint32Array(16384), fragmentIndex: NO_INDEX, blocksStart: 96 },
        },
      ],
    }),
    reader: 'any',
    unpack: 'safe',
    timeoutMs: 20_000,
    readFileLimit: Number.POSITIVE_INFINITY,
    check: (o) => {
      // walk and readChunks must work; readFile may refuse (TOO_LARGE), and must not try to allocate 16 GiB.
      expect(o.walkCompleted).toBe(true);
      expect(o.squashfsErrors.filter((e) => e.op !== 'readFile')).toEqual([]);
      expect(o.chunkTotals['/huge']).toBe(2 ** 34);
    },
  },

  // --- names and escapes ----------------------------------------------------------------
  // unsquashfs refuses these names (and unsorted or repeated ones): so must we.
  ...(['/', 'a/b', '.', '..', '../escaped', '/abs', 'nul\0byte'] as const).map(
    (name): EvilCase => ({
      name: `an entry named ${JSON.stringify(name)}`,
      build: spec(rootWith([{ name, node: 1 }], [{ kind: 'file', content: bytesOf('escaped!\n') }])),
      reader: 'reject',
      code: 'CORRUPT_IMAGE',
      unpack: 'refuse',
    }),
  ),
  {
    name: 'an entry ".." that is a directory holding a file',
    build: spec(rootWith([{ name: '..', node: 1 }], [{ kind: 'dir', entries: [{ name: 'escaped', node: 2 }] }, { kind: 'file', content: bytesOf('escaped!\n') }])),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'an entry "..." (a legal name)',
    build: spec(rootWith([{ name: '...', node: 1 }], [{ kind: 'file', content: hello }])),
    reader: 'ok',
    unpack: 'ok',
  },
  {
    name: 'unsorted names',
    build: spec(rootWith([{ name: 'b', node: 1 }, { name: 'a', node: 2 }], [{ kind: 'file', content: hello }, { kind: 'file', content: hello }])),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'safe',
  },
  {
    name: 'duplicate names (two files)',
    build: spec(rootWith([{ name: 'a', node: 1 }, { name: 'a', node: 2 }], [{ kind: 'file', content: hello }, { kind: 'file', content: bytesOf('second\n') }])),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'safe',
  },
  {
    name: 'symlink "a" -> OUTSIDE, then an entry "a/x" (a name with "/")',
    build: (sb) =>
      buildEvilImage(rootWith([{ name: 'a', node: 1 }, { name: 'a/x', node: 2 }], [{ kind: 'symlink', target: sb!.outside }, { kind: 'file', content: bytesOf('escaped!\n') }])).bytes,
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'symlink "a" -> "..", then an entry "a/x"',
    build: spec(rootWith([{ name: 'a', node: 1 }, { name: 'a/x', node: 2 }], [{ kind: 'symlink', target: '..' }, { kind: 'file', content: bytesOf('escaped!\n') }])),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'symlink "a" -> OUTSIDE, then a directory also named "a" holding "x" (duplicate)',
    build: (sb) =>
      buildEvilImage(
        rootWith(
          [{ name: 'a', node: 1 }, { name: 'a', node: 2 }],
          [{ kind: 'symlink', target: sb!.outside }, { kind: 'dir', entries: [{ name: 'x', node: 3 }] }, { kind: 'file', content: bytesOf('escaped!\n') }],
        ),
      ).bytes,
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'symlink "a" -> "../..", then a directory "a" holding "x" (duplicate)',
    build: spec(
      rootWith(
        [{ name: 'a', node: 1 }, { name: 'a', node: 2 }],
        [{ kind: 'symlink', target: '../..' }, { kind: 'dir', entries: [{ name: 'x', node: 3 }] }, { kind: 'file', content: bytesOf('escaped!\n') }],
      ),
    ),
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'a directory "a" holding "x", then a symlink also named "a" -> OUTSIDE (duplicate, other order)',
    build: (sb) =>
      buildEvilImage(
        rootWith(
          [{ name: 'a', node: 1 }, { name: 'a', node: 3 }],
          [{ kind: 'dir', entries: [{ name: 'x', node: 2 }] }, { kind: 'file', content: bytesOf('escaped!\n') }, { kind: 'symlink', target: sb!.outside }],
        ),
      ).bytes,
    reader: 'reject',
    code: 'CORRUPT_IMAGE',
    unpack: 'refuse',
  },
  {
    name: 'symlinks pointing outside (absolute, ../..) are stored as symlinks, never followed',
    build: (sb) =>
      buildEvilImage(
        rootWith(
          [{ name: 'abs', node: 1 }, { name: 'rel', node: 2 }],
          [{ kind: 'symlink', target: path.join(sb!.outside, 'keep') }, { kind: 'symlink', target: '../../outside/keep' }],
        ),
      ).bytes,
    reader: 'ok',
    unpack: 'ok',
  },
  {
    name: 'a hard-linked symlink to OUTSIDE and a file with the same inode number',
    build: (sb) =>
      buildEvilImage(
        rootWith(
          [{ name: 'a', node: 1 }, { name: 'b', node: 1 }, { name: 'c', node: 2 }],
          [{ kind: 'symlink', target: sb!.outside }, { kind: 'file', content: bytesOf('escaped!\n'), number: 2, override: { type: InodeType.EXT_FILE, linkCount: 2 } }],
        ),
      ).bytes,
    reader: 'any',
    unpack: 'safe',
  },
];

describe('hand-made evil images', () => {
  it('the builder makes valid images (unsquashfs accepts the base image)', async () => {
    const probe = await run('unsquashfs', ['-help']).catch(() => undefined);
    if (!probe) {
      console.warn('unsquashfs is not installed: builder sanity check skipped');
      return;
    }
    const file = path.join(work, 'base.sqfs');
    await fsp.writeFile(file, buildEvilImage(baseSpec()).bytes);
    const r = await run('unsquashfs', ['-lln', file], { env: { ...process.env, TZ: 'UTC' } });
    expect(r.stderr.toString()).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toContain('squashfs-root/dir/hard');
  });

  for (const c of EVIL) {
    it(c.name, async () => {
      const sbForBuild = await makeSandbox(false);
      const bytes = c.build(sbForBuild);
      const outcome = await exercise(bytes, c.name, { timeoutMs: c.timeoutMs ?? 5000, extraPaths: c.extraPaths, readFileLimit: c.readFileLimit ?? 64 * 2 ** 20 });
      const errors = outcome.squashfsErrors;
      if (c.reader === 'ok') expect(errors, 'the reader should read this image without errors').toEqual([]);
      if (c.reader === 'reject') {
        expect(errors.length, `the reader should refuse this image (walked ${outcome.entries} entries cleanly)`).toBeGreaterThan(0);
        if (c.code) expect(errors.map((e) => e.code), errors.map((e) => `${e.op}: ${e.code}: ${e.message}`).join('\n')).toContain(c.code);
      }
      c.check?.(outcome);
      // The same sandbox path layout is rebuilt for the unpack runs; images naming OUTSIDE are rebuilt per sandbox.
      await fsp.rm(sbForBuild.root, { recursive: true, force: true });
      await checkUnpack((sb) => c.build(sb), c.unpack);
    });
  }
});
