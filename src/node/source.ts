import { promises as fs } from 'node:fs';
import { fsSource, type FsPromisesLike } from '../source/fs-source.js';
import type { TreeSource } from '../source/source.js';

/** The real file system as a tree source; byte paths become Buffers. */
export function nodeSource(): TreeSource {
  return fsSource(fs as unknown as FsPromisesLike, (path) => (typeof path === 'string' ? path : Buffer.from(path)));
}
