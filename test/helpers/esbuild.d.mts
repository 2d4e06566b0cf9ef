export interface EsbuildLike {
  build(opts: Record<string, unknown>): Promise<{ metafile?: { inputs: Record<string, { bytes: number }> } }>;
}

/** esbuild, resolved from `from` (a file in the repository; default esbuild.mjs): hoisted, or the one tsup depends on. */
export function loadEsbuild(from?: string): EsbuildLike;

/** esbuild options for one ESM file that plain `node` runs (CommonJS dependencies bundled into ESM get a real `require`). */
export const nodeBundleOptions: {
  readonly bundle: true;
  readonly platform: 'node';
  readonly format: 'esm';
  readonly target: 'node20';
  readonly logLevel: 'silent';
  readonly banner: { readonly js: string };
};
