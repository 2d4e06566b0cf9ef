import { SquashfsError } from '../errors.js';
import { locateWasm, type WasmLocator } from './node-builtin.js';
import { bindExports, checkCompiled, checkModuleShape, HeapAreas, instantiateModule, nodeModuleLoader } from './wasm-module.js';

/**
 * A small driver for our liblz4 build (scripts/lz4-wasm: lz4.c and lz4hc.c
 * of lz4 1.9.4 from Debian's source package, the library mksquashfs links,
 * built by Emscripten at -O3 with LTO; build.sh there makes it, README.md
 * there says how and how fast). The build copies it to dist/lz4.wasm. It
 * has no imports, so `new WebAssembly.Instance(module, {})` instantiates it
 * from any compiled module (a Worker's `.wasm` import included).
 *
 * Blocks are compressed as squashfs-tools does: plain lz4
 * (`LZ4_compress_fast_extState`, acceleration 1, what LZ4_compress_default
 * does) or high compression at a level (`LZ4_compress_HC_extStateHC`), each
 * with its state allocated once per instance.
 */

/** The module in this repository, for runs from the sources (the build copies it beside the bundles). */
const LZ4_WASM_SOURCE = '../../scripts/lz4-wasm/lz4.wasm';
/** This package's copy of it, which the build puts beside the bundles (`dist/lz4.wasm`). */
const BUILT_WASM_FILE = 'lz4.wasm';

/** The exports the driver uses, by what it calls them. */
const EXPORTS = {
  memory: 'memory',
  initialize: '_initialize',
  versionNumber: 'LZ4_versionNumber', // ()
  sizeofState: 'LZ4_sizeofState', // ()
  sizeofStateHC: 'LZ4_sizeofStateHC', // ()
  compressFast: 'LZ4_compress_fast_extState', // (state, src, dst, srcSize, dstCapacity, acceleration)
  compressHC: 'LZ4_compress_HC_extStateHC', // (state, src, dst, srcSize, dstCapacity, level)
  malloc: 'malloc',
  free: 'free',
} as const;

const ARITY: Record<Exclude<keyof typeof EXPORTS, 'memory'>, number> = {
  initialize: 0,
  versionNumber: 0,
  sizeofState: 0,
  sizeofStateHC: 0,
  compressFast: 6,
  compressHC: 6,
  malloc: 1,
  free: 1,
};

/** lz4's levels below this are the fast compressor (as lz4-encoder.ts and the lz4 tool number them). */
const HC_MIN_LEVEL = 3;

type Fn = (...args: number[]) => number;

interface Exports {
  memory: WebAssembly.Memory;
  initialize: Fn;
  versionNumber: Fn;
  sizeofState: Fn;
  sizeofStateHC: Fn;
  compressFast: Fn;
  compressHC: Fn;
  malloc: Fn;
  free: Fn;
}

function wasmError(message: string): never {
  throw new SquashfsError('CODEC_ERROR', `lz4 (wasm): ${message}`);
}

/**
 * One instance of liblz4, with its two compression states and its buffers
 * in its memory, kept between blocks. Not reentrant (nothing here yields),
 * one per thread.
 */
export class Lz4Wasm {
  private x: Exports;
  private state = 0;
  private stateHC = 0;
  private areas: HeapAreas;
  /** liblz4's version, e.g. 10904 for 1.9.4. */
  readonly version: number;

  constructor(private readonly module: WebAssembly.Module) {
    checkModuleShape(module, [], EXPORTS, 'lz4.wasm (liblz4)', wasmError);
    [this.x, this.areas] = this.instantiate();
    this.version = this.x.versionNumber();
    if (this.version < 10900 || this.version >= 20000) wasmError(`self-test failed: LZ4_versionNumber() is ${this.version}`);
  }

  private instantiate(): [Exports, HeapAreas] {
    const instance = instantiateModule(this.module, {}, 'lz4 (wasm)');
    const x = bindExports<Exports>(instance, EXPORTS, ARITY, 'our lz4.wasm build', wasmError);
    x.initialize();
    this.state = x.malloc(x.sizeofState()) >>> 0;
    this.stateHC = x.malloc(x.sizeofStateHC()) >>> 0;
    if (!this.state || !this.stateHC) wasmError('out of memory for the compression states');
    return [x, new HeapAreas(x)];
  }

  /**
   * One lz4 block of `data`: plain at levels 1-2, high compression at that
   * level from 3 to 12. Returns `data` itself when the block would not be
   * smaller (as lz4Codec's encoder does).
   */
  encode(data: Uint8Array, level: number): Uint8Array {
    try {
      return this.encodeOnce(data, level);
    } catch (error) {
      // A trap leaves the instance in an unknown state: start a new one for the next block.
      [this.x, this.areas] = this.instantiate();
      if (error instanceof SquashfsError) throw error;
      throw new SquashfsError('CODEC_ERROR', `lz4 (wasm): compression of ${data.length} bytes failed: ${(error as Error).message}`, { cause: error });
    }
  }

  private encodeOnce(data: Uint8Array, level: number): Uint8Array {
    const { x, areas } = this;
    if (data.length === 0) return data;
    // Room for one byte less than the block, as mksquashfs gives it: 0 back means it does not fit.
    const capacity = data.length - 1;
    if (!areas.reserve(data.length, capacity)) wasmError(`out of memory for ${data.length} + ${capacity} bytes`);
    new Uint8Array(x.memory.buffer, areas.src, data.length).set(data);
    const length = level < HC_MIN_LEVEL
      ? x.compressFast(this.state, areas.src, areas.dst, data.length, capacity, 1)
      : x.compressHC(this.stateHC, areas.src, areas.dst, data.length, capacity, level);
    if (length <= 0) return data;
    return new Uint8Array(x.memory.buffer, areas.dst, length).slice();
  }
}

/** Instantiates lz4.wasm from a compiled module (synchronous: no code generation, allowed in workerd). */
export function instantiateLz4Wasm(module: WebAssembly.Module): Lz4Wasm {
  checkCompiled(module, 'lz4', "the package's lz4.wasm");
  return new Lz4Wasm(module);
}

/** The module's file: the package's dist/lz4.wasm, else (running from the sources) scripts/lz4-wasm's. */
export function lz4WasmPath(node: WasmLocator, from: string): string {
  return locateWasm(node, from, BUILT_WASM_FILE, LZ4_WASM_SOURCE);
}

/**
 * Node only: reads lz4.wasm (see lz4WasmPath) and compiles it, once per
 * thread. The result can be passed to `createLz4Codec({ module })` or
 * posted to worker threads. Elsewhere it rejects with
 * UNSUPPORTED_COMPRESSOR (the pure-JS encoder of lz4Codec() still works).
 */
export const loadLz4WasmModule = nodeModuleLoader(
  (node) => lz4WasmPath(node, import.meta.url),
  (cause) => new SquashfsError(
    'UNSUPPORTED_COMPRESSOR',
    `lz4's WebAssembly encoder needs the package's ${BUILT_WASM_FILE}: pass it as { module } (a WebAssembly.Module), or run on Node (${(cause as Error).message})`,
    { cause },
  ),
);
