// A lean in-memory S3-compatible endpoint for bench/link.mjs: just the requests our s3Store
// (src/uploader/s3-store.ts) and the reference client (s3-ref-client.mjs) make, path-style
// (`/<bucket>/<key>`), objects kept as Buffers. Signatures and presigned query parameters are
// accepted unchecked, buckets exist as soon as they are named, ETags are a counter (no MD5), so the
// server costs little CPU next to the tools it serves (s3rver hashes every byte and writes files).
//
//   POST   /b/k?uploads                    CreateMultipartUpload -> <InitiateMultipartUploadResult>
//   PUT    /b/k?partNumber=N&uploadId=U    UploadPart            -> ETag header
//   PUT    same, with x-amz-copy-source    UploadPartCopy (a range of a stored object) -> CopyPartResult
//   POST   /b/k?uploadId=U                 CompleteMultipartUpload (XML list of parts, in order)
//   DELETE /b/k?uploadId=U                 AbortMultipartUpload
//   PUT    /b/k                            PutObject
//   HEAD   /b/k                            HeadObject (content-length)
//   GET    /b/k [Range: bytes=a-b|a-|-n]   GetObject, 206 + content-range for a range
//   GET    /b?list-type=2&prefix=p         ListObjectsV2 (everything in one page)
//   DELETE /b/k                            DeleteObject
//   DELETE /b                              bench liberty: drops the bucket with everything in it
//   GET    /__bench/stats                  requests and bytes by operation since the last reset (JSON)
//   POST   /__bench/reset                  zero those counters
//
// Run as a child process of its own (startLeanS3 below), so its request handling does not share the
// harness's event loop: `node bench/lib/s3-lean-server.mjs` prints `PORT <n>` when listening on
// 127.0.0.1 and exits on SIGTERM or when its stdin closes (so it never outlives the harness).
import http from 'node:http';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** bucket name -> Map(key -> {body: Buffer, etag: string}) */
const buckets = new Map();
/** uploadId -> {bucket, key, parts: Map(partNumber -> {body, etag})} */
const uploads = new Map();
let counter = 0;
let stats = freshStats();

function freshStats() { return { requests: 0, bytesIn: 0, bytesOut: 0, byOp: {} }; }
function count(op, bytesIn, bytesOut) {
  stats.requests++;
  stats.bytesIn += bytesIn;
  stats.bytesOut += bytesOut;
  const o = (stats.byOp[op] ??= { requests: 0, bytesIn: 0, bytesOut: 0 });
  o.requests++;
  o.bytesIn += bytesIn;
  o.bytesOut += bytesOut;
}

const bucketOf = (name) => { let b = buckets.get(name); if (!b) buckets.set(name, (b = new Map())); return b; };
const nextEtag = () => `"bench-${(++counter).toString(16)}"`;
const xmlEscape = (s) => String(s).replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
const XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n';

function sendXml(res, status, xml) {
  const body = Buffer.from(XML_HEAD + xml);
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': body.length });
  res.end(body);
  return body.length;
}
function sendError(res, status, code, message, method) {
  if (method === 'HEAD') { res.writeHead(status, { 'content-length': 0 }); res.end(); return 0; }
  return sendXml(res, status, `<Error><Code>${code}</Code><Message>${xmlEscape(message)}</Message></Error>`);
}

/** The whole request body as one Buffer. */
function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://x');
  const q = url.searchParams;
  if (url.pathname === '/__bench/stats') { const b = Buffer.from(JSON.stringify(stats)); res.end(b); return; }
  if (url.pathname === '/__bench/reset') { stats = freshStats(); res.end('{}'); return; }
  const [, bucketName = '', ...rest] = url.pathname.split('/');
  const bucket = bucketOf(decodeURIComponent(bucketName));
  const key = rest.map(decodeURIComponent).join('/');
  const m = req.method;

  if (!key) {
    if (m === 'GET' && q.get('list-type') === '2') { // ListObjectsV2, one page
      const prefix = q.get('prefix') ?? '';
      const items = [...bucket.entries()].filter(([k]) => k.startsWith(prefix)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      const contents = items.map(([k, o]) => `<Contents><Key>${xmlEscape(k)}</Key><Size>${o.body.length}</Size><ETag>${xmlEscape(o.etag)}</ETag></Contents>`).join('');
      const out = sendXml(res, 200, `<ListBucketResult><Name>${xmlEscape(bucketName)}</Name><Prefix>${xmlEscape(prefix)}</Prefix><KeyCount>${items.length}</KeyCount><IsTruncated>false</IsTruncated>${contents}</ListBucketResult>`);
      count('list', 0, out);
      return;
    }
    if (m === 'DELETE') { buckets.delete(decodeURIComponent(bucketName)); for (const [id, u] of uploads) if (u.bucket === bucketName) uploads.delete(id); res.writeHead(204); res.end(); count('delete-bucket', 0, 0); return; }
    count('unsupported', 0, sendError(res, 400, 'NotImplemented', `${m} on a bucket`, m));
    return;
  }

  if (m === 'POST' && q.has('uploads')) { // CreateMultipartUpload
    await readBody(req);
    const uploadId = `up-${(++counter).toString(16)}`;
    uploads.set(uploadId, { bucket: bucketName, key, parts: new Map() });
    count('create-multipart', 0, sendXml(res, 200, `<InitiateMultipartUploadResult><Bucket>${xmlEscape(bucketName)}</Bucket><Key>${xmlEscape(key)}</Key><UploadId>${uploadId}</UploadId></InitiateMultipartUploadResult>`));
    return;
  }
  if (m === 'PUT' && q.has('uploadId') && req.headers['x-amz-copy-source']) { // UploadPartCopy: a part made from a stored object's range
    await readBody(req);
    const u = uploads.get(q.get('uploadId'));
    const n = Number(q.get('partNumber'));
    const [, srcBucket = '', ...srcRest] = String(req.headers['x-amz-copy-source']).split('/');
    const source = bucketOf(decodeURIComponent(srcBucket)).get(srcRest.map(decodeURIComponent).join('/'));
    const range = /^bytes=(\d+)-(\d+)$/.exec(String(req.headers['x-amz-copy-source-range'] ?? ''));
    if (!u) { count('copy-part', 0, sendError(res, 404, 'NoSuchUpload', 'no such upload', m)); return; }
    if (!source) { count('copy-part', 0, sendError(res, 404, 'NoSuchKey', 'no such copy source', m)); return; }
    if (!Number.isInteger(n) || n < 1 || n > 10_000) { count('copy-part', 0, sendError(res, 400, 'InvalidArgument', `partNumber ${q.get('partNumber')}`, m)); return; }
    const [start, end] = range ? [Number(range[1]), Number(range[2])] : [0, source.body.length - 1];
    if (end >= source.body.length || start > end) { count('copy-part', 0, sendError(res, 400, 'InvalidRange', 'the copy range is outside the source', m)); return; }
    const etag = nextEtag();
    u.parts.set(n, { body: source.body.subarray(start, end + 1), etag });
    count('copy-part', 0, sendXml(res, 200, `<CopyPartResult><ETag>${xmlEscape(etag)}</ETag><LastModified>${new Date().toISOString()}</LastModified></CopyPartResult>`));
    return;
  }
  if (m === 'PUT' && q.has('uploadId')) { // UploadPart
    const body = await readBody(req);
    const u = uploads.get(q.get('uploadId'));
    const n = Number(q.get('partNumber'));
    if (!u) { count('upload-part', body.length, sendError(res, 404, 'NoSuchUpload', 'no such upload', m)); return; }
    if (!Number.isInteger(n) || n < 1 || n > 10_000) { count('upload-part', body.length, sendError(res, 400, 'InvalidArgument', `partNumber ${q.get('partNumber')}`, m)); return; }
    const etag = nextEtag();
    u.parts.set(n, { body, etag });
    res.writeHead(200, { etag, 'content-length': 0 });
    res.end();
    count('upload-part', body.length, 0);
    return;
  }
  if (m === 'POST' && q.has('uploadId')) { // CompleteMultipartUpload
    const xml = (await readBody(req)).toString('utf8');
    const u = uploads.get(q.get('uploadId'));
    if (!u) { count('complete-multipart', xml.length, sendError(res, 404, 'NoSuchUpload', 'no such upload', m)); return; }
    const listed = [...xml.matchAll(/<Part>\s*<PartNumber>(\d+)<\/PartNumber>\s*<ETag>([^<]*)<\/ETag>\s*<\/Part>/g)]
      .map((p) => ({ n: Number(p[1]), etag: p[2].replace(/&quot;|&#34;/g, '"') }));
    const bodies = [];
    for (const [i, p] of listed.entries()) {
      const part = u.parts.get(p.n);
      if (!part || part.etag !== p.etag) { count('complete-multipart', xml.length, sendError(res, 400, 'InvalidPart', `part ${p.n} (${p.etag}) was not uploaded`, m)); return; }
      if (i > 0 && p.n <= listed[i - 1].n) { count('complete-multipart', xml.length, sendError(res, 400, 'InvalidPartOrder', 'parts not in ascending order', m)); return; }
      bodies.push(part.body);
    }
    if (!bodies.length) { count('complete-multipart', xml.length, sendError(res, 400, 'MalformedXML', 'no parts listed', m)); return; }
    const etag = `"bench-${(++counter).toString(16)}-${bodies.length}"`;
    bucketOf(u.bucket).set(u.key, { body: Buffer.concat(bodies), etag });
    uploads.delete(q.get('uploadId'));
    count('complete-multipart', xml.length, sendXml(res, 200, `<CompleteMultipartUploadResult><Location>/${xmlEscape(u.bucket)}/${xmlEscape(u.key)}</Location><Bucket>${xmlEscape(u.bucket)}</Bucket><Key>${xmlEscape(u.key)}</Key><ETag>${xmlEscape(etag)}</ETag></CompleteMultipartUploadResult>`));
    return;
  }
  if (m === 'DELETE' && q.has('uploadId')) { // AbortMultipartUpload
    const gone = uploads.delete(q.get('uploadId'));
    if (gone) { res.writeHead(204); res.end(); count('abort-multipart', 0, 0); } else count('abort-multipart', 0, sendError(res, 404, 'NoSuchUpload', 'no such upload', m));
    return;
  }
  if (m === 'PUT') { // PutObject
    const body = await readBody(req);
    const etag = nextEtag();
    bucket.set(key, { body, etag });
    res.writeHead(200, { etag, 'content-length': 0 });
    res.end();
    count('put', body.length, 0);
    return;
  }
  if (m === 'DELETE') { bucket.delete(key); res.writeHead(204); res.end(); count('delete', 0, 0); return; }
  if (m === 'GET' || m === 'HEAD') {
    const o = bucket.get(key);
    if (!o) { count(m === 'HEAD' ? 'head' : 'get', 0, sendError(res, 404, 'NoSuchKey', `no key ${key}`, m)); return; }
    const size = o.body.length;
    if (m === 'HEAD') { res.writeHead(200, { 'content-length': size, etag: o.etag, 'accept-ranges': 'bytes' }); res.end(); count('head', 0, 0); return; }
    const range = req.headers.range;
    if (!range) { res.writeHead(200, { 'content-length': size, etag: o.etag, 'accept-ranges': 'bytes' }); res.end(o.body); count('get', 0, size); return; }
    const r = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
    let start, end;
    if (r && r[1]) { start = Number(r[1]); end = r[2] ? Math.min(Number(r[2]), size - 1) : size - 1; }
    else if (r && r[2]) { start = Math.max(0, size - Number(r[2])); end = size - 1; }
    if (start === undefined || start > end || start >= size) {
      res.writeHead(416, { 'content-range': `bytes */${size}`, 'content-length': 0 });
      res.end();
      count('get-range', 0, 0);
      return;
    }
    res.writeHead(206, { 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${size}`, etag: o.etag });
    res.end(o.body.subarray(start, end + 1));
    count('get-range', 0, end - start + 1);
    return;
  }
  count('unsupported', 0, sendError(res, 405, 'MethodNotAllowed', `${m} ${url.pathname}`, m));
}

/** Starts the server in this process; resolves with the port. */
export function serve(port = 0, host = '127.0.0.1') {
  const server = http.createServer((req, res) => {
    handle(req, res).catch((err) => { if (!res.headersSent) sendError(res, 500, 'InternalError', err.message, req.method); else res.destroy(err); });
  });
  server.keepAliveTimeout = 60_000;
  server.requestTimeout = 0; // a 5 MiB part at a few MB/s may take longer than the default allows
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve({ server, port: server.address().port }));
  });
}

/**
 * Spawns this file as a child process and waits until it listens.
 * @returns {Promise<{port: number, url: string, pid: number, stats(): Promise<object>, resetStats(): Promise<void>, dropBucket(b: string): Promise<void>, getObject(b: string, k: string): Promise<Buffer>, close(): Promise<void>}>}
 */
export async function startLeanS3() {
  // stdin is a pipe: when the harness dies, it closes and the server exits too.
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    let text = '';
    child.stdout.on('data', (d) => { text += d; const m = /PORT (\d+)/.exec(text); if (m) resolve(Number(m[1])); });
    child.once('exit', (code) => reject(new Error(`the S3 server exited (${code}) before listening`)));
    child.once('error', reject);
  });
  const url = `http://127.0.0.1:${port}`;
  const call = async (method, path) => {
    const r = await fetch(`${url}${path}`, { method });
    if (!r.ok && r.status !== 404) throw new Error(`${method} ${path}: HTTP ${r.status}`);
    return r;
  };
  let exited = false;
  child.once('exit', () => { exited = true; });
  return {
    port, url, pid: child.pid,
    stats: async () => (await call('GET', '/__bench/stats')).json(),
    resetStats: async () => { await call('POST', '/__bench/reset'); },
    dropBucket: async (bucket) => { await call('DELETE', `/${encodeURIComponent(bucket)}`); },
    getObject: async (bucket, key) => {
      const r = await call('GET', `/${encodeURIComponent(bucket)}/${key.split('/').map(encodeURIComponent).join('/')}`);
      if (r.status === 404) return null;
      return Buffer.from(await r.arrayBuffer());
    },
    close: () => new Promise((resolve) => {
      if (exited) { resolve(); return; }
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    }),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { server, port } = await serve(Number(process.env.PORT) || 0);
  process.stdout.write(`PORT ${port}\n`);
  const stop = () => { server.closeAllConnections(); server.close(() => process.exit(0)); setTimeout(() => process.exit(0), 1000).unref(); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdin.on('end', stop).on('error', stop).resume();
}
