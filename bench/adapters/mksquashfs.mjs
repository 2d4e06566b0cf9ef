// squashfs-tools mksquashfs: the baseline all ratios are computed against.
import { which, capture } from '../lib/shell.mjs';

/** @type {import('./index.mjs').Adapter} */
export default {
  name: 'mksquashfs',
  label: 'mksquashfs (squashfs-tools)',
  format: 'squashfs',
  ext: 'sqfs',

  check(settings) {
    if (!which('mksquashfs')) return 'mksquashfs not on PATH (apt-get install squashfs-tools)';
    if (!['gzip', 'xz', 'lzo', 'lz4', 'zstd', 'lzma'].includes(settings.comp)) return `unknown compressor ${settings.comp}`;
    return null;
  },

  version() { return capture(['mksquashfs', '-version']).split('\n')[0] || null; },

  pack(corpusDir, outFile, settings) {
    const comp = ['-comp', settings.comp];
    if (settings.comp === 'gzip' || settings.comp === 'zstd') comp.push('-Xcompression-level', String(settings.level));
    return {
      argv: ['mksquashfs', corpusDir, outFile, ...comp, '-b', String(settings.blockSize),
        '-processors', String(settings.processors), '-noappend', '-no-progress', '-quiet'],
    };
  },

  // Unpacking with squashfs-tools is the separate `unsquashfs` adapter.
};
