import { copyFile } from 'node:fs/promises';
import { defineConfig } from 'tsup';

const library = { index: 'src/index.ts', node: 'src/node/index.ts' };

export default defineConfig([
  {
    // ESM, and the Workers entry: its chunks are the main entry's.
    entry: { ...library, workerd: 'src/workerd.ts' },
    format: ['esm'],
    dts: { entry: library },
    sourcemap: true,
    clean: true,
    target: 'node20',
    shims: true,
    // dist/workerd.js keeps its import of the module beside it, for the Worker's bundler to load as a compiled module.
    external: ['./zstd.wasm'],
    // The zstd encoder: read on Node from beside the bundles, imported by dist/workerd.js, and `squashfs-ts/zstd.wasm` for anyone.
    // Likewise xz.wasm: our liblzma build (scripts/xz-wasm), and lz4.wasm: our liblz4 build (scripts/lz4-wasm).
    onSuccess: async () => {
      await copyFile('node_modules/@foxglove/wasm-zstd/dist/wasm-zstd.wasm', 'dist/zstd.wasm');
      await copyFile('scripts/xz-wasm/liblzma.wasm', 'dist/xz.wasm');
      await copyFile('scripts/lz4-wasm/lz4.wasm', 'dist/lz4.wasm');
    },
  },
  {
    entry: library,
    format: ['cjs'],
    dts: true,
    // Source maps for the ESM entries only: the CJS and CLI bundles' maps were half the installed size.
    sourcemap: false,
    target: 'node20',
    shims: true,
  },
  {
    entry: { cli: 'src/cli/bin.ts', 'compress-worker': 'src/node/compress-worker.ts', 'unpack-worker': 'src/node/unpack-worker.ts' },
    format: ['esm'],
    sourcemap: false,
    target: 'node20',
    banner: { js: '#!/usr/bin/env node' },
    noExternal: [/.*/],
  },
]);
