import fs from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { SquashfsError } from '../errors.js';
import { SquashfsImage, type OpenOptions } from '../squashfs/reader/image.js';
import { checkRange } from '../squashfs/reader/source.js';
import type { RandomAccessSource } from '../squashfs/reader/types.js';
import { nodeCodecs } from './codecs.js';

/** Fills `into` from an image file at `position` (synchronously); an image that ends first is CORRUPT_IMAGE. */
export function readFully(fd: number, into: Uint8Array, position: number, path: string): void {
  let filled = 0;
  while (filled < into.length) {
    const n = fs.readSync(fd, into, filled, into.length - filled, position + filled);
    if (n === 0) throw new SquashfsError('CORRUPT_IMAGE', `${path} ended at ${position + filled} while reading ${into.length} bytes at ${position}`, { offset: position });
    filled += n;
  }
}

/** A source that is a file: other threads can open it again by its path. */
export interface FileBackedSource extends RandomAccessSource {
  readonly path: string;
}

/** An image file read with positioned reads. */
export async function fileSource(path: string): Promise<FileBackedSource> {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code === 'ENOENT' ? 'NOT_FOUND' : 'SOURCE_UNREADABLE';
    throw new SquashfsError(code, `${path}: ${(cause as Error).message}`, { path, cause });
  }
  const { size } = fs.fstatSync(fd);
  // Positioned synchronous reads: page-cache hits, far cheaper than a thread-pool round trip each.
  return {
    path: resolvePath(path),
    size,
    async read(offset, length) {
      checkRange(offset, length, size, `read of ${path}`);
      const buffer = new Uint8Array(length);
      readFully(fd, buffer, offset, path);
      return buffer;
    },
    close: async () => fs.closeSync(fd),
  };
}

/** Opens an image file with Node's native codecs. */
export async function openImage(path: string, options: OpenOptions = {}): Promise<SquashfsImage> {
  const source = await fileSource(path);
  try {
    return await SquashfsImage.open(source, { codecs: nodeCodecs(), ...options });
  } catch (error) {
    await source.close?.();
    throw error;
  }
}
