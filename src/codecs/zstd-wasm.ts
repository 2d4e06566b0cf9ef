import { SquashfsError } from '../errors.js';

/**
 * A small driver for the zstd build shipped by `@bokuweb/zstd-wasm` (its
 * `zstd.wasm`: the reference C library, compiled by Emscripten). Its own JS
 * glue only instantiates from bytes or a URL, which workerd refuses, so the
 * module is instantiated here with `new WebAssembly.Instance(module, imports)`:
 * it works from a precompiled `WebAssembly.Module` (a Worker's `.wasm`
 * import) as well as from one compiled on Node.
 *
 * The build's import and export names are minified; the table below maps
 * them for the pinned package version (0.0.27, zstd >= 1.5.6; the mapping is
 * the one in the package's `dist/common/zstd.js`). `instantiateZstdWasm`
 * checks the shape of the module and runs a self-test, so another build fails
 * loudly instead of misbehaving.
 */

/** The npm package whose `zstd.wasm` this driver runs (pinned exactly in package.json). */
export const ZSTD_WASM_PACKAGE = '@bokuweb/zstd-wasm';

/** What each (minified) export of the build is. */
const EXPORTS = {
  memory: 'f',
  callCtors: 'g', // __wasm_call_ctors
  isError: 'h', // ZSTD_isError(code)
  compressBound: 'i', // ZSTD_compressBound(srcSize)
  createCCtx: 'j', // ZSTD_createCCtx()
  freeCCtx: 'k', // ZSTD_freeCCtx(cctx)
  compressUsingDict: 'l', // ZSTD_compress_usingDict(cctx, dst, dstCap, src, srcSize, dict, dictSize, level)
  malloc: 's',
  free: 't',
} as const;

const ARITY: Record<Exclude<keyof typeof EXPORTS, 'memory'>, number> = {
  callCtors: 0,
  isError: 1,
  compressBound: 1,
  createCCtx: 0,
  freeCCtx: 1,
  compressUsingDict: 8,
  malloc: 1,
  free: 1,
};

/** The imports the build expects, all in module "a": a proc_exit, b keepalive_clear, c abort, d setitimer, e resize_heap. */
const IMPORT_NAMES = ['a', 'b', 'c', 'd', 'e'];

const MAX_HEAP = 2 ** 31; // the build's getHeapMax()
const PAGE = 65536;

type Fn = (...args: number[]) => number;

interface Exports {
  memory: WebAssembly.Memory;
  callCtors: Fn;
  isError: Fn;
  compressBound: Fn;
  createCCtx: Fn;
  freeCCtx: Fn;
  compressUsingDict: Fn;
  malloc: Fn;
  free: Fn;
}

function wasmError(message: string): never {
  throw new SquashfsError('CODEC_ERROR', `zstd (wasm): ${message}`);
}

/** Throws unless `module` has the imports and exports of the pinned zstd.wasm build. */
function checkModuleShape(module: WebAssembly.Module): void {
  const imports = WebAssembly.Module.imports(module);
  const importNames = imports.map((i) => `${i.module}.${i.name}:${i.kind}`).sort();
  const expected = IMPORT_NAMES.map((name) => `a.${name}:function`);
  if (importNames.join(',') !== expected.join(',')) {
    wasmError(`the WebAssembly module is not ${ZSTD_WASM_PACKAGE}'s zstd.wasm (imports ${importNames.join(', ') || 'none'})`);
  }
  const exports = new Map(WebAssembly.Module.exports(module).map((e) => [e.name, e.kind]));
  for (const [meaning, name] of Object.entries(EXPORTS)) {
    const kind = exports.get(name);
    const want = meaning === 'memory' ? 'memory' : 'function';
    if (kind !== want) wasmError(`the WebAssembly module is not ${ZSTD_WASM_PACKAGE}'s zstd.wasm (export "${name}" for ${meaning} is ${kind ?? 'missing'})`);
  }
}

/**
 * One instance of zstd.wasm with a reusable compression context. Not
 * reentrant (nothing here yields), one per thread.
 */
export class ZstdWasm {
  private x: Exports;
  private cctx = 0;
  /** Set when the module called abort() or exit(): its state is not to be trusted any more. */
  private broken = false;

  constructor(private readonly module: WebAssembly.Module) {
    checkModuleShape(module);
    this.x = this.instantiate();
    this.selfTest();
  }

  private instantiate(): Exports {
    let memory: WebAssembly.Memory | undefined;
    const resizeHeap = (requested: number): number => {
      requested >>>= 0;
      const current = memory!.buffer.byteLength;
      if (requested > MAX_HEAP) return 0;
      // Like Emscripten: grow by at least 20% (capped at +96 MiB) to limit the number of grows.
      for (const extra of [0.2, 0.1, 0.05, 0]) {
        const target = Math.min(MAX_HEAP, Math.max(requested, Math.min(current * (1 + extra), requested + 96 * 2 ** 20)));
        const pages = Math.ceil((target - current) / PAGE);
        try {
          memory!.grow(pages);
          return 1;
        } catch {
          // try a smaller step
        }
      }
      return 0;
    };
    const imports = {
      a: {
        a: (code: number) => {
          this.broken = true;
          wasmError(`exit(${code})`);
        },
        b: () => undefined,
        c: () => {
          this.broken = true;
          wasmError('abort()');
        },
        d: () => 0,
        e: resizeHeap,
      },
    };
    let instance: WebAssembly.Instance;
    try {
      instance = new WebAssembly.Instance(this.module, imports);
    } catch (cause) {
      throw new SquashfsError('CODEC_ERROR', `zstd (wasm): cannot instantiate: ${(cause as Error).message}`, { cause });
    }
    const raw = instance.exports as Record<string, unknown>;
    const x = Object.fromEntries(Object.entries(EXPORTS).map(([meaning, name]) => [meaning, raw[name]])) as unknown as Exports;
    for (const [meaning, arity] of Object.entries(ARITY)) {
      const fn = (x as unknown as Record<string, Fn>)[meaning];
      if (fn.length !== arity) wasmError(`export for ${meaning} takes ${fn.length} arguments, expected ${arity}: not the pinned zstd.wasm build`);
    }
    memory = x.memory;
    this.broken = false;
    x.callCtors();
    this.cctx = x.createCCtx();
    if (this.cctx === 0) wasmError('cannot allocate a compression context');
    return x;
  }

  /** Compresses a tiny known input both ways a wrong build would get wrong. */
  private selfTest(): void {
    const sample = new TextEncoder().encode('squashfs zstd self-test, squashfs zstd self-test, squashfs zstd self-test');
    const out = this.compress(sample, 3);
    const magic = out.length >= 4 ? (out[0] | (out[1] << 8) | (out[2] << 16) | (out[3] << 24)) >>> 0 : 0;
    if (magic !== 0xfd2fb528 || out.length >= sample.length) wasmError('self-test failed: the module does not produce zstd frames');
    if (!this.x.isError(-1) || this.x.isError(0)) wasmError('self-test failed: ZSTD_isError misbehaves');
  }

  /**
   * One zstd frame for `data` at `level`, compressed in one shot with the
   * source size known: the frame declares its content size, and its window
   * is no larger than the data (rounded up to a power of two, at least 1 KiB).
   */
  compress(data: Uint8Array, level: number): Uint8Array {
    try {
      return this.compressOnce(data, level);
    } catch (error) {
      // A trap or an abort() can leave the instance inconsistent: start afresh for the next block.
      const trapped = this.broken || !(error instanceof SquashfsError);
      if (trapped) this.x = this.instantiate();
      if (error instanceof SquashfsError) throw error;
      throw new SquashfsError('CODEC_ERROR', `zstd (wasm): compression of ${data.length} bytes failed: ${(error as Error).message}`, { cause: error });
    }
  }

  private compressOnce(data: Uint8Array, level: number): Uint8Array {
    const x = this.x;
    const bound = x.compressBound(data.length) >>> 0;
    if (x.isError(bound)) wasmError(`${data.length} bytes is too large to compress`);
    const src = x.malloc(Math.max(data.length, 1)) >>> 0;
    const dst = src === 0 ? 0 : x.malloc(bound) >>> 0;
    try {
      if (src === 0 || dst === 0) wasmError(`out of memory for a ${data.length}-byte block`);
      new Uint8Array(x.memory.buffer, src, data.length).set(data);
      const result = x.compressUsingDict(this.cctx, dst, bound, src, data.length, 0, 0, level);
      if (x.isError(result)) wasmError(`ZSTD_compress failed with error code ${-(result | 0)}`);
      return new Uint8Array(x.memory.buffer, dst, result >>> 0).slice();
    } finally {
      // After an abort() the instance is dropped whole; freeing into it could fail again.
      if (!this.broken) {
        if (dst !== 0) x.free(dst);
        if (src !== 0) x.free(src);
      }
    }
  }
}

/** Instantiates zstd.wasm from a compiled module (synchronous: no code generation, allowed in workerd). */
export function instantiateZstdWasm(module: WebAssembly.Module): ZstdWasm {
  if (!(module instanceof WebAssembly.Module)) {
    throw new SquashfsError('INVALID_OPTION', 'zstd: `module` must be a WebAssembly.Module (in a Worker, import zstd.wasm as a module)');
  }
  return new ZstdWasm(module);
}

interface NodeProcess {
  versions?: { node?: string };
  cwd?: () => string;
  getBuiltinModule?: (id: string) => unknown;
}

/**
 * A Node built-in (`id` without its "node:" prefix), reached at run time
 * only: the core imports nothing from Node, so bundles for Workers and
 * browsers never see these.
 */
async function nodeBuiltin<T>(id: string): Promise<T> {
  const proc = (globalThis as { process?: NodeProcess }).process;
  if (!proc?.versions?.node) throw new Error('not running on Node');
  const viaGetter = proc.getBuiltinModule?.(id); // Node >= 20.16
  if (viaGetter) return viaGetter as T;
  const specifier = `node:${id}`; // not a literal, so bundlers leave it alone
  return (await import(/* @vite-ignore */ specifier)) as T;
}

/** Where `@bokuweb/zstd-wasm` is installed: beside this code, else (a bundle copied elsewhere) under the working directory. */
async function packageEntry(): Promise<string> {
  const { createRequire } = await nodeBuiltin<typeof import('node:module')>('module');
  const { join } = await nodeBuiltin<typeof import('node:path')>('path');
  try {
    return createRequire(import.meta.url).resolve(ZSTD_WASM_PACKAGE);
  } catch (error) {
    const cwd = (globalThis as { process?: NodeProcess }).process?.cwd?.();
    if (!cwd) throw error;
    return createRequire(join(cwd, 'index.js')).resolve(ZSTD_WASM_PACKAGE);
  }
}

let nodeModule: Promise<WebAssembly.Module> | undefined;

/**
 * Node only: reads `zstd.wasm` from the installed `@bokuweb/zstd-wasm`
 * package and compiles it, once per thread. The result can be passed to
 * `createZstdCodec({ module })` or posted to worker threads.
 */
export function loadZstdWasmModule(): Promise<WebAssembly.Module> {
  nodeModule ??= (async () => {
    try {
      const { readFile } = await nodeBuiltin<typeof import('node:fs/promises')>('fs/promises');
      const { dirname, join } = await nodeBuiltin<typeof import('node:path')>('path');
      // The package's "exports" hides its files; its entry point sits beside zstd.wasm.
      const file = join(dirname(await packageEntry()), 'zstd.wasm');
      return await WebAssembly.compile(await readFile(file));
    } catch (cause) {
      nodeModule = undefined;
      throw new SquashfsError(
        'UNSUPPORTED_COMPRESSOR',
        `zstd compression needs ${ZSTD_WASM_PACKAGE}'s zstd.wasm: pass it as { module } (a WebAssembly.Module), or run on Node with the package installed (${(cause as Error).message})`,
        { cause },
      );
    }
  })();
  return nodeModule;
}
