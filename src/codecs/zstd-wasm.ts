import { SquashfsError } from '../errors.js';
import { locateWasm, type WasmLocator } from './node-builtin.js';
import { bindExports, checkCompiled, checkModuleShape, HeapAreas, instantiateModule, nodeModuleLoader, resizeHeap } from './wasm-module.js';

/**
 * A small driver for the zstd build shipped by `@foxglove/wasm-zstd` (its
 * `dist/wasm-zstd.wasm`: the reference C library built by Emscripten at
 * -O3, with a `compress` that is ZSTD_compress and a `decompress` that is
 * ZSTD_decompress). Its own JS glue compiles the module from bytes at load
 * time, which workerd refuses, so the module is instantiated here with
 * `new WebAssembly.Instance(module, imports)`: it works from a precompiled
 * `WebAssembly.Module` (a Worker's `.wasm` import) as well as from one
 * compiled on Node.
 *
 * Chosen over `@bokuweb/zstd-wasm` (used before) because it is the fastest
 * of the WASM builds on npm that we measured on 128 KiB blocks of the bench
 * corpus: level 3 124 MiB/s vs 102, level 15 5.8 MiB/s vs 4.0 (native
 * zstd 1.5.4: 198 and 5.8), the -Os build being the difference.
 *
 * The build's import and export names are minified; the table below maps
 * them for the pinned package version (1.0.1; the mapping is the one in its
 * `dist/wasm-zstd.js`). `instantiateZstdWasm` checks the shape of the
 * module and runs a self-test, so another build fails loudly instead of
 * misbehaving.
 */

/** The npm package whose wasm this driver runs (pinned exactly in package.json). */
export const ZSTD_WASM_PACKAGE = '@foxglove/wasm-zstd';

/** The module's file, beside that package's entry point (`dist/index.js`). */
const ZSTD_WASM_FILE = 'wasm-zstd.wasm';

/** This package's copy of it, which the build puts beside the bundles (`dist/zstd.wasm`). */
const BUILT_WASM_FILE = 'zstd.wasm';

/** What each (minified) export of the build is. */
const EXPORTS = {
  memory: 'c',
  callCtors: 'd', // __wasm_call_ctors
  malloc: 'f',
  free: 'g',
  compressBound: 'h', // ZSTD_compressBound(srcSize)
  compress: 'i', // ZSTD_compress(dst, dstCap, src, srcSize, level), -1 on error
  decompress: 'j', // ZSTD_decompress(dst, dstCap, src, srcSize), -1 on error
} as const;

const ARITY: Record<Exclude<keyof typeof EXPORTS, 'memory'>, number> = {
  callCtors: 0,
  malloc: 1,
  free: 1,
  compressBound: 1,
  compress: 5,
  decompress: 4,
};

/** The imports the build expects, all in module "a": a emscripten_resize_heap, b emscripten_memcpy_big. */
const IMPORT_NAMES = ['a', 'b'];

const MAX_HEAP = 2 ** 31; // the build's getHeapMax()

type Fn = (...args: number[]) => number;

interface Exports {
  memory: WebAssembly.Memory;
  callCtors: Fn;
  malloc: Fn;
  free: Fn;
  compressBound: Fn;
  compress: Fn;
  decompress: Fn;
}

function wasmError(message: string): never {
  throw new SquashfsError('CODEC_ERROR', `zstd (wasm): ${message}`);
}

/** Throws unless `module` has the imports and exports of the pinned build. */
function checkZstdModule(module: WebAssembly.Module): void {
  checkModuleShape(module, IMPORT_NAMES.map((name) => `a.${name}:function`), EXPORTS, `${ZSTD_WASM_PACKAGE}'s ${ZSTD_WASM_FILE}`, wasmError);
}

/**
 * One instance of the zstd module, with input and output buffers in its
 * memory that are kept between blocks. Not reentrant (nothing here
 * yields), one per thread.
 */
export class ZstdWasm {
  private x: Exports;
  /** Input and output areas in the module's memory, grown on demand. */
  private areas!: HeapAreas;
  /** Set when the module trapped or a grow failed: its state is not to be trusted any more. */
  private broken = false;

  constructor(private readonly module: WebAssembly.Module) {
    checkZstdModule(module);
    this.x = this.instantiate();
    this.selfTest();
  }

  private instantiate(): Exports {
    let memory: WebAssembly.Memory | undefined;
    const memcpyBig = (dest: number, src: number, length: number): void => {
      const heap = new Uint8Array(memory!.buffer);
      heap.copyWithin(dest >>> 0, src >>> 0, (src >>> 0) + (length >>> 0));
    };
    const instance = instantiateModule(this.module, { a: { a: resizeHeap(() => memory!, MAX_HEAP), b: memcpyBig } }, 'zstd (wasm)');
    const x = bindExports<Exports>(instance, EXPORTS, ARITY, `the pinned ${ZSTD_WASM_FILE} build`, wasmError);
    memory = x.memory;
    this.broken = false;
    this.areas = new HeapAreas(x);
    x.callCtors();
    return x;
  }

  /** Compresses a small known input and decompresses it again: a wrong build fails here. */
  private selfTest(): void {
    const sample = new TextEncoder().encode('squashfs zstd self-test, squashfs zstd self-test, squashfs zstd self-test');
    const out = this.compress(sample, 3);
    const magic = out.length >= 4 ? (out[0]! | (out[1]! << 8) | (out[2]! << 16) | (out[3]! << 24)) >>> 0 : 0;
    if (magic !== 0xfd2fb528 || out.length >= sample.length) wasmError('self-test failed: the module does not produce zstd frames');
    const back = this.decompress(out, sample.length);
    if (back.length !== sample.length || back.some((b, i) => b !== sample[i])) wasmError('self-test failed: the module does not round-trip');
  }

  /**
   * One zstd frame for `data` at `level`, compressed in one shot with the
   * source size known: the frame declares its content size, and its window
   * is no larger than the data (rounded up to a power of two, at least 1 KiB).
   */
  compress(data: Uint8Array, level: number): Uint8Array {
    return this.guard(`compression of ${data.length} bytes`, () => {
      const x = this.x;
      const bound = x.compressBound(data.length) >>> 0;
      if (bound < data.length) wasmError(`${data.length} bytes is too large to compress`);
      this.reserve(data.length, bound);
      const { src, dst } = this.areas;
      new Uint8Array(x.memory.buffer, src, data.length).set(data);
      const result = x.compress(dst, bound, src, data.length, level);
      if (result < 0) wasmError(`ZSTD_compress failed on ${data.length} bytes at level ${level}`);
      return new Uint8Array(x.memory.buffer, dst, result).slice();
    });
  }

  /** The bytes of one zstd frame, at most `expectedLength` of them (the caller checks the frame and the length). */
  decompress(frame: Uint8Array, expectedLength: number): Uint8Array {
    return this.guard(`decompression of ${frame.length} bytes`, () => {
      const x = this.x;
      this.reserve(frame.length, expectedLength);
      const { src, dst } = this.areas;
      new Uint8Array(x.memory.buffer, src, frame.length).set(frame);
      const result = x.decompress(dst, expectedLength, src, frame.length);
      if (result < 0) wasmError(`ZSTD_decompress failed on a ${frame.length}-byte frame`);
      return new Uint8Array(x.memory.buffer, dst, result).slice();
    });
  }

  /** Runs `work`; after a trap the instance is made afresh for the next call. */
  private guard<T>(what: string, work: () => T): T {
    try {
      return work();
    } catch (error) {
      if (this.broken || !(error instanceof SquashfsError)) this.x = this.instantiate();
      if (error instanceof SquashfsError) throw error;
      throw new SquashfsError('CODEC_ERROR', `zstd (wasm): ${what} failed: ${(error as Error).message}`, { cause: error });
    }
  }

  /** Makes the input and output areas at least this large (at least 1 byte each). */
  private reserve(input: number, output: number): void {
    if (!this.areas.reserve(input, output)) {
      this.broken = true;
      wasmError(`out of memory for ${input} + ${output} bytes`);
    }
  }
}

/** Instantiates zstd.wasm from a compiled module (synchronous: no code generation, allowed in workerd). */
export function instantiateZstdWasm(module: WebAssembly.Module): ZstdWasm {
  checkCompiled(module, 'zstd', 'zstd.wasm');
  return new ZstdWasm(module);
}

/** The Node calls that finding the module's file takes (passed in: this file imports nothing from Node). */
export type ZstdWasmLocator = WasmLocator;

/**
 * The module's file: the package's own copy beside `from` (a file: URL of
 * this code; in the built package dist/zstd.wasm, beside every bundle), else
 * the file of an installed `@foxglove/wasm-zstd` (running from the sources,
 * where it is a dev dependency), resolved from `from` or else (a bundle
 * copied elsewhere) from the working directory.
 */
export function zstdWasmPath(node: ZstdWasmLocator, from: string): string {
  return locateWasm(node, from, BUILT_WASM_FILE, `${ZSTD_WASM_PACKAGE}/dist/${ZSTD_WASM_FILE}`);
}

/**
 * Node only: reads the zstd module (the package's dist/zstd.wasm; see
 * zstdWasmPath) and compiles it, once per thread. The result can be passed
 * to `createZstdCodec({ module })` or posted to worker threads. Elsewhere it
 * rejects with UNSUPPORTED_COMPRESSOR.
 */
export const loadZstdWasmModule = nodeModuleLoader(
  (node) => zstdWasmPath(node, import.meta.url),
  (cause) => new SquashfsError(
    'UNSUPPORTED_COMPRESSOR',
    `zstd compression needs the package's ${BUILT_WASM_FILE}: pass it as { module } (a WebAssembly.Module; in a Worker, the package's workerd entry imports it), or run on Node (${(cause as Error).message})`,
    { cause },
  ),
);
