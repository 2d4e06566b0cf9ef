// tar | gzip -9: the "just make a tarball" reference. Single-threaded gzip; block size is meaningless here.
import { which, capture, shQuote } from '../lib/shell.mjs';

/** @type {import('./index.mjs').Adapter} */
export default {
  name: 'tar',
  label: 'tar | gzip -N',
  format: 'tar.gz',
  ext: 'tar.gz',

  check(settings) {
    for (const bin of ['bash', 'tar', 'gzip']) if (!which(bin)) return `${bin} not on PATH`;
    if (settings.comp !== 'gzip') return `this adapter only does gzip (asked for ${settings.comp})`;
    return null;
  },

  version() {
    const first = (argv) => capture(argv).split('\n')[0];
    return `${first(['tar', '--version'])}; ${first(['gzip', '--version'])}`;
  },

  pack(corpusDir, outFile, settings) {
    // pipefail so a tar error is not masked by gzip's exit status.
    const script = `set -o pipefail; tar -C ${shQuote(corpusDir)} -cf - . | gzip -${settings.level} > ${shQuote(outFile)}`;
    return { argv: ['bash', '-c', script] };
  },
};
