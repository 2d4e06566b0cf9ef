/**
 * Bundles a Worker the way `wrangler deploy` does (workers-sdk,
 * packages/wrangler/src/deployment-bundle: bundle.ts, rules.ts,
 * module-collection.ts): esbuild, one ES module, target es2022, the
 * conditions workerd, worker, browser, and Wrangler's default module rules.
 * Of those, CompiledWasm is the one that matters here: an import matching
 * the globs `**\/*.wasm` or `**\/*.wasm?module` (as glob-to-regexp makes
 * them: a "/" somewhere before the name) is not bundled; the file is found
 * (a bare specifier through Node's resolution, else beside the importer),
 * named `./<sha1 of its bytes>-<basename>`, kept as an external import, and
 * uploaded beside the bundle as a module of its own, which workerd hands to
 * the import as a compiled WebAssembly.Module.
 *
 * The packages are resolved from `nodeModules` (a node_modules holding a
 * `squashfs-ts` that links to this repository, so the package's own
 * `exports` pick the entry, as an install would), then the repository's.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { loadEsbuild } from './child.js';

export interface WranglerModule {
  /** The module's name, as the bundle imports it (without the leading "./"). */
  name: string;
  type: 'CompiledWasm';
  /** The file it was read from. */
  file: string;
  contents: Uint8Array;
}

export interface WranglerBundle {
  code: string;
  /** The additional modules, to upload (hand to Miniflare) beside the bundle. */
  modules: WranglerModule[];
  /** Input files, as esbuild's metafile names them. */
  inputs: string[];
}

export interface WranglerBundleOptions {
  /** Where the bundle is written. */
  outDir: string;
  /** node_modules directories to resolve packages from, before the repository's. */
  nodeModules?: string[];
  /**
   * For a Worker run with nodejs_compat whose own dependencies (memfs) ask
   * for Node's modules: the node platform and a require for CommonJS, in
   * place of Wrangler's unenv-based nodejs_compat plugin.
   */
  nodejsCompat?: boolean;
}

/** Wrangler's default CompiledWasm globs, `**\/*.wasm` and `**\/*.wasm?module`, as glob-to-regexp turns them into expressions. */
const COMPILED_WASM = [/^.*.*\/.*\.wasm$/, /^.*.*\/.*\.wasm\?module$/];

type OnResolveArgs = { path: string; resolveDir: string };
type PluginBuild = { onResolve(options: { filter: RegExp }, callback: (args: OnResolveArgs) => Promise<unknown>): void };

export async function bundleLikeWrangler(entry: string, options: WranglerBundleOptions): Promise<WranglerBundle> {
  const root = path.resolve(__dirname, '../..');
  const modules: WranglerModule[] = [];
  const outfile = path.join(options.outDir, 'worker.mjs');
  const result = await loadEsbuild().build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    format: 'esm',
    target: 'es2022',
    conditions: ['workerd', 'worker', 'browser'],
    platform: options.nodejsCompat ? 'node' : 'browser',
    ...(options.nodejsCompat && {
      banner: { js: "import { createRequire as sqfsWranglerCreateRequire } from 'node:module'; const require = sqfsWranglerCreateRequire('/');" },
    }),
    nodePaths: [...(options.nodeModules ?? []), path.join(root, 'node_modules')],
    // Not the repository's tsconfig.json, whose `paths` point squashfs-ts at src/ for tsc: a user's Worker resolves the package.
    tsconfigRaw: '{}',
    metafile: true,
    logLevel: 'silent',
    plugins: [{
      name: 'wrangler-module-collector (CompiledWasm)',
      setup(build: PluginBuild) {
        for (const filter of COMPILED_WASM) {
          build.onResolve({ filter }, async (args) => {
            const specifier = args.path.replace(/\?module$/, '');
            let file = path.join(args.resolveDir, specifier);
            if (!specifier.startsWith('.')) file = createRequire(path.join(args.resolveDir, 'index.js')).resolve(specifier);
            const contents = new Uint8Array(await fsp.readFile(file));
            const name = `${createHash('sha1').update(contents).digest('hex')}-${path.basename(specifier)}`;
            if (!modules.some((m) => m.name === name)) modules.push({ name, type: 'CompiledWasm', file, contents });
            return { path: `./${name}`, external: true };
          });
        }
      },
    }],
  });
  const code = await fsp.readFile(outfile, 'utf8');
  return { code, modules, inputs: Object.keys(result.metafile!.inputs) };
}
