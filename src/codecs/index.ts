import { createRegistry, type CodecRegistry } from './codec.js';
import { gzipCodec } from './gzip.js';
import { lz4Codec } from './lz4.js';
import { lzmaCodec } from './lzma.js';
import { lzoCodec } from './lzo.js';
import { xzCodec } from './xz.js';
import { zstdCodec } from './zstd.js';

export * from './codec.js';
export { gzipCodec, encodeGzipOptions, GZIP_ID } from './gzip.js';
export { lz4Codec, createLz4Codec, encodeLz4Options, LZ4_ID, type Lz4CodecOptions } from './lz4.js';
export { loadLz4WasmModule, instantiateLz4Wasm, type Lz4Wasm } from './lz4-wasm.js';
export { encodeLz4Block } from './lz4-encoder.js';
export { lzmaCodec, LZMA_ID } from './lzma.js';
export { lzoCodec, LZO_ID } from './lzo.js';
export { xzCodec, XZ_ID } from './xz.js';
export { createXzCodec, encodeXzOptions, xzSettings, XZ_DEFAULT_LEVEL, XZ_FILTERS, type XzCodecOptions, type XzSettings } from './xz-encoder.js';
export { loadXzWasmModule, instantiateXzWasm, type XzWasm } from './xz-wasm.js';
export { zstdCodec, createZstdCodec, encodeZstdOptions, ZSTD_DEFAULT_LEVEL, ZSTD_ID, type ZstdCodecOptions } from './zstd.js';
export { loadZstdWasmModule, instantiateZstdWasm, ZSTD_WASM_PACKAGE, type ZstdWasm } from './zstd-wasm.js';

/**
 * The portable codecs, usable in any runtime (all pure JS: Node, browsers,
 * workerd). They all read; gzip and lz4 also write (xz and zstd write with
 * their WASM: `createXzCodec()`, `createZstdCodec()`; lz4 faster with
 * liblz4's: `createLz4Codec()`).
 */
export function defaultCodecs(): CodecRegistry {
  return createRegistry([gzipCodec(), lzmaCodec(), lzoCodec(), xzCodec(), lz4Codec(), zstdCodec()]);
}
