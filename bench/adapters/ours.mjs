// squashfs-ts: the CLI built from src/ by `npm run build` (dist/cli.js).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// BENCH_OURS_CLI=/path/to/cli.js benchmarks another build (e.g. a checkout of an older commit).
const CLI = process.env.BENCH_OURS_CLI || fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

/** @type {import('./index.mjs').Adapter} */
export default {
  name: 'ours',
  label: 'squashfs-ts (node dist/cli.js)',
  format: 'squashfs',
  ext: 'sqfs',

  check(settings) {
    if (!existsSync(CLI)) return `${CLI} not found - run \`npm run build\` first`;
    if (settings.comp !== 'gzip' && settings.comp !== 'zstd') return `compressor ${settings.comp} not wired up in this adapter yet`;
    return null;
  },

  version() { return `node ${process.version}, ${CLI}`; },

  pack(corpusDir, outFile, settings) {
    return {
      argv: [process.execPath, CLI, 'pack', corpusDir, outFile,
        '--comp', settings.comp, '--level', String(settings.level), '--block-size', String(settings.blockSize),
        '--processors', String(settings.processors)],
    };
  },

  // Writes into a staging directory next to outDir and renames it at the end; outDir must not exist.
  unpack(imageFile, outDir) {
    return { argv: [process.execPath, CLI, 'unpack', imageFile, outDir] };
  },
};
