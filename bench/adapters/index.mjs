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
 * @property {'squashfs'|'tar.gz'} format  what pack() produces (drives verification, and which
 *                                images a future unpack adapter can consume)
 * @property {string} ext         output file extension
 * @property {(s: Settings) => string|null} check   reason the adapter can't run with these settings, or null
 * @property {() => string|null} [version]
 * @property {(corpusDir: string, outFile: string, s: Settings) => Command} [pack]
 * @property {(imageFile: string, outDir: string, s: Settings) => Command} [unpack]  (future operation)
 */
import ours from './ours.mjs';
import mksquashfs from './mksquashfs.mjs';
import tar from './tar.mjs';

/** In table order; the baseline for ratios is chosen in run.mjs (default 'mksquashfs'). */
export const adapters = [mksquashfs, ours, tar];
