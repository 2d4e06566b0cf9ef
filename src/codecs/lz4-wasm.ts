import { SquashfsError } from '../errors.js';
import { locateWasm, nodeBuiltin, nodeWasmLocator, type WasmLocator } from './node-builtin.js';
import { checkModuleShape } from './wasm-module.js';

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
  private src = 0;
  private srcCapacity = 0;
  private dst = 0;
  private dstCapacity = 0;
  /** liblz4's version, e.g. 10904 for 1.9.4. */
  readonly version: number;

  constructor(private readonly module: WebAssembly.Module) {
    checkModuleShape(module, [], EXPORTS, 'lz4.wasm (liblz4)', wasmError);
    this.x = this.instantiate();
    this.version = this.x.versionNumber();
    if (this.version < 10900 || this.version >= 20000) wasmError(`self-test failed: LZ4_versionNumber() is ${this.version}`);
  }

  private instantiate(): Exports {
    let instance: WebAssembly.Instance;
    try {
      instance = new WebAssembly.Instance(this.module, {});
    } catch (cause) {
      throw new SquashfsError('CODEC_ERROR', `lz4 (wasm): cannot instantiate: ${(cause as Error).message}`, { cause });
    }
    const raw = instance.exports as Record<string, unknown>;
    const x = Object.fromEntries(Object.entries(EXPORTS).map(([meaning, name]) => [meaning, raw[name]])) as unknown as Exports;
    for (const [meaning, arity] of Object.entries(ARITY)) {
      const fn = (x as unknown as Record<string, Fn>)[meaning];
      if (fn.length !== arity) wasmError(`export for ${meaning} takes ${fn.length} arguments, expected ${arity}: not our lz4.wasm build`);
    }
    x.initialize();
    this.state = x.malloc(x.sizeofState()) >>> 0;
    this.stateHC = x.malloc(x.sizeofStateHC()) >>> 0;
    if (!this.state || !this.stateHC) wasmError('out of memory for the compression states');
    this.src = this.srcCapacity = this.dst = this.dstCapacity = 0;
    return x;
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
      this.x = this.instantiate();
      if (error instanceof SquashfsError) throw error;
      throw new SquashfsError('CODEC_ERROR', `lz4 (wasm): compression of ${data.length} bytes failed: ${(error as Error).message}`, { cause: error });
    }
  }

  private encodeOnce(data: Uint8Array, level: number): Uint8Array {
    const x = this.x;
    if (data.length === 0) return data;
    // Room for one byte less than the block, as mksquashfs gives it: 0 back means it does not fit.
    const capacity = data.length - 1;
    this.reserve(data.length, capacity);
    new Uint8Array(x.memory.buffer, this.src, data.length).set(data);
    const length = level < HC_MIN_LEVEL
      ? x.compressFast(this.state, this.src, this.dst, data.length, capacity, 1)
      : x.compressHC(this.stateHC, this.src, this.dst, data.length, capacity, level);
    if (length <= 0) return data;
    return new Uint8Array(x.memory.buffer, this.dst, length).slice();
  }

  /** Makes the input and output areas at least this large. */
  private reserve(input: number, output: number): void {
    const x = this.x;
    if (input > this.srcCapacity || this.src === 0) {
      if (this.src !== 0) x.free(this.src);
      this.srcCapacity = Math.max(input, 1);
      this.src = x.malloc(this.srcCapacity) >>> 0;
    }
    if (output > this.dstCapacity || this.dst === 0) {
      if (this.dst !== 0) x.free(this.dst);
      this.dstCapacity = Math.max(output, 1);
      this.dst = x.malloc(this.dstCapacity) >>> 0;
    }
    if (this.src === 0 || this.dst === 0) wasmError(`out of memory for ${input} + ${output} bytes`);
  }
}

/** Instantiates lz4.wasm from a compiled module (synchronous: no code generation, allowed in workerd). */
export function instantiateLz4Wasm(module: WebAssembly.Module): Lz4Wasm {
  if (!(module instanceof WebAssembly.Module)) {
    throw new SquashfsError('INVALID_OPTION', 'lz4: `module` must be a WebAssembly.Module (in a Worker, import the package\'s lz4.wasm as a module)');
  }
  return new Lz4Wasm(module);
}

/** The module's file: the package's dist/lz4.wasm, else (running from the sources) scripts/lz4-wasm's. */
export function lz4WasmPath(node: WasmLocator, from: string): string {
  return locateWasm(node, from, BUILT_WASM_FILE, LZ4_WASM_SOURCE);
}

let nodeModule: Promise<WebAssembly.Module> | undefined;

/**
 * Node only: reads lz4.wasm (see lz4WasmPath) and compiles it, once per
 * thread. The result can be passed to `createLz4Codec({ module })` or
 * posted to worker threads. Elsewhere it rejects with
 * UNSUPPORTED_COMPRESSOR (the pure-JS encoder of lz4Codec() still works).
 */
export function loadLz4WasmModule(): Promise<WebAssembly.Module> {
  nodeModule ??= (async () => {
    try {
      const { readFile } = await nodeBuiltin<typeof import('node:fs/promises')>('fs/promises');
      return await WebAssembly.compile(await readFile(lz4WasmPath(await nodeWasmLocator(), import.meta.url)));
    } catch (cause) {
      nodeModule = undefined;
      throw new SquashfsError(
        'UNSUPPORTED_COMPRESSOR',
        `lz4's WebAssembly encoder needs the package's ${BUILT_WASM_FILE}: pass it as { module } (a WebAssembly.Module), or run on Node (${(cause as Error).message})`,
        { cause },
      );
    }
  })();
  return nodeModule;
}
