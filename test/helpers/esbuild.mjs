// esbuild for the tests and bench scripts, in plain JavaScript so that
// bench/fuzz.mjs (which runs without a TypeScript loader) shares it with
// the TypeScript helpers. Types: esbuild.d.mts.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** esbuild, resolved from `from` (a file in the repository; default this one): hoisted, or the one tsup depends on. */
export function loadEsbuild(from = fileURLToPath(import.meta.url)) {
  const require = createRequire(from);
  try {
    return require('esbuild');
  } catch {
    // Not hoisted: take the one tsup depends on.
    return createRequire(require.resolve('tsup'))('esbuild');
  }
}

/** esbuild options for one ESM file that plain `node` runs (CommonJS dependencies bundled into ESM get a real `require`). */
export const nodeBundleOptions = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  logLevel: 'silent',
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
};
