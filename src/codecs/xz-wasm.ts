import { SquashfsError } from '../errors.js';
import { locateWasm, type WasmLocator } from './node-builtin.js';
import { bindExports, checkCompiled, checkModuleShape, HeapAreas, instantiateModule, nodeModuleLoader, resizeHeap } from './wasm-module.js';

/**
 * A small driver for our liblzma build (scripts/xz-wasm: xz-utils' liblzma
 * 5.8.1 from Debian's source package, built by Emscripten at -O3 with LTO,
 * the same library mksquashfs links; build.sh there makes it, README.md
 * there says how and how fast). The build copies it to dist/xz.wasm. The
 * module is instantiated here with `new WebAssembly.Instance(module,
 * imports)`, which works from a precompiled `WebAssembly.Module` (a
 * Worker's `.wasm` import) as well as from one compiled on Node.
 *
 * Blocks are compressed with `lzma_stream_buffer_encode`, as squashfs-tools
 * does: one .xz stream with a CRC32 check, LZMA2 behind an optional
 * branch/call/jump filter, the LZMA2 options of an xz preset with the
 * dictionary size set by the caller.
 *
 * The module's shape (its one import and the exports below) is checked
 * and a self-test run, so another build fails loudly instead of
 * misbehaving.
 */

/** The module in this repository, for runs from the sources (the build copies it beside the bundles). */
const XZ_WASM_SOURCE = '../../scripts/xz-wasm/liblzma.wasm';
/** This package's copy of it, which the build puts beside the bundles (`dist/xz.wasm`). */
const BUILT_WASM_FILE = 'xz.wasm';

/** The exports the driver uses, by what it calls them. */
const EXPORTS = {
  memory: 'memory',
  callCtors: '__wasm_call_ctors',
  versionString: 'lzma_version_string', // ()
  streamBufferEncode: 'lzma_stream_buffer_encode', // (filters, check, allocator, in, in_size, out, out_pos, out_size)
  malloc: 'malloc',
  free: 'free',
} as const;

const ARITY: Record<Exclude<keyof typeof EXPORTS, 'memory'>, number> = {
  callCtors: 0,
  versionString: 0,
  streamBufferEncode: 8,
  malloc: 1,
  free: 1,
};

/** The one import the build expects. */
const IMPORTS = ['env.emscripten_resize_heap:function'];

const MAX_HEAP = 256 * 1024 * 1024; // the build's memory maximum

// liblzma's constants (lzma/*.h).
const LZMA_OK = 0;
const LZMA_BUF_ERROR = 10;
const LZMA_CHECK_CRC32 = 1;
const LZMA_FILTER_LZMA2 = 0x21;
const LZMA_MODE_FAST = 1;
const LZMA_MODE_NORMAL = 2;
const LZMA_MF_HC3 = 0x03;
const LZMA_MF_HC4 = 0x04;
const LZMA_MF_BT4 = 0x14;
/** sizeof(lzma_options_lzma) in 5.x on wasm32 is 96; the rest is zeroed room. */
const OPTIONS_BYTES = 128;
/** sizeof(lzma_filter) on wasm32: a u64 id and a pointer, padded to 16. */
const FILTER_BYTES = 16;

/**
 * The LZMA2 settings of xz's presets 0-9 (lzma_lzma_preset: literal
 * context 3, position bits 2; 0-3 fast mode with hash chains, 4-9 normal
 * mode with binary trees), the dictionary aside.
 */
function presetSettings(preset: number): { mode: number; niceLength: number; matchFinder: number; depth: number } {
  if (preset <= 3) {
    return { mode: LZMA_MODE_FAST, matchFinder: preset === 0 ? LZMA_MF_HC3 : LZMA_MF_HC4, niceLength: preset <= 1 ? 128 : 273, depth: [4, 8, 24, 48][preset]! };
  }
  return { mode: LZMA_MODE_NORMAL, matchFinder: LZMA_MF_BT4, niceLength: preset === 4 ? 16 : preset === 5 ? 32 : 64, depth: 0 };
}

type Fn = (...args: number[]) => number;

interface Exports {
  memory: WebAssembly.Memory;
  callCtors: Fn;
  versionString: Fn;
  streamBufferEncode: Fn;
  malloc: Fn;
  free: Fn;
}

function wasmError(message: string): never {
  throw new SquashfsError('CODEC_ERROR', `xz (wasm): ${message}`);
}

/** Throws unless `module` has the imports and exports of our build. */
function checkXzModule(module: WebAssembly.Module): void {
  checkModuleShape(module, IMPORTS, EXPORTS, 'xz.wasm (liblzma)', wasmError);
}

/** One xz block to make: the preset (0-9), the LZMA2 dictionary and an optional BCJ filter id before LZMA2. */
export interface XzEncoding {
  preset: number;
  dictionarySize: number;
  /** A branch/call/jump filter id (0x04 x86 ... 0x0a arm64), or 0 for none. */
  filter: number;
}

/**
 * One instance of liblzma, with its options, filter chain and buffers in
 * its memory, kept between blocks. Not reentrant (nothing here yields), one
 * per thread.
 */
export class XzWasm {
  private x: Exports;
  private options = 0;
  private filters = 0;
  private outPos = 0;
  private areas: HeapAreas;
  /** liblzma's version, e.g. "5.8.1". */
  readonly version: string;

  constructor(private readonly module: WebAssembly.Module) {
    checkXzModule(module);
    [this.x, this.areas] = this.instantiate();
    this.version = this.readVersion();
    if (!/^5\.\d+\.\d+/.test(this.version)) wasmError(`self-test failed: lzma_version_string() is "${this.version}"`);
  }

  private instantiate(): [Exports, HeapAreas] {
    let memory: WebAssembly.Memory | undefined;
    const instance = instantiateModule(this.module, { env: { emscripten_resize_heap: resizeHeap(() => memory!, MAX_HEAP) } }, 'xz (wasm)');
    const x = bindExports<Exports>(instance, EXPORTS, ARITY, 'our liblzma.wasm build', wasmError);
    memory = x.memory;
    x.callCtors();
    this.options = x.malloc(OPTIONS_BYTES) >>> 0;
    this.filters = x.malloc(3 * FILTER_BYTES) >>> 0;
    this.outPos = x.malloc(8) >>> 0;
    if (!this.options || !this.filters || !this.outPos) wasmError('out of memory for the encoder settings');
    return [x, new HeapAreas(x)];
  }

  private readVersion(): string {
    const heap = new Uint8Array(this.x.memory.buffer);
    const at = this.x.versionString() >>> 0;
    let end = at;
    while (end < heap.length && heap[end] !== 0 && end - at < 32) end++;
    return String.fromCharCode(...heap.subarray(at, end));
  }

  /**
   * One .xz stream (CRC32 check) for `data`, or undefined when it would
   * take `capacity` bytes or more (the block is then stored raw).
   */
  encode(data: Uint8Array, encoding: XzEncoding, capacity: number): Uint8Array | undefined {
    try {
      return this.encodeOnce(data, encoding, capacity);
    } catch (error) {
      // A trap leaves the instance in an unknown state: start a new one for the next block.
      [this.x, this.areas] = this.instantiate();
      if (error instanceof SquashfsError) throw error;
      throw new SquashfsError('CODEC_ERROR', `xz (wasm): compression of ${data.length} bytes failed: ${(error as Error).message}`, { cause: error });
    }
  }

  private encodeOnce(data: Uint8Array, encoding: XzEncoding, capacity: number): Uint8Array | undefined {
    const { x, areas } = this;
    if (!areas.reserve(data.length, capacity)) wasmError(`out of memory for ${data.length} + ${capacity} bytes`);
    const settings = presetSettings(encoding.preset);
    let words = new Uint32Array(x.memory.buffer);
    const o = this.options >>> 2;
    words.fill(0, o, o + OPTIONS_BYTES / 4);
    // lzma_options_lzma: dict_size, preset_dict, preset_dict_size, lc, lp, pb, mode, nice_len, mf, depth.
    words[o] = encoding.dictionarySize;
    words[o + 3] = 3;
    words[o + 4] = 0;
    words[o + 5] = 2;
    words[o + 6] = settings.mode;
    words[o + 7] = settings.niceLength;
    words[o + 8] = settings.matchFinder;
    words[o + 9] = settings.depth;
    // lzma_filter[]: { u64 id, void *options }, ended by LZMA_VLI_UNKNOWN.
    let f = this.filters >>> 2;
    words.fill(0, f, f + (3 * FILTER_BYTES) / 4);
    if (encoding.filter !== 0) {
      words[f] = encoding.filter;
      f += FILTER_BYTES / 4;
    }
    words[f] = LZMA_FILTER_LZMA2;
    words[f + 2] = this.options;
    f += FILTER_BYTES / 4;
    words[f] = 0xffffffff;
    words[f + 1] = 0xffffffff;
    words[this.outPos >>> 2] = 0;
    new Uint8Array(x.memory.buffer, areas.src, data.length).set(data);
    const result = x.streamBufferEncode(this.filters, LZMA_CHECK_CRC32, 0, areas.src, data.length, areas.dst, this.outPos, capacity);
    if (result === LZMA_BUF_ERROR) return undefined;
    if (result !== LZMA_OK) wasmError(`lzma_stream_buffer_encode returned ${result} on ${data.length} bytes (preset ${encoding.preset}, dictionary ${encoding.dictionarySize}, filter 0x${encoding.filter.toString(16)})`);
    words = new Uint32Array(x.memory.buffer);
    const length = words[this.outPos >>> 2]!;
    return new Uint8Array(x.memory.buffer, areas.dst, length).slice();
  }
}

/** Instantiates xz.wasm from a compiled module (synchronous: no code generation, allowed in workerd). */
export function instantiateXzWasm(module: WebAssembly.Module): XzWasm {
  checkCompiled(module, 'xz', "the package's xz.wasm");
  return new XzWasm(module);
}

/** The module's file: the package's dist/xz.wasm, else (running from the sources) scripts/xz-wasm's. */
export function xzWasmPath(node: WasmLocator, from: string): string {
  return locateWasm(node, from, BUILT_WASM_FILE, XZ_WASM_SOURCE);
}

/**
 * Node only: reads xz.wasm (see xzWasmPath) and compiles it, once per
 * thread. The result can be passed to `createXzCodec({ module })` or posted
 * to worker threads. Elsewhere it rejects with UNSUPPORTED_COMPRESSOR.
 */
export const loadXzWasmModule = nodeModuleLoader(
  (node) => xzWasmPath(node, import.meta.url),
  (cause) => new SquashfsError(
    'UNSUPPORTED_COMPRESSOR',
    `xz compression needs the package's ${BUILT_WASM_FILE}: pass it as { module } (a WebAssembly.Module; in a Worker, import it as a module), or run on Node (${(cause as Error).message})`,
    { cause },
  ),
);
