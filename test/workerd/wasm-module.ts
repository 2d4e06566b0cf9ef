/**
 * A precompiled WebAssembly module handed to the Worker as a module of its
 * own (Miniflare's CompiledWasm, Wrangler's `import m from './x.wasm'`):
 * workerd refuses to compile WebAssembly from bytes at run time. Shared by
 * the workerd test's Workers (worker.ts, backup-worker.ts).
 */

/** Where the zstd encoder's module is: the test hands Miniflare a CompiledWasm module at this path. */
export const ZSTD_WASM_MODULE = './zstd.wasm';

/** The module at `specifier`, or undefined while the Worker has none there. */
export async function loadWasmModule(specifier: string): Promise<WebAssembly.Module | undefined> {
  try {
    // A variable specifier: esbuild leaves the import to workerd.
    const namespace = (await import(/* @vite-ignore */ specifier)) as { default: WebAssembly.Module };
    return namespace.default;
  } catch (error) {
    if (/No such module/.test((error as Error).message)) return undefined;
    throw error;
  }
}
