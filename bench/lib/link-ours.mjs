#!/usr/bin/env node
// The "ours" side of bench/link.mjs, one backup or restore per process (so GNU time's peak RSS is
// this tool's alone), through the public API of the built library (dist/node.js):
//
//   node bench/lib/link-ours.mjs backup  --endpoint URL --bucket B --dir DIR --handle OUT.json [--level 3] [--block-size 131072]
//       createBackup({dir, store: s3Store(...), compression: {algorithm: 'zstd', level}}) and writes the handle
//   node bench/lib/link-ours.mjs restore --endpoint URL --bucket B --handle IN.json --dir TARGET
//       restoreBackup(handle, {store, dir: TARGET})
//
// Upload and download settings are the library's defaults (that is what is measured). Prints one
// line `OURS-RESULT {json}` with milliseconds since the module started: when the library was loaded,
// the first progress event that reported bytes going to or from the store, and the end.
// BENCH_OURS_DIST=/path/to/dist runs another build. To try other settings, BENCH_UPLOAD and BENCH_DOWNLOAD
// take JSON passed as createBackup's `upload` and restoreBackup's `download` (e.g. '{"rangeSize":1048576}').
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath, pathToFileURL } from 'node:url';

const t0 = performance.now();
const ms = () => Math.round(performance.now() - t0);
const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    endpoint: { type: 'string' }, bucket: { type: 'string' }, dir: { type: 'string' }, handle: { type: 'string' },
    level: { type: 'string', default: '3' }, 'block-size': { type: 'string', default: '131072' },
  },
});
const command = positionals[0];
if (!['backup', 'restore'].includes(command) || !opt.endpoint || !opt.bucket || !opt.dir || !opt.handle) {
  console.error('usage: link-ours.mjs backup|restore --endpoint URL --bucket B --dir DIR --handle FILE.json [--level N] [--block-size N]');
  process.exit(2);
}
const dist = process.env.BENCH_OURS_DIST || fileURLToPath(new URL('../../dist/', import.meta.url));
const lib = await import(pathToFileURL(join(dist, 'node.js')).href);
const loadedMs = ms();
const store = lib.s3Store({ endpoint: opt.endpoint, bucket: opt.bucket, accessKeyId: 'x', secretAccessKey: 'x' });

let firstTransferMs = null;
try {
  if (command === 'backup') {
    const handle = await lib.createBackup({
      dir: opt.dir, store,
      compression: { algorithm: 'zstd', level: Number(opt.level) },
      blockSize: Number(opt['block-size']),
      upload: process.env.BENCH_UPLOAD ? JSON.parse(process.env.BENCH_UPLOAD) : undefined,
      onProgress: (p) => { if (p.bytesUploaded > 0) firstTransferMs ??= ms(); },
    });
    writeFileSync(opt.handle, `${JSON.stringify(handle, null, 2)}\n`);
    console.log(`OURS-RESULT ${JSON.stringify({ loadedMs, firstAckMs: firstTransferMs, doneMs: ms(), bytes: handle.size })}`);
  } else {
    const handle = JSON.parse(readFileSync(opt.handle, 'utf8'));
    let downloadDoneMs = null;
    const result = await lib.restoreBackup(handle, {
      store, dir: opt.dir,
      download: process.env.BENCH_DOWNLOAD ? JSON.parse(process.env.BENCH_DOWNLOAD) : undefined,
      onProgress: (p) => {
        if (p.phase === 'download' && p.bytes > 0) firstTransferMs ??= ms();
        if (p.phase === 'extract') downloadDoneMs ??= ms();
      },
    });
    console.log(`OURS-RESULT ${JSON.stringify({ loadedMs, firstByteMs: firstTransferMs, extractStartMs: downloadDoneMs, doneMs: ms(), bytes: handle.size, entries: result.entries ?? null })}`);
  }
} catch (err) {
  console.error(`link-ours ${command}: ${err.stack ?? err}`);
  process.exit(1);
}
