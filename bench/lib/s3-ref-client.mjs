#!/usr/bin/env node
// The reference transfer client of bench/link.mjs: what a plain, well-parallelised S3 client does
// with a finished image file, in plain node:http (no SDK, no signing: the lean server accepts
// unsigned requests), so the reference pipelines are "mksquashfs, then upload" and
// "download, then unsquashfs" with the transfer as fast as the link allows.
//
//   node bench/lib/s3-ref-client.mjs put --url http://127.0.0.1:PORT/bucket/key --file F [--part-size BYTES]
//       multipart upload: create, then ALL parts at once (each streamed from the file), then complete
//   node bench/lib/s3-ref-client.mjs get --url http://127.0.0.1:PORT/bucket/key --out F [--concurrency 8] [--range-size BYTES]
//       HEAD for the size, then ranged GETs (`concurrency` at once, `range-size` each) written at
//       their offsets into F
//
// Prints one line `REF-RESULT {json}` with milliseconds of each phase (for the report's notes).
import http from 'node:http';
import { createReadStream, openSync, closeSync, ftruncateSync, statSync, write } from 'node:fs';
import { parseArgs } from 'node:util';

const MiB = 1024 * 1024;
const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string' }, file: { type: 'string' }, out: { type: 'string' },
    'part-size': { type: 'string', default: String(5 * MiB) },
    concurrency: { type: 'string', default: '8' },
    'range-size': { type: 'string', default: String(8 * MiB) },
  },
});
const command = positionals[0];
if (!opt.url || !((command === 'put' && opt.file) || (command === 'get' && opt.out))) {
  console.error('usage: s3-ref-client.mjs put --url URL --file F [--part-size N] | get --url URL --out F [--concurrency N] [--range-size N]');
  process.exit(2);
}
const target = new URL(opt.url);
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
const t0 = performance.now();
const ms = () => Math.round(performance.now() - t0);

/** One request; resolves with {status, headers, body: Buffer} (body only when collect is true). */
function request(method, query, { headers = {}, body, collect = true, onData } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: target.hostname, port: target.port, path: `${target.pathname}${query}`, method, headers, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => (onData ? onData(c) : collect && chunks.push(c)));
      res.on('end', () => {
        const out = { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) };
        if (res.statusCode >= 300) reject(new Error(`${method} ${target.pathname}${query}: HTTP ${res.statusCode} ${out.body.toString().slice(0, 300)}`));
        else resolve(out);
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body === undefined) req.end();
    else if (typeof body.pipe === 'function') body.on('error', (e) => req.destroy(e)).pipe(req);
    else req.end(body);
  });
}

async function put() {
  const size = statSync(opt.file).size;
  const partSize = Number(opt['part-size']);
  if (!Number.isInteger(partSize) || partSize < 5 * MiB) throw new Error(`--part-size must be at least 5 MiB, got ${opt['part-size']}`);
  const created = await request('POST', '?uploads');
  const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(created.body.toString())?.[1];
  if (!uploadId) throw new Error('no UploadId in the answer');
  const createdMs = ms();
  const count = Math.max(1, Math.ceil(size / partSize));
  const etags = await Promise.all(Array.from({ length: count }, async (_, i) => {
    const start = i * partSize;
    const end = Math.min(size, start + partSize); // exclusive
    const r = await request('PUT', `?partNumber=${i + 1}&uploadId=${encodeURIComponent(uploadId)}`, {
      headers: { 'content-length': end - start },
      body: createReadStream(opt.file, { start, end: end - 1, highWaterMark: 256 * 1024 }),
    });
    if (!r.headers.etag) throw new Error(`part ${i + 1}: no ETag`);
    return r.headers.etag;
  }));
  const partsMs = ms();
  const xml = `<CompleteMultipartUpload>${etags.map((e, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${e.replace(/"/g, '&quot;')}</ETag></Part>`).join('')}</CompleteMultipartUpload>`;
  const done = await request('POST', `?uploadId=${encodeURIComponent(uploadId)}`, { headers: { 'content-type': 'application/xml' }, body: xml });
  if (/<Error[\s>]/.test(done.body.toString())) throw new Error(`complete: ${done.body.toString().slice(0, 300)}`);
  return { bytes: size, parts: count, partSize, createdMs, partsMs, completeMs: ms() };
}

async function get() {
  const concurrency = Number(opt.concurrency);
  const rangeSize = Number(opt['range-size']);
  if (!(concurrency >= 1) || !(rangeSize >= 1)) throw new Error('--concurrency and --range-size must be positive');
  const head = await request('HEAD', '');
  const size = Number(head.headers['content-length']);
  const headMs = ms();
  const fd = openSync(opt.out, 'w');
  try {
    ftruncateSync(fd, size);
    let next = 0;
    let firstByteMs = null;
    const worker = async () => {
      while (next < size) {
        const start = next;
        const end = Math.min(size, start + rangeSize); // exclusive
        next = end;
        let at = start;
        const writes = [];
        await request('GET', '', {
          headers: { range: `bytes=${start}-${end - 1}` },
          onData: (chunk) => {
            firstByteMs ??= ms();
            const pos = at;
            at += chunk.length;
            writes.push(new Promise((resolve, reject) => write(fd, chunk, 0, chunk.length, pos, (e, n) => (e ? reject(e) : n !== chunk.length ? reject(new Error(`short write at ${pos}`)) : resolve()))));
          },
        });
        await Promise.all(writes);
        if (at !== end) throw new Error(`range ${start}-${end - 1}: got ${at - start} bytes`);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, Math.ceil(size / rangeSize) || 1) }, worker));
    return { bytes: size, ranges: Math.ceil(size / rangeSize), concurrency, rangeSize, headMs, firstByteMs, doneMs: ms() };
  } finally {
    closeSync(fd);
  }
}

try {
  const result = command === 'put' ? await put() : await get();
  console.log(`REF-RESULT ${JSON.stringify(result)}`);
  agent.destroy();
} catch (err) {
  console.error(`s3-ref-client ${command}: ${err.message}`);
  process.exit(1);
}
