interface NodeProcess {
  versions?: { node?: string };
  cwd?: () => string;
  getBuiltinModule?: (id: string) => unknown;
}

/** The working directory on Node; undefined elsewhere. */
export function nodeCwd(): string | undefined {
  return (globalThis as { process?: NodeProcess }).process?.cwd?.();
}

/**
 * A Node built-in (`id` without its "node:" prefix), reached at run time
 * only: the core imports nothing from Node, so bundles for Workers and
 * browsers never see these. Rejects elsewhere.
 */
export async function nodeBuiltin<T>(id: string): Promise<T> {
  const proc = (globalThis as { process?: NodeProcess }).process;
  if (!proc?.versions?.node) throw new Error('not running on Node');
  const viaGetter = proc.getBuiltinModule?.(id); // Node >= 20.16
  if (viaGetter) return viaGetter as T;
  const specifier = `node:${id}`; // not a literal, so bundlers leave it alone
  return (await import(/* @vite-ignore */ specifier)) as T;
}

/** The Node calls that finding a WebAssembly file of the package takes. */
export interface WasmLocator {
  createRequire: typeof import('node:module').createRequire;
  join: typeof import('node:path').join;
  dirname: typeof import('node:path').dirname;
  fileURLToPath: typeof import('node:url').fileURLToPath;
  exists: (path: string) => boolean;
  cwd: string | undefined;
}

/** The locator's calls, from Node's built-ins. */
export async function nodeWasmLocator(): Promise<WasmLocator> {
  const { existsSync } = await nodeBuiltin<typeof import('node:fs')>('fs');
  const { dirname, join } = await nodeBuiltin<typeof import('node:path')>('path');
  const { createRequire } = await nodeBuiltin<typeof import('node:module')>('module');
  const { fileURLToPath } = await nodeBuiltin<typeof import('node:url')>('url');
  return { createRequire, join, dirname, fileURLToPath, exists: existsSync, cwd: nodeCwd() };
}

/**
 * A WebAssembly file of this package: `built` beside `from` (a file: URL
 * of this code; the build copies it beside every bundle in dist/), else
 * `specifier` resolved in an installed dev dependency (running from the
 * sources), from `from` or else (a bundle copied elsewhere) from the
 * working directory.
 */
export function locateWasm(node: WasmLocator, from: string, built: string, specifier: string): string {
  const beside = node.join(node.dirname(node.fileURLToPath(from)), built);
  if (node.exists(beside)) return beside;
  try {
    return node.createRequire(from).resolve(specifier);
  } catch (error) {
    if (!node.cwd) throw new Error(`no ${beside}, and ${specifier} cannot be found`, { cause: error });
    try {
      return node.createRequire(node.join(node.cwd, 'index.js')).resolve(specifier);
    } catch (cause) {
      throw new Error(`no ${beside}, and ${specifier} cannot be found`, { cause });
    }
  }
}
