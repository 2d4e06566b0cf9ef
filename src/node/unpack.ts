import fs, { constants } from 'node:fs';
import { mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { SquashfsError, throwIfAborted } from '../errors.js';
import type { SquashfsImage } from '../squashfs/reader/image.js';
import type { EntryStat, WalkEntry } from '../squashfs/reader/types.js';
import { makeDevice, makeFifo, makeSocket, restoreXattrs } from './system-tools.js';

export interface UnpackOptions {
  /** Replace a target directory that exists and is not empty. */
  force?: boolean;
  /** Told of what could not be made here (devices without root, xattrs without setfattr...). */
  onWarning?: (message: string) => void;
  onProgress?: (progress: { entries: number; bytes: number }) => void;
  signal?: AbortSignal;
  /** Files written at once (default 4). */
  concurrency?: number;
}

export interface UnpackResult {
  entries: number;
  files: number;
  directories: number;
  symlinks: number;
  hardLinks: number;
  special: number;
  bytes: number;
  warnings: string[];
}

const SLASH = Buffer.from('/');

/**
 * Extracts a whole image into `dir`. Everything is written into a new
 * sibling directory first and renamed into place at the end, so a failure
 * leaves `dir` as it was. Names were validated by the reader (no "/", ".",
 * ".." or empty names), and every path is built from the staging root
 * down through directories this function made itself, so nothing can be
 * written outside it.
 */
export async function unpackImage(image: SquashfsImage, dir: string, options: UnpackOptions = {}): Promise<UnpackResult> {
  const target = resolve(dir);
  const existing = await stat(target).catch(() => undefined);
  if (existing && !existing.isDirectory()) {
    throw new SquashfsError('WRITE_FAILED', `${target} exists and is not a directory`, { path: target });
  }
  if (existing && !options.force && (await readdir(target)).length > 0) {
    throw new SquashfsError('WRITE_FAILED', `${target} exists and is not empty (use force to replace it)`, { path: target });
  }
  const staging = await mkdtemp(join(dirname(target), `.${basename(target)}.unpack-`)).catch((cause: Error) => {
    throw new SquashfsError('WRITE_FAILED', `cannot create a directory beside ${target}: ${cause.message}`, { path: target, cause });
  });
  try {
    const result = await extractInto(image, staging, options);
    if (existing) {
      const old = `${staging}.old`;
      await rename(target, old);
      await rename(staging, target);
      await rm(old, { recursive: true, force: true });
    } else {
      await rename(staging, target);
    }
    return result;
  } catch (error) {
    await rm(staging, { recursive: true, force: true }).catch(() => undefined);
    if (error instanceof SquashfsError) throw error;
    throw new SquashfsError('WRITE_FAILED', `unpacking into ${target} failed: ${(error as Error).message}`, { path: target, cause: error });
  }
}

async function extractInto(image: SquashfsImage, root: string, options: UnpackOptions): Promise<UnpackResult> {
  const isRoot = process.getuid?.() === 0;
  const rootBytes = Buffer.from(root);
  const result: UnpackResult = { entries: 0, files: 0, directories: 0, symlinks: 0, hardLinks: 0, special: 0, bytes: 0, warnings: [] };
  const warned = new Set<string>();
  const warn = (kind: string, message: string) => {
    if (warned.has(kind)) return;
    warned.add(kind);
    result.warnings.push(message);
    options.onWarning?.(message);
  };
  const pathOf = (names: Uint8Array[]) => (names.length === 0 ? rootBytes : Buffer.concat([rootBytes, ...names.flatMap((n) => [SLASH, n])]));

  // What to finish once everything exists: owners, modes, times (children before parents).
  const made: { path: Buffer; stat: EntryStat }[] = [];
  const xattrs: { path: Buffer; xattrs: { name: string; value: Uint8Array }[] }[] = [];
  const firstPathOfInode = new Map<number, Buffer>();
  const links: { path: Buffer; first: number }[] = [];
  const writing = new Set<Promise<void>>();
  const limit = options.concurrency ?? 4;
  let failure: unknown;

  for await (const entry of image.walk()) {
    throwIfAborted(options.signal);
    if (failure) throw failure;
    const path = pathOf(entry.names);
    const { stat: st } = entry;
    result.entries++;
    if (st.type !== 'directory' && st.nlink > 1) {
      if (firstPathOfInode.has(st.inode)) {
        links.push({ path, first: st.inode });
        continue;
      }
    }
    switch (st.type) {
      case 'directory':
        if (entry.names.length > 0) fs.mkdirSync(path, 0o700);
        result.directories++;
        break;
      case 'file': {
        const task = writeFile(image, entry, path, st.size).then(
          (bytes) => void (result.bytes += bytes),
          (error) => void (failure ??= error),
        );
        writing.add(task);
        task.finally(() => writing.delete(task));
        if (writing.size >= limit) await Promise.race(writing);
        result.files++;
        break;
      }
      case 'symlink':
        fs.symlinkSync(Buffer.from(await image.readlink(entry)), path);
        result.symlinks++;
        break;
      default:
        if (!(await makeSpecial(entry, path, pathOf(entry.names.slice(0, -1)), warn))) continue;
        result.special++;
    }
    made.push({ path, stat: st });
    if (st.type !== 'directory' && st.nlink > 1) firstPathOfInode.set(st.inode, path);
    if (st.hasXattrs) xattrs.push({ path, xattrs: await image.xattrs(entry) });
    options.onProgress?.({ entries: result.entries, bytes: result.bytes });
  }
  await Promise.all(writing);
  if (failure) throw failure;

  for (const { path, first } of links) {
    const existing = firstPathOfInode.get(first);
    if (!existing) continue; // its first name could not be made here (a warned-about special file)
    fs.linkSync(existing, path);
    result.hardLinks++;
  }
  if (xattrs.length > 0) {
    await restoreXattrs(xattrs).catch((error: Error) => warn('xattrs', `extended attributes were not all restored: ${error.message}`));
  }
  for (let i = made.length - 1; i >= 0; i--) {
    const { path, stat: st } = made[i]!;
    if (isRoot) fs.lchownSync(path, st.uid, st.gid);
    if (st.type !== 'symlink') fs.chmodSync(path, st.mode & 0o7777);
    fs.lutimesSync(path, st.mtime, st.mtime);
  }
  if (!isRoot) warn('owners', 'not running as root: files are owned by the current user');
  return result;
}

/** Writes a file's bytes at their offsets, leaving holes as holes. */
async function writeFile(image: SquashfsImage, from: WalkEntry, path: Buffer, size: number): Promise<number> {
  // Synchronous writes: for many small files far cheaper than thread-pool round trips.
  const fd = fs.openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    let written = 0;
    let trailingHole = false;
    for await (const chunk of image.readChunks(from)) {
      trailingHole = !chunk.bytes;
      if (!chunk.bytes) continue;
      let done = 0;
      while (done < chunk.bytes.length) done += fs.writeSync(fd, chunk.bytes, done, chunk.bytes.length - done, chunk.offset + done);
      written += chunk.bytes.length;
    }
    if (trailingHole) fs.ftruncateSync(fd, size);
    return written;
  } finally {
    fs.closeSync(fd);
  }
}

async function makeSpecial(entry: WalkEntry, path: Buffer, parent: Buffer, warn: (kind: string, message: string) => void): Promise<boolean> {
  const { stat: st } = entry;
  try {
    if (st.type === 'fifo') await makeFifo(path);
    else if (st.type === 'socket') await makeSocket(parent, path);
    else await makeDevice(path, st.type === 'block-device' ? 'b' : 'c', st.rdev!.major, st.rdev!.minor);
    return true;
  } catch (error) {
    warn(st.type, `${st.type}s cannot be made here, skipped (first: ${entry.path}): ${(error as Error).message}`);
    return false;
  }
}
