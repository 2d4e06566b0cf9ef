import fs, { constants } from 'node:fs';
import { mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { isOpaque, isWhiteout, OVERLAY_XATTR_PREFIX } from '../backup/chain.js';
import { BackupError, SquashfsError, throwIfAborted } from '../errors.js';
import { DATA_SIZE_MASK } from '../squashfs/constants.js';
import type { SquashfsImage } from '../squashfs/reader/image.js';
import type { EntryStat, WalkEntry } from '../squashfs/reader/types.js';
import { ExtractPool } from './extract-pool.js';
import { writeAll, type FileAttributes, type FileTask } from './file-extractor.js';
import type { FileBackedSource } from './file-source.js';
import { makeDevice, makeFifo, makeSocket, restoreXattrs } from './system-tools.js';

export interface UnpackOptions {
  /** Replace a target directory that exists and is not empty. */
  force?: boolean;
  /**
   * Entries not to write (with what is under them): a restore leaves out
   * what a layer above replaces or removes (see Shadows). A file left out
   * counts as finished in `fileBytes`.
   */
  hidden?: (names: readonly Uint8Array[], isDirectory: boolean) => boolean;
  /** Told of what could not be made here (devices without root, xattrs without setfattr...). */
  onWarning?: (message: string) => void;
  /**
   * `entries` made, file `bytes` written (holes not counted), and
   * `fileBytes`: the sizes of the files finished, holes included, which
   * ends at the sum of the files' sizes (a hard-linked file once).
   */
  onProgress?: (progress: UnpackProgress) => void;
  signal?: AbortSignal;
  /** Files written at once when the image is not a file (default 4). */
  concurrency?: number;
  /**
   * For an image file: worker threads that read, decompress and write files
   * besides this one, which works too (default: one fewer than the cores;
   * 0: all on this thread). They use the built-in codecs for the image's compressor.
   */
  threads?: number;
  /**
   * For an image still arriving (a restore that extracts while it
   * downloads): resolves once the image's bytes before `end` can be read.
   * File data is read only after it says so.
   */
  dataReady?: (end: number) => Promise<void>;
  /**
   * Awaited once everything is written, before the result replaces `dir`,
   * with the directory the tree was written to (a restore's integrity
   * check, and the layers it applies over the tree). A failure there
   * removes what was written and is thrown as it is.
   */
  beforeSwap?: (staging: string) => Promise<void>;
}

export interface UnpackProgress {
  entries: number;
  bytes: number;
  fileBytes: number;
}

/** What applying a layer takes: an unpack's options that are not about replacing `dir`. */
export interface ApplyLayerOptions extends Pick<UnpackOptions, 'onWarning' | 'onProgress' | 'signal' | 'concurrency' | 'threads' | 'hidden'> {
  /**
   * Whether the tree may hold extended attributes (default true). A
   * directory the layer merges into keeps only the layer's own xattrs, as
   * the kernel shows it; when nothing below had any, there is nothing to
   * remove and no getfattr run is made.
   */
  xattrsBelow?: boolean;
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
    const result = await extractInto(image, staging, options, false);
    await options.beforeSwap?.(staging);
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
    if (error instanceof SquashfsError || error instanceof BackupError) throw error;
    throw new SquashfsError('WRITE_FAILED', `unpacking into ${target} failed: ${(error as Error).message}`, { path: target, cause: error });
  }
}

/**
 * Applies an overlayfs layer (a delta backup's image) onto the tree in
 * `dir`, in place, so that `dir` becomes what `mount -t overlay` shows with
 * the layer over it. A whiteout removes what is at its path; a directory
 * of the layer is merged into a directory there unless it is opaque (then
 * it replaces it; the layer's root, `dir` itself, always merges); anything
 * else replaces what is there. Every entry the layer holds gets its owner,
 * mode, time and xattrs, overlayfs's own trusted.overlay.* left out; a
 * merged directory loses the xattrs the layer's does not have, as the
 * merged view shows only the top layer's. Not atomic: a restore applies
 * layers to the tree it has yet to swap in. As in unpackImage, every path
 * is built from `dir` down through directories this function made or
 * found to be directories (a symlink on the way is replaced, never
 * followed), so nothing is written outside `dir`.
 */
export async function applyLayer(image: SquashfsImage, dir: string, options: ApplyLayerOptions = {}): Promise<UnpackResult> {
  const target = resolve(dir);
  const existing = await stat(target).catch(() => undefined);
  if (!existing?.isDirectory()) throw new SquashfsError('WRITE_FAILED', `${target} is not a directory to apply a layer onto`, { path: target });
  try {
    return await extractInto(image, target, options, true);
  } catch (error) {
    if (error instanceof SquashfsError || error instanceof BackupError) throw error;
    throw new SquashfsError('WRITE_FAILED', `applying a layer onto ${target} failed: ${(error as Error).message}`, { path: target, cause: error });
  }
}

/**
 * What creating an entry gives it unasked, so the calls that would set it
 * again are left out: the process's owner (unless its directory may pass
 * on its group: a staging directory that does, or any directory of an
 * existing tree) and the mode bits the umask lets through.
 */
function creationDefaults(root: string, isRoot: boolean, existingTree: boolean) {
  const uid = process.geteuid?.();
  const gid = process.getegid?.();
  const inheritsGroup = existingTree || (fs.statSync(root).mode & 0o2000) !== 0;
  const umask = process.umask();
  return {
    /** The owner to set, when running as root and creating did not give it. */
    owner: (st: EntryStat) => (isRoot && (inheritsGroup || st.uid !== uid || st.gid !== gid) ? { uid: st.uid, gid: st.gid } : undefined),
    /** The mode a file can be created with, needing no chmod after: its own when it has no special bit and the umask keeps it whole. */
    createMode: (mode: number) => ((mode & 0o7000) === 0 && (mode & umask) === 0 ? mode : undefined),
  };
}

/**
 * Writes an image's tree into `root`: a directory just made for it, or
 * (`layer`) an existing tree the image is an overlayfs layer over (see
 * applyLayer).
 */
async function extractInto(image: SquashfsImage, root: string, options: UnpackOptions & Pick<ApplyLayerOptions, 'xattrsBelow'>, layer: boolean): Promise<UnpackResult> {
  const isRoot = process.getuid?.() === 0;
  const creation = creationDefaults(root, isRoot, layer);
  const rootBytes = Buffer.from(root);
  const result: UnpackResult = { entries: 0, files: 0, directories: 0, symlinks: 0, hardLinks: 0, special: 0, bytes: 0, warnings: [] };
  const warned = new Set<string>();
  const warn = (kind: string, message: string) => {
    if (warned.has(kind)) return;
    warned.add(kind);
    result.warnings.push(message);
    options.onWarning?.(message);
  };
  // A path is its parent directory's path plus its name; directories are found by their name's bytes object.
  const directoryPaths = new Map<Uint8Array, Buffer>();
  const pathOf = (names: Uint8Array[]) => {
    if (names.length === 0) return rootBytes;
    const parent = names.length === 1 ? rootBytes : directoryPaths.get(names[names.length - 2]!)!;
    return Buffer.concat([parent, SLASH, names[names.length - 1]!]);
  };

  // What to finish once everything exists: owners, modes, times (children before parents).
  const made: { path: Buffer; stat: EntryStat }[] = [];
  const xattrs: { path: Buffer; xattrs: { name: string; value: Uint8Array }[] }[] = [];
  const firstPathOfInode = new Map<number, Buffer>();
  const links: { path: Buffer; first: number }[] = [];
  // Directories of the existing tree a layer's directory was merged into, and the names of the xattrs the layer gives them.
  const merged: { path: Buffer; names: Set<string> }[] = [];
  let fileBytes = 0;
  const contents = contentWriter(image, options, (bytes, files) => {
    result.bytes += bytes;
    fileBytes += files;
    options.onProgress?.({ entries: result.entries, bytes: result.bytes, fileBytes });
  });

  try {
    for await (const entry of image.walk({ signal: options.signal })) {
      throwIfAborted(options.signal);
      const { stat: st } = entry;
      if (options.hidden?.(entry.names, st.type === 'directory')) {
        if (st.type === 'file') fileBytes += st.size;
        continue;
      }
      const path = pathOf(entry.names);
      result.entries++;
      if (layer && st.type !== 'directory') {
        removePath(path);
        // Whiteouts first: overlayfs may make them hard links of one another.
        if (isWhiteout(st)) continue;
      }
      if (st.type !== 'directory' && st.nlink > 1) {
        if (firstPathOfInode.has(st.inode)) {
          links.push({ path, first: st.inode });
          continue;
        }
      }
      const stored = st.hasXattrs ? await image.xattrs(entry) : [];
      const own = layer ? stored.filter((x) => !x.name.startsWith(OVERLAY_XATTR_PREFIX)) : stored;
      let settled = false;
      switch (st.type) {
        case 'directory':
          if (layer && mergeDirectory(path, entry.names.length === 0, isOpaque(stored), isRoot)) {
            merged.push({ path, names: new Set(own.map((x) => x.name)) });
          } else if (entry.names.length > 0) {
            fs.mkdirSync(path, 0o700);
          }
          if (entry.names.length > 0) directoryPaths.set(entry.names[entry.names.length - 1]!, path);
          result.directories++;
          break;
        case 'file':
          // Extended attributes go on before the mode (which may forbid writing them), so such files are finished here.
          if (own.length > 0) settled = await contents.add(entry, path, undefined);
          else {
            const createMode = creation.createMode(st.mode & 0o7777);
            settled = await contents.add(entry, path, {
              owner: creation.owner(st), mode: createMode === undefined ? st.mode & 0o7777 : undefined, mtime: st.mtime,
            }, createMode);
          }
          result.files++;
          break;
        case 'symlink':
          fs.symlinkSync(Buffer.from(await image.readlink(entry)), path);
          result.symlinks++;
          break;
        default:
          if (!(await makeSpecial(entry, path, pathOf(entry.names.slice(0, -1)), warn))) continue;
          result.special++;
      }
      if (!settled) made.push({ path, stat: st });
      if (st.type !== 'directory' && st.nlink > 1) firstPathOfInode.set(st.inode, path);
      if (own.length > 0) xattrs.push({ path, xattrs: own });
      options.onProgress?.({ entries: result.entries, bytes: result.bytes, fileBytes });
    }
    await contents.finish();
  } finally {
    await contents.close();
  }

  for (const { path, first } of links) {
    const existing = firstPathOfInode.get(first);
    if (!existing) continue; // its first name could not be made here (a warned-about special file)
    fs.linkSync(existing, path);
    result.hardLinks++;
  }
  if (merged.length > 0 && options.xattrsBelow !== false) {
    await dropOtherXattrs(merged).catch((error: Error) => warn('xattrs', `extended attributes were not all removed from merged directories: ${error.message}`));
  }
  if (xattrs.length > 0) {
    await restoreXattrs(xattrs).catch((error: Error) => warn('xattrs', `extended attributes were not all restored: ${error.message}`));
  }
  for (let i = made.length - 1; i >= 0; i--) {
    const { path, stat: st } = made[i]!;
    const owner = creation.owner(st);
    if (owner) fs.lchownSync(path, owner.uid, owner.gid);
    if (st.type !== 'symlink') fs.chmodSync(path, st.mode & 0o7777);
    fs.lutimesSync(path, st.mtime, st.mtime);
  }
  if (!isRoot) warn('owners', 'not running as root: files are owned by the current user');
  return result;
}

/** Removes whatever is at `path`: a directory with everything below it, a symlink itself (never what it points to). */
function removePath(path: Buffer): void {
  if (fs.lstatSync(path, { throwIfNoEntry: false })) fs.rmSync(path, { recursive: true, force: true });
}

/**
 * Makes way for a layer's directory at `path`: true when it is merged into
 * the directory there (which keeps its other entries), false when it is to
 * be made. An opaque directory replaces what is there, except the layer's
 * root, which always merges (the kernel never reads the root's marker).
 */
function mergeDirectory(path: Buffer, top: boolean, opaque: boolean, isRoot: boolean): boolean {
  const there = fs.lstatSync(path, { throwIfNoEntry: false });
  if (!there) return false;
  if (!top && (opaque || !there.isDirectory())) {
    fs.rmSync(path, { recursive: true, force: true });
    return false;
  }
  // Its entries change before its mode is set, at the end: without root, that needs write and search permission.
  if (!isRoot && (there.mode & 0o700) !== 0o700) fs.chmodSync(path, there.mode | 0o700);
  return true;
}

/** Directories handed to one getfattr run. */
const DIRECTORIES_PER_RUN = 64;

/**
 * Removes from the directories a layer merged into the xattrs the layer's
 * directories do not have. Node has no xattr calls, and a tool's arguments
 * cannot carry every name's bytes, so the tools get the directories open,
 * as their descriptors 3 and up (/proc/self/fd/N). Without getfattr
 * there is nothing to do: setfattr, of the same package, restored none.
 */
async function dropOtherXattrs(merged: { path: Buffer; names: Set<string> }[]): Promise<void> {
  const { parseGetfattr } = await import('./xattrs.js');
  for (let i = 0; i < merged.length; i += DIRECTORIES_PER_RUN) {
    const batch = merged.slice(i, i + DIRECTORIES_PER_RUN);
    const fds: number[] = [];
    try {
      for (const { path } of batch) fds.push(fs.openSync(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW));
      const names = fds.map((_, j) => `/proc/self/fd/${3 + j}`);
      const listing = await runWithDescriptors('getfattr', ['--absolute-names', '-m', '-', ...names], fds);
      if (!listing) return;
      const found = parseGetfattr(listing);
      for (const [j, { names: keep }] of batch.entries()) {
        for (const { name } of found.get(names[j]!) ?? []) {
          if (!keep.has(name)) await runWithDescriptors('setfattr', ['-x', name, '/proc/self/fd/3'], [fds[j]!]);
        }
      }
    } finally {
      for (const fd of fds) fs.closeSync(fd);
    }
  }
}

/** Runs a tool with `fds` as its descriptors 3 and up; resolves its output, or undefined when it is not installed. */
async function runWithDescriptors(command: string, args: string[], fds: number[]): Promise<Buffer | undefined> {
  const { spawn } = await import('node:child_process');
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe', ...fds] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout!.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
    child.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? resolve(undefined) : reject(error)));
    child.on('close', (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`${command}: ${stderr.trim() || `exit ${code}`}`))));
  });
}

/** Writes regular files' contents, in the background, a bounded number at a time. */
interface ContentWriter {
  /**
   * Queues a file; true when the writer also gives it `attributes` (else the caller does, at the end).
   * `createMode`, given with `attributes`, is the mode to create it with (else 0o600).
   */
  add(entry: WalkEntry, path: Buffer, attributes: FileAttributes | undefined, createMode?: number): Promise<boolean>;
  /** Waits for everything queued; throws the first failure. */
  finish(): Promise<void>;
  close(): Promise<void>;
}

/** Told of files written: the bytes written (holes not counted), and the sizes of the files (or pieces) finished, holes included. */
type Written = (bytes: number, fileBytes: number) => void;

function contentWriter(image: SquashfsImage, options: UnpackOptions, written: Written): ContentWriter {
  const source = image.source as Partial<FileBackedSource>;
  if (typeof source.path === 'string') return new PooledWriter(image, source.path, options, written);
  return new StreamingWriter(image, options.concurrency ?? 4, written);
}

/** Files per batch sent to a worker, and bytes. */
const BATCH_FILES = 64;
const BATCH_BYTES = 4 * 1024 * 1024;
/** A file larger than this is written in pieces of this size, on several threads. */
const PIECE_BYTES = 4 * 1024 * 1024;
/** Files gathered before they are put in image order and handed out. */
const WINDOW_FILES = 512;

/**
 * For an image file: files are gathered a window at a time, put in the
 * order their data lies in the image (so each fragment block is decoded
 * once and reads go forward), and handed out in batches to worker threads
 * that read, decompress and write them, setting their attributes through
 * the open descriptor. Large files are made here at their full size and
 * written in pieces on several threads.
 */
class PooledWriter implements ContentWriter {
  private readonly pool: ExtractPool;
  private readonly running = new Set<Promise<void>>();
  private readonly pieceBlocks: number;
  private window: FileTask[] = [];
  private failure: unknown;

  constructor(
    private readonly image: SquashfsImage,
    imagePath: string,
    private readonly options: UnpackOptions,
    private readonly written: Written,
  ) {
    const { blockSize, bytesUsed, compressionId } = image.superblock;
    this.pool = new ExtractPool({ path: imagePath, blockSize, bytesUsed }, compressionId, options.threads);
    this.pieceBlocks = Math.max(1, Math.floor(PIECE_BYTES / blockSize));
  }

  async add(entry: WalkEntry, path: Buffer, attributes: FileAttributes | undefined, createMode?: number): Promise<boolean> {
    const layout = await this.image.fileLayout(entry);
    const blocks = layout.blockSizes.length;
    let settled = false;
    if (blocks <= this.pieceBlocks) {
      this.window.push({ path, layout, first: 0, end: blocks, create: true, createMode: attributes && createMode, finish: attributes });
      settled = attributes !== undefined;
    } else {
      const fd = fs.openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
      try {
        fs.ftruncateSync(fd, layout.size);
      } finally {
        fs.closeSync(fd);
      }
      for (let first = 0; first < blocks; first += this.pieceBlocks) {
        this.window.push({ path, layout, first, end: Math.min(blocks, first + this.pieceBlocks), create: false });
      }
    }
    if (this.window.length >= WINDOW_FILES) await this.flush();
    return settled;
  }

  async finish(): Promise<void> {
    await this.flush();
    await Promise.all(this.running);
    if (this.failure) throw this.failure;
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.running);
    await this.pool.close();
  }

  /** Hands out the window in image order, in batches. */
  private async flush(): Promise<void> {
    const tasks = this.window.sort((a, b) => imageOrder(a) - imageOrder(b));
    this.window = [];
    let batch: FileTask[] = [];
    let bytes = 0;
    for (const task of tasks) {
      batch.push(task);
      bytes += task.create ? task.layout.size : (task.end - task.first) * this.image.superblock.blockSize;
      if (batch.length >= BATCH_FILES || bytes >= BATCH_BYTES) {
        await this.dispatch(batch);
        batch = [];
        bytes = 0;
      }
    }
    if (batch.length > 0) await this.dispatch(batch);
  }

  private async dispatch(tasks: FileTask[]): Promise<void> {
    if (this.options.dataReady) await this.options.dataReady(Math.max(...tasks.map(dataEnd)));
    // Let the workers' replies in first (the walk itself only yields to microtasks), so the pool sees who is free.
    await new Promise(setImmediate);
    if (this.failure) throw this.failure;
    throwIfAborted(this.options.signal);
    const { blockSize } = this.image.superblock;
    // A piece ends at its last block, the file's last at its size (its tail included).
    const fileBytes = tasks.reduce((sum, t) => sum + (t.end === t.layout.blockSizes.length ? t.layout.size : t.end * blockSize) - t.first * blockSize, 0);
    const task = this.pool.run(tasks).then((bytes) => this.written(bytes, fileBytes), (error: unknown) => void (this.failure ??= error));
    this.running.add(task);
    void task.finally(() => this.running.delete(task));
  }
}

/** Where a task's data starts in the image: its fragment block for a file held in one, else its first block. */
function imageOrder(task: FileTask): number {
  const { layout } = task;
  if (layout.fragment && layout.blockSizes.length === 0) return layout.fragment.start;
  return layout.blocksStart + task.first;
}

/** Where a task's data ends in the image: past its last block, or its fragment block when it has one. */
function dataEnd(task: FileTask): number {
  const { layout } = task;
  let end = layout.blocksStart;
  for (let i = 0; i < task.end; i++) end += layout.blockSizes[i]! & DATA_SIZE_MASK;
  if (layout.fragment && task.end === layout.blockSizes.length) end = Math.max(end, layout.fragment.start + (layout.fragment.word & DATA_SIZE_MASK));
  return end;
}

/** For any other source: files read through the image (async), a few at a time, written here. */
class StreamingWriter implements ContentWriter {
  private readonly running = new Set<Promise<void>>();
  private failure: unknown;

  constructor(
    private readonly image: SquashfsImage,
    private readonly limit: number,
    private readonly written: Written,
  ) {}

  async add(entry: WalkEntry, path: Buffer): Promise<boolean> {
    if (this.failure) throw this.failure;
    const task = writeFile(this.image, entry, path, entry.stat.size).then((bytes) => this.written(bytes, entry.stat.size), (error: unknown) => void (this.failure ??= error));
    this.running.add(task);
    void task.finally(() => this.running.delete(task));
    if (this.running.size >= this.limit) await Promise.race(this.running);
    return false;
  }

  async finish(): Promise<void> {
    await Promise.all(this.running);
    if (this.failure) throw this.failure;
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.running);
  }
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
      writeAll(fd, chunk.bytes, chunk.offset);
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
