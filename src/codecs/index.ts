import { createRegistry, type CodecRegistry } from './codec.js';
import { gzipCodec } from './gzip.js';
import { lz4Codec } from './lz4.js';
import { lzmaCodec } from './lzma.js';
import { lzoCodec } from './lzo.js';
import { xzCodec } from './xz.js';
import { zstdCodec } from './zstd.js';

export * from './codec.js';
export { gzipCodec, encodeGzipOptions } from './gzip.js';
export { lz4Codec } from './lz4.js';
export { lzmaCodec } from './lzma.js';
export { lzoCodec } from './lzo.js';
export { xzCodec } from './xz.js';
export { zstdCodec, createZstdCodec, encodeZstdOptions, ZSTD_DEFAULT_LEVEL, type ZstdCodecOptions } from './zstd.js';
export { loadZstdWasmModule, instantiateZstdWasm, ZSTD_WASM_PACKAGE, type ZstdWasm } from './zstd-wasm.js';

/** The portable codecs, usable in any runtime (all pure JS: Node, browsers, workerd). */
export function defaultCodecs(): CodecRegistry {
  return createRegistry([gzipCodec(), lzmaCodec(), lzoCodec(), xzCodec(), lz4Codec(), zstdCodec()]);
}
