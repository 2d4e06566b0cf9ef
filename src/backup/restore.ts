import { defaultCodecs } from '../codecs/index.js';
import type { CodecRegistry } from '../codecs/codec.js';
import { BackupError, SquashfsError } from '../errors.js';
import { sha256, type HashFactory } from '../hash.js';
import { concatBytes } from '../squashfs/bytes.js';
import { SquashfsImage } from '../squashfs/reader/image.js';
import { checkRange } from '../squashfs/reader/source.js';
import type { RandomAccessSource, WalkEntry } from '../squashfs/reader/types.js';
import type { DownloadedRange, DownloadOptions } from '../uploader/download.js';
import type { ObjectStore } from '../uploader/store.js';
import { isOpaque, isWhiteout, resolveChain } from './chain.js';
import { checkNotExpired, type DirectoryBackup } from './handle.js';
import { ImageDownload } from './image-download.js';
import { checkStored, resolveBackup } from './manage.js';
import { chainShadows } from './shadow.js';

/** The `node:fs/promises` calls a restore makes (memfs and workerd's node:fs have them). */
export interface FsWriteLike {
  mkdir(path: string, options?: { recursive?: boolean; mode?: number }): Promise<unknown>;
  writeFile(path: string, data: Uint8Array): Promise<void>;
  /** Where present, files are written a block at a time; else each is written whole. */
  appendFile?(path: string, data: Uint8Array): Promise<void>;
  symlink(target: string, path: string): Promise<void>;
  link?(existing: string, path: string): Promise<void>;
  chmod(path: string, mode: number): Promise<void>;
  utimes(path: string, atime: number, mtime: number): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  rm(path: string, options: { recursive: true; force: true }): Promise<void>;
  /** Where present, a delta's restore removes a non-directory with it (memfs's `rm` of a symlink removes its target). */
  unlink?(path: string): Promise<void>;
  lstat(path: string): Promise<{ isDirectory(): boolean }>;
}

export interface WebRestoreOptions {
  store: ObjectStore;
  /** The file system to restore into (e.g. a memfs volume's `promises`). */
  fs: FsWriteLike;
  /** Absolute; default the directory that was backed up. Its contents are replaced. */
  dir?: string;
  codecs?: CodecRegistry;
  createHash?: HashFactory;
  /** Ranged GETs at once and their size (default 4 of 4 MiB): memory stays within twice their product, plus two kept. */
  download?: DownloadOptions;
  signal?: AbortSignal;
  onWarning?: (message: string) => void;
}

export interface WebRestoreResult {
  dir: string;
  entries: number;
  files: number;
  bytes: number;
}

/**
 * Restores a backup into any `node:fs/promises`-shaped file system, in any
 * runtime, without holding the image: checks expiry, fetches the
 * superblock and tables by range, then reads the data region by parallel
 * ranged GETs, in order, extracting each file as its bytes arrive and
 * writing it a block at a time (with `appendFile`). Every byte is hashed in
 * order; size and SHA-256 are checked before the extracted tree, built in
 * a sibling directory, is swapped in with renames. Memory stays within the
 * download window plus a block or two. A delta is restored through its
 * chain: the full backup, then each layer over it in turn, each checked by
 * its own size and SHA-256. Names are written as UTF-8
 * strings; fifos, sockets and devices are skipped with a warning.
 */
export async function restoreBackup(backup: DirectoryBackup | string, options: WebRestoreOptions): Promise<WebRestoreResult> {
  const { store, fs, signal } = options;
  const handle = await resolveBackup(backup, { store, signal });
  checkNotExpired(handle);
  const target = (options.dir ?? handle.dir).replace(/(.)\/+$/, '$1');
  if (!target.startsWith('/')) throw new BackupError('INVALID_BACKUP_CONFIG', `dir must be an absolute path, not ${JSON.stringify(target)}`);
  // A delta is restored as its chain: the full backup, then each layer over it (BACKUP_NOT_FOUND names a missing one).
  const layers = await resolveChain(handle, { store, signal });
  await Promise.all(layers.map((layer) => checkStored(layer, store, signal)));

  const slash = target.lastIndexOf('/');
  const staging = `${target.slice(0, slash) || ''}/.${target.slice(slash + 1)}.restore-${handle.id}`;
  try {
    await fs.rm(staging, { recursive: true, force: true });
    let result: Omit<WebRestoreResult, 'dir'> = { entries: 0, files: 0, bytes: 0 };
    // What a delta replaces or removes is left out of the layers below it: nothing is written twice.
    const shadows = layers.length > 1 ? await chainShadows(layers.slice(1), store, options.codecs ?? defaultCodecs(), signal) : undefined;
    for (const [i, layer] of layers.entries()) {
      const hidden = shadows && ((names: readonly Uint8Array[], isDirectory: boolean) => shadows.hides(i, names, isDirectory));
      result = await restoreLayer(layer, staging, i > 0, options, hidden);
    }
    const existed = await fs.lstat(target).then(() => true, () => false);
    if (existed) await fs.rename(target, `${staging}.old`);
    await fs.rename(staging, target);
    if (existed) await fs.rm(`${staging}.old`, { recursive: true, force: true });
    return { ...result, dir: target };
  } catch (error) {
    await fs.rm(staging, { recursive: true, force: true }).catch(() => undefined);
    if (error instanceof BackupError) throw error;
    const what = error instanceof SquashfsError ? `${error.message} [${error.code}]` : (error as Error).message;
    throw new BackupError('BACKUP_RESTORE_ERROR', `restore of backup ${handle.id} into ${target} failed: ${what}`, { path: target, key: handle.key, cause: error });
  }
}

/**
 * Downloads one layer of a chain (the full backup, or a delta over what is
 * already at `root`), extracting as it arrives; checks its own size and
 * SHA-256 once it is all there. The counts are the layer's own.
 */
async function restoreLayer(layer: DirectoryBackup, root: string, overlay: boolean, options: WebRestoreOptions, hidden?: Hidden): Promise<Omit<WebRestoreResult, 'dir'>> {
  const download = await ImageDownload.start(layer, options.store, options.createHash ?? sha256, { ...WEB_DOWNLOAD, ...options.download }, options.signal);
  const window = new DownloadWindow(download, layer.size);
  try {
    const image = await SquashfsImage.open(window, { codecs: options.codecs ?? defaultCodecs() });
    const result = await extract(image, options.fs, root, overlay, options, hidden);
    await window.finish();
    return result;
  } catch (error) {
    // An image that could not be read may be one that is not the one backed up: the whole download tells.
    if (error instanceof SquashfsError && (error.code === 'CORRUPT_IMAGE' || error.code === 'CODEC_ERROR')) await window.finish();
    throw error;
  } finally {
    await window.close();
  }
}

/** Entries a layer above replaces or removes (see Shadows). */
type Hidden = (names: readonly Uint8Array[], isDirectory: boolean) => boolean;

/** A Worker has 128 MB: the fs-shaped restore downloads 4 ranges of 4 MiB at a time unless told otherwise. */
const WEB_DOWNLOAD = { concurrency: 4, rangeSize: 4 * 1024 * 1024 };

/** Ranges of the data region kept once taken, for reads a little behind the newest (a fragment block just written before). */
const KEEP_RANGES = 2;

/**
 * The image as a restore reads it, holding no copy: the superblock and
 * tables are held; ranges of the data region are taken in order as reads
 * reach them (the download fetches a few ahead), and the last few are kept.
 * A read further behind is fetched from the store by range.
 */
class DownloadWindow implements RandomAccessSource {
  private readonly kept: DownloadedRange[] = [];
  private taking: Promise<void> = Promise.resolve();

  constructor(
    private readonly download: ImageDownload,
    readonly size: number,
  ) {}

  async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    checkRange(offset, length, this.size, 'read of the backup');
    const held = this.download.held(offset, length);
    if (held) return held;
    const { tablesStart } = this.download;
    if (offset + length > tablesStart) {
      // Across the end of the data region: its two sides.
      return concatBytes([await this.read(offset, tablesStart - offset, signal), this.download.held(tablesStart, offset + length - tablesStart)!]);
    }
    await this.takeUntil(offset, offset + length);
    return this.fromKept(offset, length) ?? this.download.store.getRange(this.download.backup.key, offset, length, signal);
  }

  /** Takes the rest of the data region, then checks size and SHA-256 (BACKUP_INTEGRITY_ERROR). */
  async finish(): Promise<void> {
    await this.takeUntil(this.download.tablesStart, this.download.tablesStart);
    this.download.verify();
  }

  async close(): Promise<void> {
    this.kept.length = 0;
    this.download.close();
  }

  /**
   * Takes ranges in order (one taker at a time) until [0, end) is taken,
   * for a read from `from`: older ranges are let go once there are more
   * than a few and they lie wholly before it.
   */
  private takeUntil(from: number, end: number): Promise<void> {
    this.taking = this.taking.then(async () => {
      while (this.download.taken < end) {
        const range = await this.download.next();
        if (!range) return;
        this.kept.push(range);
        while (this.kept.length > KEEP_RANGES && this.kept[0]!.offset + this.kept[0]!.bytes.length <= from) this.kept.shift();
      }
    });
    return this.taking;
  }

  /** The bytes from the kept ranges, when they hold all of them. */
  private fromKept(offset: number, length: number): Uint8Array | undefined {
    const first = this.kept.findIndex((r) => r.offset <= offset && offset < r.offset + r.bytes.length);
    if (first < 0) return undefined;
    const out = new Uint8Array(length);
    let filled = 0;
    for (let i = first; i < this.kept.length && filled < length; i++) {
      const range = this.kept[i]!;
      const from = offset + filled - range.offset;
      if (from < 0 || from >= range.bytes.length) return undefined;
      const piece = range.bytes.subarray(from, from + length - filled);
      out.set(piece, filled);
      filled += piece.length;
    }
    return filled === length ? out : undefined;
  }
}

/**
 * Writes an image's entries under `root`. With `overlay`, the image is a
 * delta applied over what `root` holds (see chain.ts): a whiteout removes
 * its name; a directory merges with the one there unless it is opaque;
 * anything else replaces what is there.
 */
async function extract(image: SquashfsImage, fs: FsWriteLike, root: string, overlay: boolean, options: WebRestoreOptions, hidden?: Hidden): Promise<Omit<WebRestoreResult, 'dir'>> {
  const result = { entries: 0, files: 0, bytes: 0 };
  const settle: { path: string; mode: number; mtime: number }[] = [];
  const firstPath = new Map<number, string>();
  let skipped = false;
  for await (const entry of image.walk({ signal: options.signal })) {
    const st = entry.stat;
    if (hidden?.(entry.names, st.type === 'directory')) continue; // a layer above replaces or removes it
    const path = entry.path === '' ? root : `${root}/${entry.path}`;
    result.entries++;
    if (overlay && (await replaces(image, entry, fs, path))) continue;
    if (st.type !== 'directory' && st.nlink > 1) {
      const first = firstPath.get(st.inode);
      if (first !== undefined && fs.link) {
        await fs.link(first, path);
        continue;
      }
      firstPath.set(st.inode, path);
    }
    switch (st.type) {
      case 'directory':
        await fs.mkdir(path, { recursive: entry.path === '' || overlay, mode: 0o700 });
        break;
      case 'file':
        result.bytes += await writeFile(image, entry, fs, path);
        result.files++;
        break;
      case 'symlink':
        await fs.symlink(new TextDecoder().decode(await image.readlink(entry)), path);
        continue; // links keep their own mode and time
      default:
        if (!skipped) options.onWarning?.(`${st.type}s cannot be made here, skipped (first: ${entry.path})`);
        skipped = true;
        continue;
    }
    settle.push({ path, mode: st.mode & 0o7777, mtime: st.mtime });
  }
  for (let i = settle.length - 1; i >= 0; i--) {
    const { path, mode, mtime } = settle[i]!;
    await fs.chmod(path, mode);
    await fs.utimes(path, mtime, mtime);
  }
  return result;
}

/**
 * Makes room for a delta's entry: removes what is at `path` unless the
 * entry is a directory that merges with a directory there. True for a
 * whiteout, which is then done.
 */
async function replaces(image: SquashfsImage, entry: WalkEntry, fs: FsWriteLike, path: string): Promise<boolean> {
  const { stat } = entry;
  const there = await fs.lstat(path).catch(() => undefined);
  // A directory merges unless opaque; the root always does (the kernel never reads the root's marker).
  const merges = stat.type === 'directory' && there?.isDirectory() && (entry.path === '' || !(stat.hasXattrs && isOpaque(await image.xattrs(entry))));
  if (there && !merges) {
    if (there.isDirectory() || !fs.unlink) await fs.rm(path, { recursive: true, force: true });
    else await fs.unlink(path);
  }
  return isWhiteout(stat);
}

/** Holes are written as zeros this much at a time. */
const ZEROS = new Uint8Array(64 * 1024);

/** Writes a file a block at a time (appendFile), or whole where the file system has no appendFile; returns its size. */
async function writeFile(image: SquashfsImage, entry: WalkEntry, fs: FsWriteLike, path: string): Promise<number> {
  if (!fs.appendFile) {
    const bytes = await image.readFile(entry);
    await fs.writeFile(path, bytes);
    return bytes.length;
  }
  await fs.writeFile(path, new Uint8Array(0));
  let size = 0;
  for await (const chunk of image.readChunks(entry)) {
    if (chunk.bytes) {
      await fs.appendFile(path, chunk.bytes);
      size += chunk.bytes.length;
      continue;
    }
    for (let left = chunk.hole; left > 0; left -= ZEROS.length) await fs.appendFile(path, ZEROS.subarray(0, Math.min(left, ZEROS.length)));
    size += chunk.hole;
  }
  return size;
}
