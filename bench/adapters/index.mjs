// Adapter registry. One file per tool; add new tools here.
//
// An adapter describes how to invoke a tool; the harness (run.mjs) does the timing, RSS and size
// measurement, so adapters only build command lines.
//
/**
 * @typedef {object} Settings
 * @property {string} comp        compressor, e.g. 'gzip'
 * @property {number} level       compression level (gzip 1-9)
 * @property {number} blockSize   SquashFS data block size in bytes (power of two, 4 KiB - 1 MiB)
 * @property {number} processors  worker threads/processes a tool may use
 *
 * @typedef {object} Command
 * @property {string[]} argv      executed directly (no shell); use ['bash', '-c', script] for pipelines
 * @property {string} [cwd]
 * @property {Record<string,string>} [env]
 *
 * @typedef {object} Adapter
 * @property {string} name        short id used by --only and in the table
 * @property {string} label       human-readable description
 * @property {'squashfs'|'tar.gz'} format  what pack() produces (drives verification), or what
 *                                unpack() consumes
 * @property {string} ext         output file extension
 * @property {(s: Settings) => string|null} check   reason the adapter can't run with these settings, or null
 * @property {() => string|null} [version]
 * @property {(corpusDir: string, outFile: string, s: Settings) => Command} [pack]
 * @property {(imageFile: string, outDir: string, s: Settings) => Command} [unpack]  extract imageFile
 *                                into outDir, which does not exist yet (the harness removes it between runs)
 *
 * An adapter takes part in an op (`--op pack|unpack`) iff it has that method. `--op read` uses no
 * adapter: it drives the built library (dist/) from bench/read-client.mjs.
 */
import ours from './ours.mjs';
import mksquashfs from './mksquashfs.mjs';
import tar from './tar.mjs';
import unsquashfs from './unsquashfs.mjs';

/** In table order; the baseline for ratios is chosen in run.mjs (mksquashfs for pack, unsquashfs for unpack). */
export const adapters = [mksquashfs, unsquashfs, ours, tar];

/** Default ratio denominator per op. */
export const DEFAULT_BASELINE = { pack: 'mksquashfs', unpack: 'unsquashfs' };
