#!/usr/bin/env node
/**
 * The reader's mutation fuzzer, for long runs over the built package (dist/).
 * The same fuzzer as test/reader.hostile.test.ts (test/helpers/fuzz.ts):
 * each case flips or overwrites 1-8 bytes of a committed reference image
 * (test/fixtures/images: mksquashfs's and gensquashfs's with every
 * compressor, and our own writer's lz4, lz4 high compression and xz, so the
 * encoders' output is fuzzed too), then opens it and touches everything (walk, stat,
 * readdir, readlink, readFile, readChunks, xattrs) in a worker thread under
 * a watchdog. A failure is any error that is not a SquashfsError, a hang,
 * or ArrayBuffer memory growing beyond the limit.
 *
 *   npm run build
 *   node bench/fuzz.mjs --seconds 300           # all cores, random base seed
 *   node bench/fuzz.mjs --seconds 60 --seed 42 --workers 1 --image mksquashfs-uncompressed.sqfs
 *   node bench/fuzz.mjs --replay mksquashfs-gzip.sqfs:123456   # one case, full outcome
 *   node bench/fuzz.mjs --src --seconds 60      # the sources as they are now, no build needed
 *
 * Case N of a run uses seed BASE+N; the seed alone gives back the mutations
 * (fast-check's sample of mutationsArb(image) with that seed), so a failure
 * printed as `image:seed` replays with --replay. Failing images are saved in
 * --save DIR (default bench/out/fuzz-failures). Exit code 1 when anything failed.
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { loadEsbuild, nodeBundleOptions } from '../test/helpers/esbuild.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    seed: { type: 'string' },
    workers: { type: 'string' },
    image: { type: 'string', multiple: true },
    images: { type: 'string', default: path.join(root, 'test/fixtures/images') },
    replay: { type: 'string' },
    timeout: { type: 'string', default: '5000' },
    'memory-limit-mb': { type: 'string', default: '256' },
    save: { type: 'string', default: path.join(root, 'bench/out/fuzz-failures') },
    // Fuzz the TypeScript sources (bundled on the fly) instead of dist/.
    src: { type: 'boolean', default: false },
  },
});

const scratch = await fsp.mkdtemp(path.join(os.tmpdir(), 'sqfs-fuzz-'));
try {
  for (const f of values.src ? [] : ['dist/node.js', 'dist/index.js']) {
    await fsp.access(path.join(root, f)).catch(() => {
      throw new Error(`${f} is missing: run npm run build first (or fuzz the sources with --src)`);
    });
  }
  // The fuzzer's TypeScript (mutations, exerciser, worker runner) as one ESM module.
  const helper = path.join(scratch, 'fuzz-helper.mjs');
  await loadEsbuild().build({ ...nodeBundleOptions, entryPoints: [path.join(root, 'test/helpers/fuzz.ts')], outfile: helper });
  const fuzz = await import(pathToFileURL(helper).href);
  // The worker runs the reader from dist/ (or src/ with --src).
  const from = values.src ? 'src' : 'dist';
  const workerScript = await fuzz.bundleWorker(scratch, from, root);
  const timeoutMs = Number(values.timeout);
  const exerciseOptions = { allocationLimit: Number(values['memory-limit-mb']) * 2 ** 20 };

  const names = values.image ?? (await fsp.readdir(values.images)).filter((n) => n.endsWith('.sqfs')).sort();
  const images = [];
  for (const name of names) images.push({ name, bytes: new Uint8Array(await fsp.readFile(path.join(values.images, name))) });

  if (values.replay) {
    const [name, seedText] = values.replay.split(':');
    const image = images.find((i) => i.name === name) ?? { name, bytes: new Uint8Array(await fsp.readFile(path.join(values.images, name))) };
    const seed = Number(seedText);
    const mutations = fuzz.mutationsForSeed(image.bytes, seed);
    const runner = new fuzz.IsolatedReader(workerScript, { maxOldGenerationSizeMb: 2048 });
    const result = await runner.run({ kind: 'exercise', bytes: fuzz.applyMutations(image.bytes, mutations), options: exerciseOptions }, timeoutMs);
    await runner.close();
    console.log(JSON.stringify({ image: name, seed, mutations, result }, null, 2));
    process.exitCode = fuzz.failureOf(result) ? 1 : 0;
  } else {
    // Fuzz only what the reader can read unmutated (codecs may be missing).
    const probe = new fuzz.IsolatedReader(workerScript);
    const pool = [];
    for (const image of images) {
      const r = await probe.run({ kind: 'exercise', bytes: image.bytes, options: exerciseOptions }, timeoutMs);
      const clean = r.kind === 'exercise' && r.outcome.squashfsErrors.length === 0 && r.outcome.failures.length === 0;
      if (clean) pool.push(image);
      else console.log(`skipping ${image.name}: ${fuzz.failureOf(r) ?? (r.kind === 'exercise' ? r.outcome.squashfsErrors[0]?.message : r.kind)}`);
    }
    await probe.close();
    if (pool.length === 0) throw new Error('no image the reader can read: nothing to fuzz');

    const seconds = Number(values.seconds);
    const workers = Number(values.workers ?? os.availableParallelism?.() ?? os.cpus().length);
    const base = values.seed === undefined ? Math.floor(Math.random() * 2 ** 30) : Number(values.seed);
    const deadline = Date.now() + seconds * 1000;
    console.log(`fuzzing ${pool.map((p) => p.name).join(', ')} for ${seconds} s with ${workers} workers from seed ${base} (reader: ${from}/)`);
    let next = 0;
    const stats = { cases: 0, opened: 0, walked: 0, failures: 0, hangs: 0 };
    const byKind = new Map();
    let lastReport = Date.now();
    const loop = async () => {
      const runner = new fuzz.IsolatedReader(workerScript, { maxOldGenerationSizeMb: 1024 });
      try {
        while (Date.now() < deadline) {
          const seed = base + next++;
          const image = pool[seed % pool.length];
          const mutations = fuzz.mutationsForSeed(image.bytes, seed);
          const bytes = fuzz.applyMutations(image.bytes, mutations);
          const r = await runner.run({ kind: 'exercise', bytes, options: exerciseOptions }, timeoutMs);
          stats.cases++;
          if (r.kind === 'exercise') {
            if (r.outcome.opened) stats.opened++;
            if (r.outcome.walkCompleted) stats.walked++;
          }
          if (r.kind === 'hang') stats.hangs++;
          const failure = fuzz.failureOf(r);
          if (failure) {
            stats.failures++;
            const kind = failure.split('\n')[0].replace(/\d+/g, 'N').slice(0, 120);
            byKind.set(kind, (byKind.get(kind) ?? 0) + 1);
            await fsp.mkdir(values.save, { recursive: true });
            const saved = path.join(values.save, `${image.name.replace(/\.sqfs$/, '')}-${seed}.sqfs`);
            await fsp.writeFile(saved, bytes);
            console.log(`\nFAIL ${image.name}:${seed} mutations=${JSON.stringify(mutations)}\n    ${failure}\n    saved ${saved}; replay: node bench/fuzz.mjs --replay ${image.name}:${seed}`);
          }
          if (Date.now() - lastReport > 10_000) {
            lastReport = Date.now();
            console.log(`  ${stats.cases} cases, ${stats.opened} opened, ${stats.walked} walked completely, ${stats.failures} failures (${stats.hangs} hangs)`);
          }
        }
      } finally {
        await runner.close();
      }
    };
    const started = Date.now();
    await Promise.all(Array.from({ length: workers }, loop));
    const elapsed = (Date.now() - started) / 1000;
    console.log(
      `\n${stats.cases} cases in ${elapsed.toFixed(1)} s (${(stats.cases / elapsed).toFixed(0)}/s), seeds ${base}..${base + next - 1}: ` +
        `${stats.opened} opened, ${stats.walked} walked completely, ${stats.failures} failures (${stats.hangs} hangs)`,
    );
    for (const [kind, n] of byKind) console.log(`  ${n} x ${kind}`);
    process.exitCode = stats.failures ? 1 : 0;
  }
} finally {
  await fsp.rm(scratch, { recursive: true, force: true });
}
