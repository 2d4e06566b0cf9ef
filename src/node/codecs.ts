import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { createRegistry, type CodecRegistry } from '../codecs/codec.js';
import { gzipCodec } from '../codecs/gzip.js';
import { defaultCodecs } from '../codecs/index.js';
import type { HashFactory } from '../hash.js';

const deflateAsync = promisify(zlib.deflate);
const inflateAsync = promisify(zlib.inflate);

/** gzip on Node's native zlib; the async form runs on libuv's thread pool. */
export function nodeGzipCodec() {
  return gzipCodec({
    deflate: (data, level) => zlib.deflateSync(data, { level }),
    deflateAsync: (data, level) => deflateAsync(data, { level }),
    inflate: (data, expectedLength) => zlib.inflateSync(data, { maxOutputLength: expectedLength + 1 }),
    inflateAsync: (data, expectedLength) => inflateAsync(data, { maxOutputLength: expectedLength + 1 }),
  });
}

/** Every codec, with Node's native primitives where it has them (zlib). */
export function nodeCodecs(): CodecRegistry {
  return createRegistry([...defaultCodecs().values(), nodeGzipCodec()]);
}

export const nodeSha256: HashFactory = () => {
  const hash = createHash('sha256');
  return {
    update: (data) => void hash.update(data),
    digest: () => new Uint8Array(hash.digest()),
  };
};

/** Every codec, with those that must be loaded first (WASM) ready to compress. */
export async function loadNodeCodecs(): Promise<CodecRegistry> {
  return nodeCodecs();
}
