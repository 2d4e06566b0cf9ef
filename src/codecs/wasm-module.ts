import { SquashfsError } from '../errors.js';
import { nodeBuiltin, nodeWasmLocator, type WasmLocator } from './node-builtin.js';

/**
 * Throws (through `fail`) unless a WebAssembly module has exactly the
 * imports given ("module.name:kind") and every export named in `exports`
 * (by meaning: 'memory' a memory, anything else a function). `what` names
 * the build expected, for the message.
 */
export function checkModuleShape(
  module: WebAssembly.Module, imports: readonly string[], exports: Readonly<Record<string, string>>, what: string, fail: (message: string) => never,
): void {
  const found = WebAssembly.Module.imports(module).map((i) => `${i.module}.${i.name}:${i.kind}`).sort();
  if (found.join(',') !== [...imports].sort().join(',')) fail(`the WebAssembly module is not ${what} (imports ${found.join(', ') || 'none'})`);
  const kinds = new Map(WebAssembly.Module.exports(module).map((e) => [e.name, e.kind]));
  for (const [meaning, name] of Object.entries(exports)) {
    const kind = kinds.get(name);
    const want = meaning === 'memory' ? 'memory' : 'function';
    if (kind !== want) fail(`the WebAssembly module is not ${what} (export "${name}" for ${meaning} is ${kind ?? 'missing'})`);
  }
}

type Fn = (...args: number[]) => number;

/**
 * An instance of `module`; a module that will not instantiate is a
 * CODEC_ERROR of `codec` (e.g. "zstd (wasm)").
 */
export function instantiateModule(module: WebAssembly.Module, imports: WebAssembly.Imports, codec: string): WebAssembly.Instance {
  try {
    return new WebAssembly.Instance(module, imports);
  } catch (cause) {
    throw new SquashfsError('CODEC_ERROR', `${codec}: cannot instantiate: ${(cause as Error).message}`, { cause });
  }
}

/**
 * An instance's exports by what a driver calls them (`names`: meaning to
 * export name), each function checked to take `arity[meaning]` arguments,
 * else `fail` (naming `build`, the build expected).
 */
export function bindExports<T>(
  instance: WebAssembly.Instance, names: Readonly<Record<string, string>>, arity: Readonly<Record<string, number>>, build: string, fail: (message: string) => never,
): T {
  const raw = instance.exports as Record<string, unknown>;
  const bound = Object.fromEntries(Object.entries(names).map(([meaning, name]) => [meaning, raw[name]]));
  for (const [meaning, count] of Object.entries(arity)) {
    const fn = bound[meaning] as Fn;
    if (fn.length !== count) fail(`export for ${meaning} takes ${fn.length} arguments, expected ${count}: not ${build}`);
  }
  return bound as T;
}

/**
 * Emscripten's `emscripten_resize_heap` for a module built with memory
 * growth: grows `memory()` to at least `requested` bytes, and by 20% at
 * least (at most 96 MiB more) to limit the number of grows, up to
 * `maxHeap`; 1 when grown, 0 when not.
 */
export function resizeHeap(memory: () => WebAssembly.Memory, maxHeap: number): (requested: number) => number {
  return (requested) => {
    requested >>>= 0;
    const current = memory().buffer.byteLength;
    if (requested > maxHeap) return 0;
    for (const extra of [0.2, 0.1, 0.05, 0]) {
      const target = Math.min(maxHeap, Math.max(requested, Math.min(current * (1 + extra), requested + 96 * 2 ** 20)));
      try {
        memory().grow(Math.ceil((target - current) / PAGE));
        return 1;
      } catch {
        // try a smaller step
      }
    }
    return 0;
  };
}

const PAGE = 65536;

/**
 * A call's input and output areas in a module's heap, kept between calls
 * and made anew (freed, then allocated) when one needs more.
 */
export class HeapAreas {
  src = 0;
  dst = 0;
  private srcCapacity = 0;
  private dstCapacity = 0;

  constructor(private readonly heap: { malloc: Fn; free: Fn }) {}

  /** Makes them at least this large (1 byte each at least); false when the heap is out of memory. */
  reserve(input: number, output: number): boolean {
    const { malloc, free } = this.heap;
    if (input > this.srcCapacity || this.src === 0) {
      if (this.src !== 0) free(this.src);
      this.srcCapacity = Math.max(input, 1);
      this.src = malloc(this.srcCapacity) >>> 0;
    }
    if (output > this.dstCapacity || this.dst === 0) {
      if (this.dst !== 0) free(this.dst);
      this.dstCapacity = Math.max(output, 1);
      this.dst = malloc(this.dstCapacity) >>> 0;
    }
    return this.src !== 0 && this.dst !== 0;
  }
}

/** What `instantiateZstdWasm` and its like take: a compiled module, else INVALID_OPTION saying which file to import. */
export function checkCompiled(module: unknown, codec: string, file: string): asserts module is WebAssembly.Module {
  if (!(module instanceof WebAssembly.Module)) {
    throw new SquashfsError('INVALID_OPTION', `${codec}: \`module\` must be a WebAssembly.Module (in a Worker, import ${file} as a module)`);
  }
}

/**
 * Node only: a loader that reads a module's file (`locate` finds it) and
 * compiles it, once per thread; a failure is not kept (the next call tries
 * again) and is thrown as `failure(cause)` makes it.
 */
export function nodeModuleLoader(locate: (node: WasmLocator) => string, failure: (cause: unknown) => Error): () => Promise<WebAssembly.Module> {
  let loading: Promise<WebAssembly.Module> | undefined;
  return () => {
    loading ??= (async () => {
      try {
        const { readFile } = await nodeBuiltin<typeof import('node:fs/promises')>('fs/promises');
        return await WebAssembly.compile(await readFile(locate(await nodeWasmLocator())));
      } catch (cause) {
        loading = undefined;
        throw failure(cause);
      }
    })();
    return loading;
  };
}
