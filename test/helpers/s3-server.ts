/**
 * A real S3-compatible server (s3rver, on 127.0.0.1) with a fault-injecting
 * proxy in front, started by the tests themselves.
 *
 * The proxy
 * - checks every presigned URL's SigV4 signature and expiry (s3rver does
 *   not check V4 signatures itself) and answers 403 when one is wrong;
 * - enforces R2's multipart rules on CompleteMultipartUpload: parts listed
 *   in ascending order with the ETags the server gave, every part but the
 *   last of one size >= 5 MiB, at most 10,000 parts; a violation is
 *   recorded (`violations`) and answered 400;
 * - records every upload's life (created, parts in arrival order,
 *   completed or aborted), so a test can see that none is left open;
 * - answers AbortMultipartUpload itself (s3rver 3.7 has no such route),
 *   after checking the upload id is one the server created and still open;
 * - injects faults on the requests a script picks: 500/503/429 answers,
 *   a connection reset half way through the request body, a slow answer,
 *   a 200 with an <Error> body on CompleteMultipartUpload.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { AwsV4Signer } from 'aws4fetch';
// eslint-disable-next-line @typescript-eslint/no-require-imports
import S3rver from 's3rver';

export const ACCESS_KEY = 'S3RVER';
export const SECRET_KEY = 'S3RVER';
const MIN_PART = 5 * 1024 * 1024;

export type Operation = 'create' | 'part' | 'complete' | 'abort' | 'put' | 'head' | 'get' | 'list' | 'delete' | 'other';

export interface ProxyRequest {
  op: Operation;
  method: string;
  key: string;
  partNumber?: number;
  uploadId?: string;
  /** 1-based count of requests of this op so far. */
  n: number;
}

export type Fault =
  | { status: 500 | 503 | 429 | 400 | 403 | 404 }
  | { reset: true }
  | { delayMs: number }
  | { completeError: true };

export interface UploadRecord {
  key: string;
  state: 'open' | 'completed' | 'aborted';
  /** Part numbers in the order their bodies reached the server. */
  arrivals: number[];
  sizes: Map<number, number>;
  etags: Map<number, string>;
}

export interface S3Harness {
  /** The proxy's endpoint (what clients use). */
  endpoint: string;
  /** s3rver's own endpoint (no faults, no checks). */
  direct: string;
  bucket: string;
  region: string;
  /** Picks a fault for a request (or none); replaceable at any time. */
  faults: (request: ProxyRequest) => Fault | undefined;
  uploads: Map<string, UploadRecord>;
  violations: string[];
  requests: ProxyRequest[];
  /** Uploads neither completed nor aborted. */
  openUploads(): UploadRecord[];
  reset(): void;
  close(): Promise<void>;
}

function classify(method: string, url: URL): Omit<ProxyRequest, 'n'> {
  const parts = url.pathname.split('/').slice(2);
  const key = parts.map(decodeURIComponent).join('/');
  const q = url.searchParams;
  const uploadId = q.get('uploadId') ?? undefined;
  const partNumber = q.has('partNumber') ? Number(q.get('partNumber')) : undefined;
  let op: Operation = 'other';
  if (method === 'POST' && q.has('uploads')) op = 'create';
  else if (method === 'PUT' && uploadId) op = 'part';
  else if (method === 'POST' && uploadId) op = 'complete';
  else if (method === 'DELETE' && uploadId) op = 'abort';
  else if (method === 'PUT') op = 'put';
  else if (method === 'HEAD') op = 'head';
  else if (method === 'GET' && !key) op = 'list';
  else if (method === 'GET') op = 'get';
  else if (method === 'DELETE') op = 'delete';
  return { op, method, key, uploadId, partNumber };
}

async function signatureProblem(method: string, url: URL, region: string): Promise<string | undefined> {
  const q = url.searchParams;
  const given = q.get('X-Amz-Signature');
  const date = q.get('X-Amz-Date');
  const expires = Number(q.get('X-Amz-Expires'));
  if (!given || !date) return 'not presigned';
  if (q.get('X-Amz-Credential')?.split('/')[0] !== ACCESS_KEY) return 'unknown access key';
  const when = Date.UTC(+date.slice(0, 4), +date.slice(4, 6) - 1, +date.slice(6, 8), +date.slice(9, 11), +date.slice(11, 13), +date.slice(13, 15));
  if (!(expires > 0 && expires <= 604_800)) return `X-Amz-Expires ${expires} is out of bounds`;
  if (Date.now() > when + expires * 1000) return 'the URL has expired';
  const unsigned = new URL(url);
  unsigned.searchParams.delete('X-Amz-Signature');
  const signer = new AwsV4Signer({
    url: unsigned.toString(), method, accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY, service: 's3', region, datetime: date, signQuery: true,
  });
  const expected = (await signer.sign()).url.searchParams.get('X-Amz-Signature');
  return expected === given ? undefined : 'SignatureDoesNotMatch';
}

const xmlError = (code: string, message: string) =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`;

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export async function startS3(bucket = 'backups', region = 'auto'): Promise<S3Harness> {
  const directory = mkdtempSync(path.join(os.tmpdir(), 's3rver-'));
  const server = new S3rver({
    port: 0, address: '127.0.0.1', silent: true, directory, configureBuckets: [{ name: bucket }], allowMismatchedSignatures: true,
  });
  const s3 = (await server.run()) as AddressInfo;
  const counts = new Map<Operation, number>();

  const harness: S3Harness = {
    endpoint: '',
    direct: `http://127.0.0.1:${s3.port}`,
    bucket,
    region,
    faults: () => undefined,
    uploads: new Map(),
    violations: [],
    requests: [],
    openUploads: () => [...harness.uploads.values()].filter((u) => u.state === 'open'),
    reset() {
      harness.faults = () => undefined;
      harness.uploads.clear();
      harness.violations.length = 0;
      harness.requests.length = 0;
      counts.clear();
    },
    close: async () => {
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
      proxy.closeAllConnections();
      await server.close();
      rmSync(directory, { recursive: true, force: true });
    },
  };

  const forward = (req: http.IncomingMessage, body: Buffer) =>
    new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
      const headers = { ...req.headers, host: `127.0.0.1:${s3.port}`, 'content-length': String(body.length) };
      delete headers['transfer-encoding'];
      const out = http.request({ host: '127.0.0.1', port: s3.port, method: req.method, path: req.url, headers }, (res) => {
        readBody(res).then((b) => resolve({ status: res.statusCode!, headers: res.headers, body: b }), reject);
      });
      out.on('error', reject);
      out.end(body);
    });

  const proxy = http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url!, 'http://proxy');
      const info = classify(req.method!, url);
      const n = (counts.get(info.op) ?? 0) + 1;
      counts.set(info.op, n);
      const request: ProxyRequest = { ...info, n };
      harness.requests.push(request);
      const fault = harness.faults(request);
      if (fault && 'reset' in fault) {
        // Take some of the body, then drop the connection mid-request.
        req.once('data', () => req.socket.destroy());
        req.once('end', () => req.socket.destroy());
        return;
      }
      const body = await readBody(req);
      const reply = (status: number, text: string, headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'content-type': 'application/xml', 'content-length': String(Buffer.byteLength(text)), ...headers });
        res.end(req.method === 'HEAD' ? undefined : text);
      };
      const problem = await signatureProblem(req.method!, new URL(req.url!, `http://${req.headers.host}`), region);
      if (problem) return reply(403, xmlError(problem === 'SignatureDoesNotMatch' ? problem : 'AccessDenied', problem));
      if (fault && 'delayMs' in fault) await new Promise((r) => setTimeout(r, fault.delayMs));
      if (fault && 'status' in fault) return reply(fault.status, xmlError(fault.status === 503 ? 'SlowDown' : fault.status === 429 ? 'TooManyRequests' : 'InternalError', 'injected'));
      if (fault && 'completeError' in fault && info.op === 'complete') {
        return reply(200, xmlError('InternalError', 'We encountered an internal error. Please try again.'));
      }

      const upload = info.uploadId ? harness.uploads.get(info.uploadId) : undefined;
      if (info.op === 'part' || info.op === 'complete' || info.op === 'abort') {
        if (!upload || upload.state !== 'open') return reply(404, xmlError('NoSuchUpload', `upload ${info.uploadId} is not open`));
      }
      if (info.op === 'abort') {
        upload!.state = 'aborted';
        res.writeHead(204).end();
        return;
      }
      if (info.op === 'complete') {
        const listed = [...body.toString().matchAll(/<PartNumber>(\d+)<\/PartNumber>\s*<ETag>([^<]*)<\/ETag>/g)].map((m) => ({
          n: Number(m[1]), etag: m[2]!.replace(/&quot;/g, '"'),
        }));
        const broken: string[] = [];
        if (listed.length === 0) broken.push('no parts listed');
        if (listed.length > 10_000) broken.push(`${listed.length} parts`);
        listed.forEach((p, i) => {
          if (i > 0 && p.n <= listed[i - 1]!.n) broken.push(`part ${p.n} listed after ${listed[i - 1]!.n}`);
          if (upload!.etags.get(p.n) !== p.etag) broken.push(`part ${p.n}: ETag ${p.etag}, the server gave ${upload!.etags.get(p.n)}`);
        });
        const sizes = listed.map((p) => upload!.sizes.get(p.n) ?? -1);
        const size = sizes[0];
        sizes.slice(0, -1).forEach((s, i) => {
          if (s !== size) broken.push(`part ${listed[i]!.n} is ${s} bytes, part ${listed[0]!.n} is ${size}`);
          if (s < MIN_PART) broken.push(`part ${listed[i]!.n} is ${s} bytes, under 5 MiB`);
        });
        if (sizes.at(-1)! > size!) broken.push(`the last part (${sizes.at(-1)}) is larger than the others (${size})`);
        if (broken.length > 0) {
          harness.violations.push(...broken.map((b) => `${info.key}: ${b}`));
          return reply(400, xmlError('InvalidPart', broken.join('; ')));
        }
      }
      const answer = await forward(req, body);
      if (info.op === 'create' && answer.status === 200) {
        const id = /<UploadId>([^<]+)<\/UploadId>/.exec(answer.body.toString())?.[1];
        if (id) harness.uploads.set(id, { key: info.key, state: 'open', arrivals: [], sizes: new Map(), etags: new Map() });
      }
      if (info.op === 'part' && answer.status === 200) {
        upload!.arrivals.push(info.partNumber!);
        upload!.sizes.set(info.partNumber!, body.length);
        upload!.etags.set(info.partNumber!, String(answer.headers.etag));
      }
      if (info.op === 'complete' && answer.status === 200 && !answer.body.includes('<Error>')) upload!.state = 'completed';
      const headers = Object.fromEntries(Object.entries(answer.headers).filter(([k, v]) => v !== undefined && k !== 'transfer-encoding' && k !== 'connection')) as Record<string, string>;
      res.writeHead(answer.status, headers);
      res.end(req.method === 'HEAD' ? undefined : answer.body);
    } catch (error) {
      res.destroy(error as Error);
    }
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', () => resolve()));
  harness.endpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  return harness;
}
