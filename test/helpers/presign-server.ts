/**
 * A presign service on 127.0.0.1, as a container reaches it: a plain Node
 * HTTP server that turns each request into a fetch Request, hands it to
 * `handle` (presignService's) and writes the Response back. Every request
 * is logged with the answer's status and code; `faults` can answer one
 * with a 500 or drop its connection before `handle` sees it.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type PresignFault = { status: 500 | 503 } | { reset: true };

export interface PresignLogEntry {
  /** The presign request's body as sent ({ method, key, query }), unparsed. */
  body: string;
  status: number;
  code?: string;
  fault?: PresignFault;
}

export interface PresignServer {
  url: string;
  log: PresignLogEntry[];
  /** Picks a fault for the n-th request of the log (1-based: clear the log to count afresh), or none; replaceable. */
  faults: (n: number) => PresignFault | undefined;
  close(): Promise<void>;
}

export async function startPresignServer(handle: (request: Request) => Promise<Response>): Promise<PresignServer> {
  const server = http.createServer(async (req, res) => {
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const body = Buffer.concat(chunks);
      const entry: PresignLogEntry = { body: body.toString(), status: 0 };
      presign.log.push(entry);
      const fault = presign.faults(presign.log.length);
      if (fault) entry.fault = fault;
      if (fault && 'reset' in fault) {
        req.socket.destroy();
        return;
      }
      if (fault) {
        entry.status = fault.status;
        res.writeHead(fault.status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'injected', code: 'INJECTED' }));
        return;
      }
      const headers = new Headers();
      for (const [name, value] of Object.entries(req.headers)) if (typeof value === 'string') headers.set(name, value);
      const request = new Request(`http://127.0.0.1${req.url}`, { method: req.method, headers, body: req.method === 'GET' || req.method === 'HEAD' ? undefined : body });
      const response = await handle(request);
      const text = await response.text();
      entry.status = response.status;
      if (!response.ok) entry.code = (JSON.parse(text) as { code?: string }).code;
      const out: Record<string, string> = {};
      response.headers.forEach((value, name) => void (out[name] = value));
      res.writeHead(response.status, out).end(text);
    } catch (error) {
      res.destroy(error as Error);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const presign: PresignServer = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/presign`,
    log: [],
    faults: () => undefined,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
  return presign;
}
