#!/usr/bin/env node
// The least a Node program must do to lz4 a tree the way `sqfs pack --comp lz4` does, as a floor for
// bench/compressors.mjs: walk the tree (readdir, lstat), cut every regular file into 128 KiB blocks,
// have 2 worker threads read and lz4 them with our liblz4 build (dist/lz4.wasm, as the pack does), and
// write the compressed blocks in order to one file. No SquashFS at all: no inodes, directories,
// fragments, duplicates, holes, xattrs or progress; the output is not an image.
//
//   node bench/lib/lz4-floor.mjs <dir> <out> [--processors 2] [--block-size 131072]
import { closeSync, lstatSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: { processors: { type: 'string', default: '2' }, 'block-size': { type: 'string', default: '131072' } },
});
const [root, outPath] = positionals;
if (!root || !outPath) {
  console.error('usage: node bench/lib/lz4-floor.mjs <dir> <out> [--processors 2] [--block-size 131072]');
  process.exit(2);
}
const threads = Number(opt.processors);
const blockSize = Number(opt['block-size']);
/** Blocks in flight: 32 MiB, as the pack keeps (src/node/compress-pool.ts). */
const inFlightMax = Math.max(8, Math.floor((32 << 20) / blockSize));

const module = await WebAssembly.compile(readFileSync(new URL('../../dist/lz4.wasm', import.meta.url)));
const workers = Array.from({ length: threads }, () => new Worker(new URL('./lz4-floor-worker.mjs', import.meta.url), { workerData: { module, blockSize } }));

const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    const st = lstatSync(path);
    if (st.isDirectory()) walk(path);
    else if (st.isFile() && st.size > 0) files.push({ path, size: st.size });
  }
};
walk(root);

const out = openSync(outPath, 'w');
/** Open files, in order, each with the id of its last block. */
const open = [];
const done = new Map();
let nextId = 0;
let nextWrite = 0;
let inFlight = 0;
let wake;
for (const worker of workers) {
  worker.on('message', ({ id, bytes }) => {
    inFlight--;
    done.set(id, bytes);
    while (done.has(nextWrite)) {
      writeSync(out, done.get(nextWrite));
      done.delete(nextWrite++);
    }
    // A file's descriptor closes once its last block is written.
    while (open.length > 0 && open[0].last < nextWrite) closeSync(open.shift().fd);
    wake?.();
  });
}
const waitForRoom = () => new Promise((resolve) => (wake = resolve));
for (const { path, size } of files) {
  const fd = openSync(path, 'r');
  open.push({ fd, last: nextId + Math.ceil(size / blockSize) - 1 });
  for (let position = 0; position < size; position += blockSize) {
    while (inFlight >= inFlightMax) await waitForRoom();
    const id = nextId++;
    inFlight++;
    workers[id % threads].postMessage({ id, fd, position, length: Math.min(blockSize, size - position) });
  }
}
while (inFlight > 0) await waitForRoom();
closeSync(out);
await Promise.all(workers.map((w) => w.terminate()));
