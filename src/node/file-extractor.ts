import fs, { constants } from 'node:fs';
import type { Codec } from '../codecs/codec.js';
import { SquashfsError } from '../errors.js';
import { decodeDataBlock, fragmentTail, MAX_RUN_BYTES, planRuns, storedLength, tailOf, type FileLayout } from '../squashfs/reader/data.js';
import { checkRange } from '../squashfs/reader/source.js';
import { readFully } from './file-source.js';

/** Owner, mode and time to give a file once written: each only where creating it did not already give it. */
export interface FileAttributes {
  /** Set only when running as root and the file was not created with this owner. */
  owner?: { uid: number; gid: number };
  /** The 12 permission bits, when the file was not created with them. */
  mode?: number;
  /** Seconds since the epoch. */
  mtime: number;
}

/** One file, or one piece of a large one, to write. Plain data: it crosses threads. */
export interface FileTask {
  /** Absolute path of the file (bytes: names need not be UTF-8). */
  path: Uint8Array;
  layout: FileLayout;
  /** Blocks [first, end) of the file; the piece ending at the last block also writes the fragment tail. */
  first: number;
  end: number;
  /** Creates the file (it must not exist); pieces of a large file find it made, at its full size. */
  create: boolean;
  /** The mode to create it with (before the umask); default 0o600. */
  createMode?: number;
  /** Set when done; left out where the caller settles them itself. */
  finish?: FileAttributes;
}

/** What an extractor needs of the image, which it reads itself through its own descriptor. */
export interface ImageGeometry {
  path: string;
  blockSize: number;
  bytesUsed: number;
}

/** Decompressed fragment blocks kept (files in listing order mostly share the last one). */
const FRAGMENT_CACHE = 4;

/**
 * Writes files out of an image file with synchronous reads and writes, on
 * whatever thread runs it (the unpack workers, or the main thread when
 * there are none). Every size word, range and decompressed length is
 * checked as the reader checks them.
 */
export class FileExtractor {
  private readonly fd: number;
  private buffer = new Uint8Array(MAX_RUN_BYTES);
  private readonly fragments = new Map<number, Uint8Array>();

  constructor(
    private readonly image: ImageGeometry,
    private readonly codec: Codec,
  ) {
    this.fd = fs.openSync(image.path, 'r');
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  /** Writes one task; returns the bytes written (holes not counted). */
  write(task: FileTask): number {
    const { layout } = task;
    const { blockSize, bytesUsed } = this.image;
    const flags = task.create ? constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW : constants.O_WRONLY | constants.O_NOFOLLOW;
    const fd = fs.openSync(Buffer.from(task.path.buffer, task.path.byteOffset, task.path.byteLength), flags, task.createMode ?? 0o600);
    try {
      let written = 0;
      for (const run of planRuns(layout, blockSize, bytesUsed, MAX_RUN_BYTES, task.first, task.end)) {
        if (run.kind === 'hole') continue;
        const stored = this.read(run.position, run.length);
        let o = 0;
        for (const block of run.blocks) {
          const bytes = decodeDataBlock(this.codec, stored.subarray(o, o + block.stored), block.word, block.expected, false, run.position + o);
          o += block.stored;
          writeAll(fd, bytes, block.offset);
          written += bytes.length;
        }
      }
      if (task.end === layout.blockSizes.length && layout.fragment) {
        const tail = fragmentTail(layout, blockSize);
        const bytes = tailOf(this.fragmentBlock(layout.fragment), layout.fragment.offset, tail.length, layout.inodeNumber, layout.fragment.index);
        writeAll(fd, bytes, tail.offset);
        written += bytes.length;
      }
      // A file ending in a hole gets its length here.
      if (task.create && !layout.fragment && layout.blockSizes[layout.blockSizes.length - 1] === 0) fs.ftruncateSync(fd, layout.size);
      if (task.finish) {
        const { owner, mode, mtime } = task.finish;
        if (owner) fs.fchownSync(fd, owner.uid, owner.gid);
        if (mode !== undefined) fs.fchmodSync(fd, mode);
        fs.futimesSync(fd, mtime, mtime);
      }
      return written;
    } finally {
      fs.closeSync(fd);
    }
  }

  /** The image's bytes at [position, position + length), in a buffer reused by the next read. */
  private read(position: number, length: number): Uint8Array {
    if (length > this.buffer.length) this.buffer = new Uint8Array(length);
    const out = this.buffer.subarray(0, length);
    readFully(this.fd, out, position, this.image.path);
    return out;
  }

  private fragmentBlock(fragment: NonNullable<FileLayout['fragment']>): Uint8Array {
    const cached = this.fragments.get(fragment.index);
    if (cached) return cached;
    if (fragment.word === 0) throw new SquashfsError('CORRUPT_IMAGE', `fragment ${fragment.index} has size 0`);
    const stored = storedLength(fragment.word, this.image.blockSize, `fragment ${fragment.index}`);
    checkRange(fragment.start, stored, this.image.bytesUsed, `fragment ${fragment.index}`);
    const bytes = new Uint8Array(stored);
    readFully(this.fd, bytes, fragment.start, this.image.path);
    const block = decodeDataBlock(this.codec, bytes, fragment.word, this.image.blockSize, true, fragment.start);
    if (this.fragments.size >= FRAGMENT_CACHE) this.fragments.delete(this.fragments.keys().next().value!);
    this.fragments.set(fragment.index, block);
    return block;
  }
}

/** Writes all of `bytes` at `position`. */
export function writeAll(fd: number, bytes: Uint8Array, position: number): void {
  let done = 0;
  while (done < bytes.length) done += fs.writeSync(fd, bytes, done, bytes.length - done, position + done);
}
