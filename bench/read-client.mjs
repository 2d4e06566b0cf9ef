#!/usr/bin/env node
// One ranged single-file read with the built library, for `--op read` (run.mjs starts one fresh
// process per read, so no cache survives between reads).
//
//   node bench/read-client.mjs --url http://127.0.0.1:PORT/image.sqfs --path /data/logs/app.log
//   node bench/read-client.mjs --file bench/out/images/ours.sqfs --path /data/logs/app.log
//
// --url:  SquashfsImage + httpSource from dist/index.js (the portable entry: default codecs, i.e.
//         fflate for gzip, and global fetch); with --codecs node, nodeCodecs from dist/node.js instead.
//         The image size is not passed, so opening costs one extra `bytes=0-0` request. Before the
//         clock starts, one HEAD request (not counted) warms up Node's fetch: undici is loaded lazily
//         on the first fetch (~100 ms), which would otherwise dominate small reads.
// --file: fileSource + nodeCodecs from dist/node.js (what `sqfs cat` uses), wrapped to count reads
//         (--codecs default to use the portable codecs instead).
// Prints one line `READ-RESULT {json}`: requests and bytes read (total, and for opening alone),
// milliseconds to open and to read (hashing for verification is done after the clock stops).
// BENCH_OURS_DIST=/path/to/dist reads with another build.
import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';
import { pathToFileURL, fileURLToPath } from 'node:url';
import { join } from 'node:path';

const { values: opt } = parseArgs({ options: { url: { type: 'string' }, file: { type: 'string' }, path: { type: 'string' }, codecs: { type: 'string' } } });
opt.codecs ??= opt.url ? 'default' : 'node';
if (!opt.path || !!opt.url === !!opt.file || !['default', 'node'].includes(opt.codecs)) {
  console.error('usage: node bench/read-client.mjs (--url URL | --file IMAGE) --path /file/in/image [--codecs default|node]');
  process.exit(2);
}
const dist = process.env.BENCH_OURS_DIST || fileURLToPath(new URL('../dist/', import.meta.url));
const lib = await import(pathToFileURL(join(dist, 'index.js')).href);
const node = opt.file || opt.codecs === 'node' ? await import(pathToFileURL(join(dist, 'node.js')).href) : null;

/** Counts reads and bytes of a RandomAccessSource (fileSource has no counters of its own). */
function counting(source) {
  let requests = 0, bytesRead = 0;
  return {
    size: source.size,
    get requests() { return requests; },
    get bytesRead() { return bytesRead; },
    async read(offset, length, signal) { requests++; const b = await source.read(offset, length, signal); bytesRead += b.length; return b; },
    close: () => source.close?.(),
  };
}

if (opt.url) {
  const warm = await fetch(opt.url, { method: 'HEAD' });
  if (!warm.ok) throw new Error(`HEAD ${opt.url}: HTTP ${warm.status}`);
  await warm.arrayBuffer();
}
const t0 = performance.now();
const codecs = opt.codecs === 'node' ? { codecs: node.nodeCodecs() } : {};
const source = opt.url ? await lib.httpSource(opt.url) : counting(await node.fileSource(opt.file));
const image = await lib.SquashfsImage.open(source, codecs);
const t1 = performance.now();
const open = { requests: source.requests, bytesRead: source.bytesRead, ms: +(t1 - t0).toFixed(2) };
const bytes = await image.readFile(opt.path);
const t2 = performance.now();
const result = {
  source: opt.url ? 'http' : 'file',
  codecs: opt.codecs,
  path: opt.path,
  imageSize: source.size,
  fileSize: bytes.length,
  requests: source.requests,
  bytesRead: source.bytesRead,
  open,
  readMs: +(t2 - t1).toFixed(2),
  ms: +(t2 - t0).toFixed(2),
  sha256: createHash('sha256').update(bytes).digest('hex'),
};
await image.close();
console.log(`READ-RESULT ${JSON.stringify(result)}`);
process.exit(0);
