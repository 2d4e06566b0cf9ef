import { createRegistry, type CodecRegistry } from './codec.js';
import { gzipCodec } from './gzip.js';

export * from './codec.js';
export { gzipCodec, encodeGzipOptions } from './gzip.js';

/** The portable codecs, usable in any runtime. */
export function defaultCodecs(): CodecRegistry {
  return createRegistry([gzipCodec()]);
}
