// Minimal static HTTP server for one file with Range support, for `--op read`.
// Answers GET/HEAD on any path with the file: 206 + Content-Range for `bytes=a-b`, `bytes=a-` and
// `bytes=-n` (first range only), 416 if unsatisfiable, 200 with the whole file without a Range header.
// Counts requests and body bytes sent, as a cross-check of the client's own counters.
import http from 'node:http';
import { createReadStream, statSync } from 'node:fs';

/** @returns {Promise<{url: string, stats: {requests: number, bytesSent: number}, close(): Promise<void>}>} */
export async function serveFile(file, { host = '127.0.0.1' } = {}) {
  const stats = { requests: 0, bytesSent: 0 };
  const server = http.createServer((req, res) => {
    stats.requests++;
    if (req.method !== 'GET' && req.method !== 'HEAD') { res.writeHead(405, { allow: 'GET, HEAD' }).end(); return; }
    const size = statSync(file).size;
    let start = 0, end = size - 1, status = 200;
    const range = req.headers.range;
    if (range) {
      const m = /^bytes=(\d*)-(\d*)/.exec(range);
      if (m && (m[1] || m[2])) {
        if (m[1]) { start = Number(m[1]); end = m[2] ? Math.min(Number(m[2]), size - 1) : size - 1; }
        else { start = Math.max(0, size - Number(m[2])); }
        status = 206;
      }
      if (!m || start > end || start >= size) {
        res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
        return;
      }
    }
    const headers = { 'content-length': end - start + 1, 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
    if (status === 206) headers['content-range'] = `bytes ${start}-${end}/${size}`;
    res.writeHead(status, headers);
    if (req.method === 'HEAD') { res.end(); return; }
    stats.bytesSent += end - start + 1;
    createReadStream(file, { start, end }).on('error', (err) => res.destroy(err)).pipe(res);
  });
  await new Promise((resolve, reject) => { server.once('error', reject); server.listen(0, host, resolve); });
  const { port } = server.address();
  return {
    url: `http://${host}:${port}/image.sqfs`,
    stats,
    close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(() => resolve()); }),
  };
}
