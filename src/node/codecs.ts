import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { createRegistry, type Codec, type CodecRegistry } from '../codecs/codec.js';
import { gzipCodec } from '../codecs/gzip.js';
import { defaultCodecs } from '../codecs/index.js';
import { createLz4Codec, lz4Codec } from '../codecs/lz4.js';
import { createXzCodec } from '../codecs/xz-encoder.js';
import { xzCodec } from '../codecs/xz.js';
import { createZstdCodec, zstdCodec } from '../codecs/zstd.js';
import { instantiateZstdWasm, zstdWasmPath, type ZstdWasm } from '../codecs/zstd-wasm.js';
import { SquashfsError } from '../errors.js';
import type { HashFactory } from '../hash.js';

const deflateAsync = promisify(zlib.deflate);
const inflateAsync = promisify(zlib.inflate);

/**
 * Output in one chunk of the expected size (plus one, to see an overrun):
 * no chunks to join, a third faster than zlib's 16 KiB default.
 */
const inflateOptions = (expectedLength: number): zlib.ZlibOptions => ({
  chunkSize: Math.max(64, expectedLength + 1),
  maxOutputLength: expectedLength + 1,
});

/** gzip on Node's native zlib; the async form runs on libuv's thread pool. */
export function nodeGzipCodec() {
  return gzipCodec({
    deflate: (data, level) => zlib.deflateSync(data, { level }),
    deflateAsync: (data, level) => deflateAsync(data, { level }),
    inflate: (data, expectedLength) => zlib.inflateSync(data, inflateOptions(expectedLength)),
    inflateAsync: (data, expectedLength) => inflateAsync(data, inflateOptions(expectedLength)),
  });
}

/**
 * The installed zstd module, compiled synchronously (Node allows it) the
 * first time a zstd block is decoded on this thread; undefined when it
 * cannot be loaded, and decoding then stays in pure JS.
 */
let zstdDecoder: ZstdWasm | null | undefined = null;
function nodeZstdDecoder(): ZstdWasm | undefined {
  if (zstdDecoder === null) {
    try {
      const file = zstdWasmPath({ createRequire, join, dirname, fileURLToPath, exists: existsSync, cwd: process.cwd() }, import.meta.url);
      zstdDecoder = instantiateZstdWasm(new WebAssembly.Module(readFileSync(file)));
    } catch {
      zstdDecoder = undefined;
    }
  }
  return zstdDecoder;
}

/**
 * Every codec, with Node's native primitives where it has them (zlib) and
 * zstd decoding in WASM; zstd only reads (see loadNodeCodecs).
 */
export function nodeCodecs(): CodecRegistry {
  return createRegistry([...defaultCodecs().values(), nodeGzipCodec(), zstdCodec(nodeZstdDecoder)]);
}

export const nodeSha256: HashFactory = () => {
  const hash = createHash('sha256');
  return {
    update: (data) => void hash.update(data),
    digest: () => new Uint8Array(hash.digest()),
  };
};

export interface LoadNodeCodecsOptions {
  /**
   * zstd.wasm, already compiled (e.g. once in the main thread and posted to
   * each worker, which saves each worker compiling it). Default: the
   * package's own dist/zstd.wasm, read and compiled once per thread.
   */
  zstdModule?: WebAssembly.Module;
  /** xz.wasm (liblzma), already compiled, likewise. Default: the package's own dist/xz.wasm, read and compiled once per thread. */
  xzModule?: WebAssembly.Module;
  /** lz4.wasm (liblz4), likewise. Without it lz4 still compresses, in pure JS (about half as fast). */
  lz4Module?: WebAssembly.Module;
  /**
   * The codecs to load WASM encoders for (default: all of zstd, xz and
   * lz4). A thread that writes with one codec loads only that one, and
   * does not compile the others' modules (zstd's alone is 400 KB). The
   * others still read; zstd and xz then throw UNSUPPORTED_COMPRESSOR when
   * asked to compress, lz4 compresses in pure JS.
   */
  compressors?: readonly string[];
}

/**
 * Every codec as `nodeCodecs()`, and zstd and xz able to compress, lz4
 * with liblz4 (their WASM encoders are loaded first, hence async). Each call makes its own
 * instances: call it once per thread. When a module cannot be loaded (and
 * none was given) the registry still works: that codec reads, and
 * compressing with it throws UNSUPPORTED_COMPRESSOR saying why.
 */
export async function loadNodeCodecs(options: LoadNodeCodecsOptions = {}): Promise<CodecRegistry> {
  const wanted = (name: string) => options.compressors?.includes(name) ?? true;
  const xz = !wanted('xz') ? undefined : createXzCodec({ module: options.xzModule }).catch((error: unknown) => {
    if (options.xzModule) throw error;
    const reason = (error as Error).message;
    return {
      ...xzCodec(),
      compress: () => {
        throw new SquashfsError('UNSUPPORTED_COMPRESSOR', `xz compression is not available: ${reason}`, { cause: error });
      },
    } satisfies Codec;
  });
  let zstd: Codec | undefined;
  if (wanted('zstd')) {
    try {
      zstd = await createZstdCodec({ module: options.zstdModule });
    } catch (error) {
      if (options.zstdModule) throw error;
      const reason = (error as Error).message;
      zstd = {
        ...zstdCodec(),
        compress: () => {
          throw new SquashfsError('UNSUPPORTED_COMPRESSOR', `zstd compression is not available: ${reason}`, { cause: error });
        },
      };
    }
  }
  const lz4 = !wanted('lz4') ? undefined : createLz4Codec({ module: options.lz4Module }).catch((error: unknown) => {
    if (options.lz4Module) throw error;
    return lz4Codec(); // the pure-JS encoder
  });
  const loaded = [zstd, await xz, await lz4].filter((codec): codec is Codec => codec !== undefined);
  return createRegistry([...nodeCodecs().values(), ...loaded]);
}
