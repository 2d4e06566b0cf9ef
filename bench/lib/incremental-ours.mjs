#!/usr/bin/env node
// The "ours" side of bench/incremental.mjs, one backup, restore or compaction per process (so GNU
// time's peak RSS is this operation's alone), through the public API of the built library
// (dist/node.js), against an S3 endpoint:
//
//   node bench/lib/incremental-ours.mjs backup  --endpoint URL --bucket B --dir DIR --handle OUT.json
//                                              [--base latest|BASE.json] [--max-chain N] [--level 3] [--block-size 131072]
//       createBackup({dir, store, compression: {algorithm: 'zstd', level}, base, maxChain}): a full
//       backup without --base, else a delta over 'latest' or over the handle in BASE.json
//   node bench/lib/incremental-ours.mjs restore --endpoint URL --bucket B --handle IN.json --dir TARGET
//       restoreBackup(handle, {store, dir: TARGET}) (a delta restores through its chain)
//   node bench/lib/incremental-ours.mjs compact --endpoint URL --bucket B --handle IN.json --out OUT.json
//       compactBackup(handle, {store}): one full backup equal to the chain, written as OUT.json
//
// Upload and download settings are the library's defaults. Prints one line `OURS-RESULT {json}`
// with milliseconds since the module started (library loaded, done) and what the handle says (size,
// base, chain length, warnings). BENCH_OURS_DIST=/path/to/dist runs another build.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath, pathToFileURL } from 'node:url';

const t0 = performance.now();
const ms = () => Math.round(performance.now() - t0);
const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    endpoint: { type: 'string' }, bucket: { type: 'string' }, dir: { type: 'string' }, handle: { type: 'string' }, out: { type: 'string' },
    base: { type: 'string' }, 'max-chain': { type: 'string' },
    level: { type: 'string', default: '3' }, 'block-size': { type: 'string', default: '131072' },
  },
});
const command = positionals[0];
const complete = opt.endpoint && opt.bucket && opt.handle && {
  backup: opt.dir, restore: opt.dir, compact: opt.out,
}[command];
if (!complete) {
  console.error('usage: incremental-ours.mjs backup --endpoint URL --bucket B --dir DIR --handle OUT.json [--base latest|FILE.json] [--max-chain N] [--level N] [--block-size N]\n' +
    '       incremental-ours.mjs restore --endpoint URL --bucket B --handle IN.json --dir TARGET\n' +
    '       incremental-ours.mjs compact --endpoint URL --bucket B --handle IN.json --out OUT.json');
  process.exit(2);
}
const dist = process.env.BENCH_OURS_DIST || fileURLToPath(new URL('../../dist/', import.meta.url));
const lib = await import(pathToFileURL(join(dist, 'node.js')).href);
const loadedMs = ms();
const store = lib.s3Store({ endpoint: opt.endpoint, bucket: opt.bucket, accessKeyId: 'x', secretAccessKey: 'x' });
const readHandle = (file) => JSON.parse(readFileSync(file, 'utf8'));
const writeHandle = (file, handle) => writeFileSync(file, `${JSON.stringify(handle, null, 2)}\n`);
/** What the report needs of a new backup's handle. */
const described = (h) => ({ id: h.id, bytes: h.size, base: h.base ?? null, chainLength: (h.chain ?? [h.id]).length, entries: h.entries, warnings: h.warnings });

try {
  let result;
  if (command === 'backup') {
    const base = opt.base === undefined || opt.base === 'latest' ? opt.base : readHandle(opt.base);
    const handle = await lib.createBackup({
      dir: opt.dir, store, base,
      maxChain: opt['max-chain'] === undefined ? undefined : Number(opt['max-chain']),
      compression: { algorithm: 'zstd', level: Number(opt.level) },
      blockSize: Number(opt['block-size']),
    });
    writeHandle(opt.handle, handle);
    result = described(handle);
  } else if (command === 'restore') {
    const handle = readHandle(opt.handle);
    const restored = await lib.restoreBackup(handle, { store, dir: opt.dir });
    result = { bytes: restored.bytes, entries: restored.entries, layers: (handle.chain ?? [handle.id]).length, warnings: restored.warnings };
  } else {
    const handle = await lib.compactBackup(readHandle(opt.handle), { store });
    writeHandle(opt.out, handle);
    result = described(handle);
  }
  console.log(`OURS-RESULT ${JSON.stringify({ loadedMs, doneMs: ms(), ...result })}`);
} catch (err) {
  console.error(`incremental-ours ${command}: ${err.stack ?? err}`);
  process.exit(1);
}
