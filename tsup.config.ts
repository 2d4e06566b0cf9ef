import { copyFile } from 'node:fs/promises';
import { defineConfig } from 'tsup';

export default defineConfig([
  {
    entry: { index: 'src/index.ts', node: 'src/node/index.ts' },
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'node20',
    shims: true,
    // The zstd encoder, for Workers to import as a precompiled module: `import m from 'squashfs-ts/zstd.wasm'`.
    onSuccess: () => copyFile('node_modules/@foxglove/wasm-zstd/dist/wasm-zstd.wasm', 'dist/zstd.wasm'),
  },
  {
    entry: { cli: 'src/cli/bin.ts', 'compress-worker': 'src/node/compress-worker.ts', 'unpack-worker': 'src/node/unpack-worker.ts' },
    format: ['esm'],
    sourcemap: true,
    target: 'node20',
    banner: { js: '#!/usr/bin/env node' },
    noExternal: [/.*/],
  },
]);
