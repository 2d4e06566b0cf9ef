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
 * - injects faults on the requests a script picks, on every kind of
 *   request (create, part, complete, abort, put, head, get, ranged get,
 *   list, delete): 500/503/429 answers (with Retry-After if asked), a
 *   connection reset half way through the request body, a slow answer, an
 *   answer body cut off half way, a stall (headers, then silence), a 200
 *   with an <Error> body on CompleteMultipartUpload;
 * - logs every request (`requests`) with its Range header, its arrival time
 *   and the fault it got, so a test can see retries and resumed reads.
 *
 * `oneInFive()` makes a deterministic fault script: one request in five of
 * every kind fails, the kinds of failure taken in turn.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { AwsV4Signer } from 'aws4fetch';
// eslint-disable-next-line @typescript-eslint/no-require-imports
import S3rver from '@20minutes/s3rver';

export const ACCESS_KEY = 'S3RVER';
export const SECRET_KEY = 'S3RVER';
const MIN_PART = 5 * 1024 * 1024;

export type Operation = 'create' | 'part' | 'copy' | 'complete' | 'abort' | 'put' | 'head' | 'get' | 'list' | 'delete' | 'other';

export interface ProxyRequest {
  op: Operation;
  method: string;
  /** The object key with the store's prefix, '' for the bucket (list). */
  key: string;
  partNumber?: number;
  uploadId?: string;
  /** The Range header of a GET ("bytes=a-b"); undefined for a whole-object GET. */
  range?: string;
  /** 1-based count of requests of this op so far. */
  n: number;
  /** When it arrived, in ms (performance.now()). */
  at: number;
  /** Requests open at the proxy when it arrived, this one included. */
  inFlight: number;
  /** The fault injected, if any. */
  fault?: Fault;
}

export type Fault =
  /** Answered with this status and an S3 <Error> body; `retryAfter` (seconds) adds a Retry-After header. */
  | { status: 500 | 501 | 503 | 429 | 400 | 403 | 404; retryAfter?: number }
  /** The connection is dropped while the request comes in; the server never sees it. */
  | { reset: true }
  /** The answer is held back this long, then given. */
  | { delayMs: number }
  /**
   * GET and list: the server's answer headers and about half of its body,
   * then the connection is destroyed. Other requests: like `reset`.
   */
  | { dropBody: true }
  /**
   * GET and list: the server's answer headers are sent (flushed), then
   * nothing more. Other requests (their answers have no body, so headers
   * would finish them): the request body is read, then nothing at all is
   * sent and the server never sees the request. Either way the socket stays
   * open until the client gives up, or `maxMs` (default 60 s) has passed,
   * when it is destroyed.
   */
  | { stall: true; maxMs?: number }
  /** CompleteMultipartUpload answers 200 with an <Error> body (InternalError). */
  | { completeError: true };

/** The kinds of request `oneInFive` counts apart: the op, with ranged GETs and `.json` puts and gets told apart. */
export function requestClass(r: Pick<ProxyRequest, 'op' | 'key' | 'range'>): string {
  if (r.op === 'get' && r.range) return 'get:range';
  if ((r.op === 'put' || r.op === 'get') && r.key.endsWith('.json')) return `${r.op}:json`;
  return r.op;
}

/** Whether a fault can happen to a request (dropBody needs an answer body, completeError a complete). */
export function faultFits(fault: Fault, r: Pick<ProxyRequest, 'op'>): boolean {
  if ('completeError' in fault) return r.op === 'complete';
  if ('dropBody' in fault) return r.op === 'get' || r.op === 'list';
  return true;
}

/** The transient faults `oneInFive` takes in turn. */
export const TRANSIENT_FAULTS: readonly Fault[] = [
  { status: 500 },
  { reset: true },
  { completeError: true },
  { status: 503, retryAfter: 0 },
  { dropBody: true },
  { stall: true, maxMs: 10_000 },
  { status: 429, retryAfter: 1 },
];

/**
 * Where each request class starts in the list of faults (its index here,
 * modulo the number of kinds). With TRANSIENT_FAULTS the first faults are:
 * create 500, part reset, complete <Error> body, put 503, ranged get
 * dropBody (then stall, 429, 500...), head stall, metadata put 429,
 * metadata get 500, list reset, delete 503, abort 503, whole get dropBody.
 */
export const REQUEST_CLASSES = ['create', 'part', 'complete', 'put', 'get:range', 'head', 'put:json', 'get:json', 'list', 'delete', 'abort', 'get', 'other', 'copy'];

export interface OneInFiveOptions {
  /** Fail one request in this many of each class (default 5). */
  every?: number;
  /** Which one of each `every` (1-based; default 1: the 1st, 6th, 11th... of each class fail). */
  which?: number;
  /** Faults to take in turn (default TRANSIENT_FAULTS); one that does not fit a request is passed over. */
  kinds?: readonly Fault[];
}

/**
 * A deterministic fault script: of each request class (see requestClass)
 * the `which`-th of every `every` requests fails, with the next fitting
 * fault of `kinds`. Each class starts at its own place in `kinds` (see
 * REQUEST_CLASSES), so even classes with a single faulted request get
 * different kinds.
 * No randomness: the same requests get the same faults.
 */
export function oneInFive(options: OneInFiveOptions = {}): (request: ProxyRequest) => Fault | undefined {
  const every = options.every ?? 5;
  const which = options.which ?? 1;
  const kinds = options.kinds ?? TRANSIENT_FAULTS;
  const seen = new Map<string, number>();
  const turns = new Map<string, number>();
  const start = (name: string) => Math.max(0, REQUEST_CLASSES.indexOf(name));
  return (request) => {
    const name = requestClass(request);
    const n = (seen.get(name) ?? 0) + 1;
    seen.set(name, n);
    if ((n - which) % every !== 0) return undefined;
    let turn = turns.get(name) ?? start(name);
    for (let tried = 0; tried < kinds.length; tried++, turn++) {
      const fault = kinds[turn % kinds.length]!;
      if (faultFits(fault, request)) {
        turns.set(name, turn + 1);
        return fault;
      }
    }
    return undefined;
  };
}

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
  /** The requests that got a fault. */
  faulted(): ProxyRequest[];
  reset(): void;
  close(): Promise<void>;
}

function classify(method: string, url: URL, copySource: boolean): Pick<ProxyRequest, 'op' | 'method' | 'key' | 'uploadId' | 'partNumber'> {
  const parts = url.pathname.split('/').slice(2);
  const key = parts.map(decodeURIComponent).join('/');
  const q = url.searchParams;
  const uploadId = q.get('uploadId') ?? undefined;
  const partNumber = q.has('partNumber') ? Number(q.get('partNumber')) : undefined;
  let op: Operation = 'other';
  if (method === 'POST' && q.has('uploads')) op = 'create';
  else if (method === 'PUT' && uploadId && copySource) op = 'copy';
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

async function signatureProblem(method: string, url: URL, region: string, sent: http.IncomingHttpHeaders): Promise<string | undefined> {
  const q = url.searchParams;
  const given = q.get('X-Amz-Signature');
  const date = q.get('X-Amz-Date');
  const expires = Number(q.get('X-Amz-Expires'));
  if (!given || !date) return 'not presigned';
  if (q.get('X-Amz-Credential')?.split('/')[0] !== ACCESS_KEY) return 'unknown access key';
  const when = Date.UTC(+date.slice(0, 4), +date.slice(4, 6) - 1, +date.slice(6, 8), +date.slice(9, 11), +date.slice(11, 13), +date.slice(13, 15));
  if (!(expires > 0 && expires <= 604_800)) return `X-Amz-Expires ${expires} is out of bounds`;
  if (Date.now() > when + expires * 1000) return 'the URL has expired';
  // Headers the URL says it signed (besides host) must be sent as signed; an x-amz-* header sent unsigned is refused, as S3 does.
  const signedNames = (q.get('X-Amz-SignedHeaders') ?? 'host').split(';').filter((n) => n !== 'host');
  const unsignedAmz = Object.keys(sent).filter((n) => n.startsWith('x-amz-') && !signedNames.includes(n));
  if (unsignedAmz.length > 0) return `headers present in the request were not signed: ${unsignedAmz.join(', ')}`;
  const headers: Record<string, string> = {};
  for (const name of signedNames) {
    const value = sent[name];
    if (typeof value !== 'string') return `signed header ${name} is missing`;
    headers[name] = value;
  }
  const unsigned = new URL(url);
  unsigned.searchParams.delete('X-Amz-Signature');
  unsigned.searchParams.delete('X-Amz-SignedHeaders');
  const signer = new AwsV4Signer({
    url: unsigned.toString(), method, headers, accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY, service: 's3', region, datetime: date, signQuery: true,
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
  let open = 0;
  /** Sockets held open by stalls, destroyed at the latest by their timer or close(). */
  const stalled = new Set<{ timer: ReturnType<typeof setTimeout>; socket: Socket }>();

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
    faulted: () => harness.requests.filter((r) => r.fault !== undefined),
    reset() {
      harness.faults = () => undefined;
      harness.uploads.clear();
      harness.violations.length = 0;
      harness.requests.length = 0;
      counts.clear();
    },
    close: async () => {
      const closed = new Promise<void>((resolve) => proxy.close(() => resolve()));
      for (const held of stalled) {
        clearTimeout(held.timer);
        held.socket.destroy();
      }
      stalled.clear();
      proxy.closeAllConnections();
      await closed;
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

  /** Holds a socket open, sending nothing more, until the client leaves or `maxMs` passes. */
  const hold = (req: http.IncomingMessage, res: http.ServerResponse, maxMs: number) => {
    const socket = req.socket;
    const held = { socket, timer: setTimeout(() => socket.destroy(), maxMs) };
    stalled.add(held);
    socket.once('close', () => {
      clearTimeout(held.timer);
      stalled.delete(held);
    });
    res.once('close', () => socket.destroy());
  };

  const proxy = http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url!, 'http://proxy');
      const info = classify(req.method!, url, 'x-amz-copy-source' in req.headers);
      const n = (counts.get(info.op) ?? 0) + 1;
      counts.set(info.op, n);
      const range = info.op === 'get' ? req.headers.range : undefined;
      open++;
      res.once('close', () => open--);
      const request: ProxyRequest = { ...info, ...(range ? { range } : {}), n, at: performance.now(), inFlight: open };
      harness.requests.push(request);
      const fault = harness.faults(request);
      if (fault) request.fault = fault;
      const answersWithBody = info.op === 'get' || info.op === 'list';
      if (fault && ('reset' in fault || ('dropBody' in fault && !answersWithBody))) {
        // Take some of the body, then drop the connection mid-request.
        req.once('data', () => req.socket.destroy());
        req.once('end', () => req.socket.destroy());
        return;
      }
      const body = await readBody(req);
      if (fault && 'stall' in fault && !answersWithBody) return hold(req, res, fault.maxMs ?? 60_000);
      const reply = (status: number, text: string, headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'content-type': 'application/xml', 'content-length': String(Buffer.byteLength(text)), ...headers });
        res.end(req.method === 'HEAD' ? undefined : text);
      };
      const problem = await signatureProblem(req.method!, new URL(req.url!, `http://${req.headers.host}`), region, req.headers);
      if (problem) return reply(403, xmlError(problem === 'SignatureDoesNotMatch' ? problem : 'AccessDenied', problem));
      if (fault && 'delayMs' in fault) await new Promise((r) => setTimeout(r, fault.delayMs));
      if (fault && 'status' in fault) {
        const code = { 501: 'NotImplemented', 503: 'SlowDown', 429: 'TooManyRequests', 403: 'AccessDenied', 404: 'NoSuchKey', 400: 'InvalidRequest' }[fault.status as number] ?? 'InternalError';
        return reply(fault.status, xmlError(code, 'injected'), fault.retryAfter === undefined ? {} : { 'retry-after': String(fault.retryAfter) });
      }
      if (fault && 'completeError' in fault && info.op === 'complete') {
        return reply(200, xmlError('InternalError', 'We encountered an internal error. Please try again.'));
      }

      const upload = info.uploadId ? harness.uploads.get(info.uploadId) : undefined;
      if (info.op === 'part' || info.op === 'copy' || info.op === 'complete' || info.op === 'abort') {
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
      if (info.op === 'copy' && answer.status === 200 && !answer.body.includes('<Error>')) {
        const [, first, last] = /^bytes=(\d+)-(\d+)$/.exec(String(req.headers['x-amz-copy-source-range'])) ?? [];
        upload!.arrivals.push(info.partNumber!);
        upload!.sizes.set(info.partNumber!, first === undefined ? -1 : Number(last) - Number(first) + 1);
        upload!.etags.set(info.partNumber!, /<ETag>([^<]*)<\/ETag>/.exec(answer.body.toString())?.[1]?.replace(/&quot;/g, '"') ?? '');
      }
      if (info.op === 'complete' && answer.status === 200 && !answer.body.includes('<Error>')) upload!.state = 'completed';
      const headers = Object.fromEntries(Object.entries(answer.headers).filter(([k, v]) => v !== undefined && k !== 'transfer-encoding' && k !== 'connection')) as Record<string, string>;
      if (fault && 'stall' in fault) {
        // answersWithBody: the headers go out at once, the body never.
        res.writeHead(answer.status, headers);
        res.flushHeaders();
        return hold(req, res, fault.maxMs ?? 60_000);
      }
      if (fault && 'dropBody' in fault) {
        res.writeHead(answer.status, headers);
        res.write(answer.body.subarray(0, Math.floor(answer.body.length / 2)), () => req.socket.destroy());
        return;
      }
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
