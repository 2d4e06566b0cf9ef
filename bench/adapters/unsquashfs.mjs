// squashfs-tools unsquashfs: the baseline for `--op unpack`. It only unpacks (no pack()).
import { which, capture } from '../lib/shell.mjs';

/** @type {import('./index.mjs').Adapter} */
export default {
  name: 'unsquashfs',
  label: 'unsquashfs (squashfs-tools)',
  format: 'squashfs',
  ext: 'sqfs',

  check() {
    if (!which('unsquashfs')) return 'unsquashfs not on PATH (apt-get install squashfs-tools)';
    return null;
  },

  version() { return capture(['unsquashfs', '-version']).split('\n')[0] || null; },

  // -no-progress -quiet only silence the progress bar and summary (like the mksquashfs adapter's flags).
  unpack(imageFile, outDir, settings) {
    return { argv: ['unsquashfs', '-processors', String(settings.processors), '-no-progress', '-quiet', '-d', outDir, imageFile] };
  },
};
