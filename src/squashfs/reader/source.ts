import { SquashfsError } from '../../errors.js';
import type { RandomAccessSource } from './types.js';

export type { RandomAccessSource };

/** Throws `CORRUPT_IMAGE` unless [offset, offset + length) lies within `size`. */
export function checkRange(offset: number, length: number, size: number, what: string): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new SquashfsError('CORRUPT_IMAGE', `${what}: bytes ${offset}..${offset + length} lie outside the image of ${size} bytes`, { offset });
  }
}

/** An image held in memory. */
export function bytesSource(bytes: Uint8Array): RandomAccessSource {
  return {
    size: bytes.length,
    async read(offset, length) {
      checkRange(offset, length, bytes.length, 'read');
      return bytes.subarray(offset, offset + length);
    },
  };
}

export interface HttpSourceOptions {
  fetch?: typeof fetch;
  headers?: Record<string, string>;
  /** The object's size, when known (saves a request). */
  size?: number;
}

/** Counts what a source was asked for: requests and bytes. */
export interface CountingSource extends RandomAccessSource {
  readonly requests: number;
  readonly bytesRead: number;
}

/**
 * An image behind HTTP Range requests (a presigned GET URL, any static
 * server). The size comes from `options.size` or a `bytes=0-0` request.
 */
export async function httpSource(url: string, options: HttpSourceOptions = {}): Promise<CountingSource> {
  const doFetch = options.fetch ?? fetch;
  let requests = 0;
  let bytesRead = 0;
  const get = async (start: number, end: number, signal?: AbortSignal): Promise<Response> => {
    requests++;
    let response: Response;
    try {
      response = await doFetch(url, { headers: { ...options.headers, range: `bytes=${start}-${end}` }, signal });
    } catch (cause) {
      throw new SquashfsError('SOURCE_UNREADABLE', `GET ${redact(url)} bytes ${start}-${end} failed: ${(cause as Error).message}`, { cause });
    }
    if (response.status !== 206) {
      await response.body?.cancel().catch(() => undefined);
      const code = response.status === 404 ? 'NOT_FOUND' : 'SOURCE_UNREADABLE';
      throw new SquashfsError(code, `GET ${redact(url)} bytes ${start}-${end} answered HTTP ${response.status}, expected 206`);
    }
    return response;
  };
  let size = options.size;
  if (size === undefined) {
    const response = await get(0, 0);
    const match = /\/(\d+)$/.exec(response.headers.get('content-range') ?? '');
    await response.arrayBuffer();
    if (!match) throw new SquashfsError('SOURCE_UNREADABLE', `GET ${redact(url)} gave no Content-Range with the object's size`);
    size = Number(match[1]);
  }
  const total = size;
  return {
    size: total,
    get requests() {
      return requests;
    },
    get bytesRead() {
      return bytesRead;
    },
    async read(offset, length, signal) {
      checkRange(offset, length, total, 'read');
      if (length === 0) return new Uint8Array(0);
      const response = await get(offset, offset + length - 1, signal);
      const bytes = new Uint8Array(await response.arrayBuffer());
      if (bytes.length !== length) {
        throw new SquashfsError('SOURCE_UNREADABLE', `GET ${redact(url)} returned ${bytes.length} bytes at ${offset}, expected ${length}`, { offset });
      }
      bytesRead += length;
      return bytes;
    },
  };
}

/** A URL without its query (presigned URLs carry credentials there). */
function redact(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : `${url.slice(0, q)}?…`;
}
