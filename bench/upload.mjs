#!/usr/bin/env node
// Upload benchmark against s3rver on 127.0.0.1 (started here, storing in tmpfs):
//  1. StreamUpload throughput vs one plain PUT of the same bytes;
//  2. peak RSS of a 1 GiB synthetic stream (8 MiB parts, 4 in flight), in a child under GNU time;
//  3. createBackup to S3 vs packDirectory to a file on the bench corpus (same compression).
// s3rver runs in a child process of its own. Usage: node bench/upload.mjs [--mib 256] [--skip-1g] [--skip-corpus]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import S3rver from '@20minutes/s3rver';

const dist = fileURLToPath(new URL('../dist/', import.meta.url));
const lib = await import(path.join(dist, 'node.js'));
const args = process.argv.slice(2);
const MiB = 1024 * 1024;
const creds = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

if (args[0] === '--child-1g') {
  // The child: streams 1 GiB through StreamUpload; its peak RSS is what GNU time reports.
  const store = lib.s3Store({ endpoint: args[1], bucket: 'bench', ...creds });
  const up = new lib.StreamUpload({ store, key: 'one-gib', partSize: 8 * MiB, concurrency: 4 });
  const chunk = new Uint8Array(128 * 1024).map((_, i) => (i * 31) & 0xff);
  for (let written = 0; written < 1024 * MiB; written += chunk.length) await up.write(chunk);
  const result = await up.complete();
  console.log(JSON.stringify(result));
  process.exit(0);
}

if (args[0] === '--server') {
  // The server, in a process of its own (its request handling and MD5s must not share our event loop).
  const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: args[1], configureBuckets: [{ name: 'bench' }], allowMismatchedSignatures: true });
  const { port } = await server.run();
  process.stdout.write(`${port}\n`);
  process.on('SIGTERM', () => server.close().then(() => process.exit(0)));
} else {
  await main();
}

async function main() {
const dir = mkdtempSync('/dev/shm/s3rver-bench-');
const serverProcess = spawn(process.execPath, [fileURLToPath(import.meta.url), '--server', dir], { stdio: ['ignore', 'pipe', 'inherit'] });
const port = await new Promise((resolve) => serverProcess.stdout.once('data', (d) => resolve(Number(String(d).trim()))));
const server = { close: () => new Promise((resolve) => { serverProcess.once('exit', resolve); serverProcess.kill('SIGTERM'); }) };
const endpoint = `http://127.0.0.1:${port}`;
const store = lib.s3Store({ endpoint, bucket: 'bench', ...creds });
const mib = Number(args[args.indexOf('--mib') + 1]) || 256;
const data = new Uint8Array(mib * MiB).map((_, i) => (i * 2654435761) >>> 24);
const time = async (fn) => { const t = performance.now(); await fn(); return (performance.now() - t) / 1000; };
const rows = [];
try {
  const put = await time(() => store.put('plain', data));
  const streamed = await time(async () => {
    const up = new lib.StreamUpload({ store, key: 'streamed', partSize: 8 * MiB, concurrency: 4 });
    for (let at = 0; at < data.length; at += 1 << 20) await up.write(data.subarray(at, at + (1 << 20)));
    await up.complete();
  });
  rows.push(`| ${mib} MiB, one plain PUT | ${put.toFixed(2)} s | ${(mib / put).toFixed(0)} MiB/s | 1.00× |`);
  rows.push(`| ${mib} MiB, StreamUpload (8 MiB parts, 4 in flight) | ${streamed.toFixed(2)} s | ${(mib / streamed).toFixed(0)} MiB/s | ${(streamed / put).toFixed(2)}× |`);
  if (!args.includes('--skip-1g')) {
    // Asynchronously: the server runs in this process.
    const stderr = await new Promise((resolve, reject) => {
      const child = spawn('/usr/bin/time', ['-f', '%M %e', process.execPath, fileURLToPath(import.meta.url), '--child-1g', endpoint], { stdio: ['ignore', 'ignore', 'pipe'] });
      let text = '';
      child.stderr.on('data', (d) => (text += d));
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve(text) : reject(new Error(`the 1 GiB child failed (${code}): ${text}`))));
    });
    const [rssKiB, wall] = stderr.trim().split('\n').at(-1).split(' ').map(Number);
    const bound = (4 + 1) * 8;
    rows.push(`| 1 GiB stream, 8 MiB parts, 4 in flight (child process) | ${wall.toFixed(2)} s | ${(1024 / wall).toFixed(0)} MiB/s | peak RSS ${(rssKiB / 1024).toFixed(0)} MiB (parts bound ${bound} MiB + Node) |`);
  }
  if (!args.includes('--skip-corpus')) {
    const corpus = fileURLToPath(new URL('./corpus/tree', import.meta.url));
    const file = path.join(dir, 'corpus.sqfs');
    // Interleaved, best of three each (the first runs also warm the page cache).
    let pack = Infinity;
    let backup = Infinity;
    let local = Infinity;
    const localStore = lib.localStore(path.join(dir, 'local-store'));
    for (let run = 0; run < 3; run++) {
      pack = Math.min(pack, await time(() => lib.packDirectory(corpus, file, { compression: 'zstd', level: 3 })));
      backup = Math.min(backup, await time(() => lib.createBackup({ dir: corpus, store, compression: 'zstd' })));
      local = Math.min(local, await time(() => lib.createBackup({ dir: corpus, store: localStore, compression: 'zstd' })));
    }
    rows.push(`| corpus: packDirectory to a file in tmpfs (zstd 3, best of 3) | ${pack.toFixed(2)} s | | 1.00× |`);
    rows.push(`| corpus: createBackup to s3rver (zstd 3, best of 3) | ${backup.toFixed(2)} s | | ${(backup / pack).toFixed(2)}× |`);
    rows.push(`| corpus: createBackup to a local store in tmpfs (zstd 3, best of 3) | ${local.toFixed(2)} s | | ${(local / pack).toFixed(2)}× |`);
  }
  console.log(['| what | wall | throughput | × baseline |', '| --- | ---: | ---: | ---: |', ...rows].join('\n'));
} finally {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
}
}
