import { setMaxListeners } from 'node:events';
import fs from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { chainOf, resolveChain } from '../backup/chain.js';
import { ImageDownload } from '../backup/image-download.js';
import { checkNotExpired, type DirectoryBackup } from '../backup/handle.js';
import { checkStored, resolveBackup } from '../backup/manage.js';
import { Shadows } from '../backup/shadow.js';
import { BackupError, SquashfsError } from '../errors.js';
import { SquashfsImage } from '../squashfs/reader/image.js';
import { checkRange } from '../squashfs/reader/source.js';
import type { DownloadOptions } from '../uploader/download.js';
import type { ObjectStore } from '../uploader/store.js';
import { nodeCodecs, nodeSha256 } from './codecs.js';
import { writeAll } from './file-extractor.js';
import { readFully, type FileBackedSource } from './file-source.js';
import { defaultStoreDirectory, localStore } from './local-store.js';
import { applyLayer, unpackImage, type UnpackResult } from './unpack.js';

export interface RestoreBackupOptions {
  /** Default: the local store `createBackup` uses by default. */
  store?: ObjectStore;
  /** Where to restore (absolute; default the directory that was backed up). Its contents are replaced. */
  dir?: string;
  /** Ranged GETs at once and their size (default 8 of 2 MiB): memory stays within twice their product. */
  download?: DownloadOptions;
  signal?: AbortSignal;
  /** See RestoreProgress. */
  onProgress?: (progress: RestoreProgress) => void;
  onWarning?: (message: string) => void;
}

/**
 * `bytes` downloaded (phase 'download') or written out (phase 'extract') of
 * the `total` of the images (a delta's: its chain's). The extract phase
 * also counts `fileBytes`, the sizes of the files finished (holes
 * included), towards `fileTotal`, the bytes of every layer's files as
 * their handles record them (absent when a handle predates that record):
 * for a tree that does not change the two end equal.
 */
export interface RestoreProgress {
  phase: 'download' | 'extract';
  bytes: number;
  total: number;
  entries?: number;
  fileBytes?: number;
  fileTotal?: number;
}

/** What was written; for a delta, the sums over its chain's layers. */
export interface RestoreResult extends UnpackResult {
  dir: string;
}

/**
 * Restores a backup (handle or id) into a directory, extracting while it
 * downloads: the superblock and tables come first by range, then the data
 * region by parallel ranged GETs into a temporary file beside the target,
 * in order, hashed as it arrives; files are extracted as soon as the bytes
 * they need are there. The size and SHA-256 are checked over the whole
 * image before the extracted tree is swapped in (BACKUP_INTEGRITY_ERROR,
 * target untouched); any failure leaves the target as it was.
 *
 * A delta restores its chain: every layer's metadata and image are found
 * in the store first (BACKUP_NOT_FOUND naming what is missing, before
 * anything is written); the full backup at the bottom is extracted as
 * above, then each delta, in order, is downloaded whole and verified
 * before it is applied over the tree (see applyLayer), all before the
 * tree is swapped in.
 */
export async function restoreBackup(backup: DirectoryBackup | string, options: RestoreBackupOptions = {}): Promise<RestoreResult> {
  const store = options.store ?? localStore(defaultStoreDirectory());
  const handle = await resolveBackup(backup, { store, signal: options.signal });
  checkNotExpired(handle);
  const target = options.dir ?? handle.dir;
  if (!isAbsolute(target)) throw new BackupError('INVALID_BACKUP_CONFIG', `dir must be an absolute path, not ${JSON.stringify(target)}`);
  const failed = (error: unknown) => {
    if (error instanceof BackupError) return error;
    const aborted = error instanceof SquashfsError && error.code === 'ABORTED';
    const what = aborted || options.signal?.aborted ? 'the restore was aborted' : (error as Error).message;
    return new BackupError('BACKUP_RESTORE_ERROR', `restore of backup ${handle.id} into ${target} failed: ${what}`, { path: target, key: handle.key, cause: error });
  };

  const controller = new AbortController();
  // Every request in flight listens to it (each delta's, the full backup's ranges): more than Node's default of 10 is expected.
  setMaxListeners(64, controller.signal);
  const onAbort = () => controller.abort(options.signal!.reason);
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const temp = tempImage(target, chainOf(handle)[0]!);
  // Each layer tells of what it could not make: the same things, told once.
  const told = new Set<string>();
  const onWarning = (message: string) => {
    if (told.has(message)) return;
    told.add(message);
    options.onWarning?.(message);
  };
  let fd: number | undefined;
  let download: ImageDownload | undefined;
  let filling: Promise<void> | undefined;
  let downloadError: unknown;
  let fetching: Promise<FetchedDelta>[] = [];
  try {
    const layers = await resolveChain(handle, { store, signal: controller.signal });
    const [full, ...deltas] = layers as [DirectoryBackup, ...DirectoryBackup[]];
    // A chain's layers are all there with their sizes before anything is downloaded (one round trip: the HEADs at once);
    // a full backup alone is checked beside its first GET.
    const checked = deltas.length > 0;
    if (checked) await Promise.all(layers.map((layer) => checkStored(layer, store, controller.signal)));
    const total = layers.reduce((sum, layer) => sum + layer.size, 0);
    const fileTotal = layers.every((layer) => typeof layer.bytes === 'number') ? layers.reduce((sum, layer) => sum + layer.bytes!, 0) : undefined;
    // Bytes written out, and files' bytes finished, by the layers done.
    let written = 0;
    let filesDone = 0;
    const applied: UnpackResult[] = [];

    // What the deltas replace or remove is left out of the layers below (nothing is written twice): each delta's tables,
    // which its download fetches first, tell what.
    const opened = deltas.map(() => deferred<SquashfsImage>());
    const shadowing = deltas.length === 0 ? undefined : Promise.all(opened.map((d) => d.promise)).then((images) => Shadows.of(images, controller.signal));
    shadowing?.catch(() => undefined); // awaited below
    // The full backup's download goes first: it is the longest.
    const starting = ImageDownload.start(full, store, nodeSha256, options.download, controller.signal, checked);
    // The deltas download while the full backup does (they are small: what costs is their round trips), each into a file of its own.
    const deltaBytes = new Map<DirectoryBackup, number>();
    const reportDownload = (fullBytes: number) =>
      options.onProgress?.({ phase: 'download', bytes: fullBytes + [...deltaBytes.values()].reduce((a, b) => a + b, 0), total });
    let fullTaken = 0;
    fetching = deltas.map((delta, k) => {
      const fetched = fetchDelta(delta, tempImage(target, delta.id), store, {
        onOpened: opened[k]!.resolve,
        download: options.download,
        signal: controller.signal,
        onBytes: (bytes) => {
          deltaBytes.set(delta, bytes);
          reportDownload(fullTaken);
        },
      });
      fetched.catch((error: unknown) => opened[k]!.reject(error)); // awaited in order when applied; cleaned up in any case
      return fetched;
    });

    download = await starting;
    await mkdir(dirname(target), { recursive: true }).catch((cause: Error) => {
      throw new BackupError('BACKUP_RESTORE_ERROR', `cannot create ${dirname(target)}: ${cause.message}`, { path: target, cause });
    });
    fd = fs.openSync(temp, 'wx+', 0o600);
    const file = new GrowingFile(download, fd, temp, full.size);
    // Ranges report the data region as it comes; the whole image (tables too) counts once it is verified.
    filling = file.fill((bytes) => reportDownload((fullTaken = bytes))).then(() => reportDownload((fullTaken = full.size)));
    filling.catch((error: unknown) => {
      downloadError = error;
      controller.abort(error);
    });
    const image = await SquashfsImage.open(file, { codecs: nodeCodecs() });
    const shadows = await shadowing;
    const hiddenBelow = (layer: number) => shadows && ((names: readonly Uint8Array[], isDirectory: boolean) => shadows.hides(layer, names, isDirectory));
    const result = await unpackImage(image, target, {
      force: true,
      hidden: hiddenBelow(0),
      signal: controller.signal,
      onWarning,
      dataReady: (end) => file.ready(end),
      beforeSwap: async (staging) => {
        await filling;
        // Whether a layer applied so far had xattrs (else a merged directory has none to drop).
        let xattrsBelow = image.superblock.xattrIdTableStart !== undefined;
        for (const [k, fetched] of fetching.entries()) {
          const layer = await fetched;
          const done = written;
          const doneFiles = filesDone;
          const layerResult = await applyLayer(layer.image, staging, {
            // A small layer is written on this thread: starting extraction threads for it would cost more than it holds.
            threads: layer.image.superblock.bytesUsed < SMALL_LAYER_BYTES ? 0 : undefined,
            xattrsBelow,
            hidden: hiddenBelow(k + 1),
            signal: controller.signal,
            onWarning,
            onProgress: (p) => {
              filesDone = doneFiles + p.fileBytes;
              options.onProgress?.({ phase: 'extract', bytes: done + p.bytes, total, entries: p.entries, fileBytes: filesDone, fileTotal });
            },
          });
          applied.push(layerResult);
          written += layerResult.bytes;
          xattrsBelow ||= layer.image.superblock.xattrIdTableStart !== undefined;
        }
      },
      onProgress: (p) => {
        written = p.bytes;
        filesDone = p.fileBytes;
        options.onProgress?.({ phase: 'extract', bytes: p.bytes, total, entries: p.entries, fileBytes: p.fileBytes, fileTotal });
      },
    });
    return { ...sumResults([result, ...applied]), dir: target };
  } catch (error) {
    // An image that could not be read may be one that is not the one backed up: the whole download tells.
    const corrupt = error instanceof SquashfsError && (error.code === 'CORRUPT_IMAGE' || error.code === 'CODEC_ERROR');
    if (corrupt) await filling?.catch(() => undefined);
    // The download's own failure is the cause of whatever it made fail.
    throw failed(downloadError ?? error);
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    controller.abort(new Error('the restore ended'));
    download?.close();
    await filling?.catch(() => undefined);
    if (fd !== undefined) fs.closeSync(fd);
    await rm(temp, { force: true });
    await Promise.all(fetching.map((fetched) => fetched.then((layer) => layer.remove(), () => undefined)));
  }
}

/** Where an image of a restore is downloaded to: a hidden file beside the target. */
function tempImage(target: string, id: string): string {
  return join(dirname(target), `.${basename(target)}.restore-${id}-${process.pid}.sqfs`);
}

/** A delta layer of fewer bytes than this is applied without extraction threads. */
const SMALL_LAYER_BYTES = 8 * 1024 * 1024;

/** A delta downloaded whole, verified, and opened; `remove` closes and deletes its file. */
interface FetchedDelta {
  image: SquashfsImage;
  remove(): Promise<void>;
}

/**
 * Downloads a delta whole into `temp` (its size checked by the caller)
 * and verifies its SHA-256 (BACKUP_INTEGRITY_ERROR) before it is applied. Its tables come first and
 * are read as soon as they are there (`onOpened`: what it hides below is
 * known early); a delta that then fails its check fails the restore. On
 * failure the file is removed here; on success, by the caller (`remove`).
 */
async function fetchDelta(
  delta: DirectoryBackup,
  temp: string,
  store: ObjectStore,
  options: Pick<RestoreBackupOptions, 'download'> & { signal: AbortSignal; onBytes: (bytes: number) => void; onOpened: (image: SquashfsImage) => void },
): Promise<FetchedDelta> {
  let download: ImageDownload | undefined;
  let fd: number | undefined;
  const remove = async () => {
    download?.close();
    if (fd !== undefined) fs.closeSync(fd);
    fd = undefined;
    await rm(temp, { force: true });
  };
  try {
    download = await ImageDownload.start(delta, store, nodeSha256, options.download, options.signal, true);
    fd = fs.openSync(temp, 'wx+', 0o600);
    // Once filled, the file is an image file like any other: its reads need not wait, and the extraction workers open it by path.
    const file = new GrowingFile(download, fd, temp, delta.size);
    const filling = file.fill(options.onBytes);
    filling.catch(() => undefined); // awaited below
    const image = await SquashfsImage.open(file, { codecs: nodeCodecs() }).catch(async (error: unknown) => {
      // Tables that do not parse may be ones that are not the ones backed up: the whole download tells.
      await filling;
      throw error;
    });
    options.onOpened(image);
    await filling;
    options.onBytes(delta.size);
    return { image, remove };
  } catch (error) {
    await remove();
    throw error;
  }
}

/** The counts of the layers' results added up, and their warnings (each once). */
function sumResults(results: UnpackResult[]): UnpackResult {
  const sum: UnpackResult = { entries: 0, files: 0, directories: 0, symlinks: 0, hardLinks: 0, special: 0, bytes: 0, warnings: [] };
  for (const result of results) {
    sum.entries += result.entries;
    sum.files += result.files;
    sum.directories += result.directories;
    sum.symlinks += result.symlinks;
    sum.hardLinks += result.hardLinks;
    sum.special += result.special;
    sum.bytes += result.bytes;
    sum.warnings.push(...result.warnings.filter((warning) => !sum.warnings.includes(warning)));
  }
  return sum;
}

/**
 * The image file of a restore as it downloads: the data region is written
 * in order as its ranges come, the tables are held from the start. Reads
 * (this thread's, and the extraction workers', which open `path` again)
 * wait until the bytes they need are there.
 */
class GrowingFile implements FileBackedSource {
  private readonly waiting: { end: number; resolve: () => void; reject: (error: unknown) => void }[] = [];
  private failure: unknown;
  /** The whole image is in the file. */
  private complete = false;

  constructor(
    private readonly download: ImageDownload,
    private readonly fd: number,
    readonly path: string,
    readonly size: number,
  ) {}

  /** Takes every range, writes it in place, wakes the readers it serves; then writes the tables and verifies the image. */
  async fill(progress: (bytes: number) => void): Promise<void> {
    try {
      for (let range = await this.download.next(); range; range = await this.download.next()) {
        writeAll(this.fd, range.bytes, range.offset);
        this.wake();
        progress(this.download.taken);
      }
      writeAll(this.fd, this.download.tables, this.download.tablesStart);
      this.complete = true;
      this.wake();
      this.download.verify();
    } catch (error) {
      this.failure = error;
      for (const waiter of this.waiting.splice(0)) waiter.reject(error);
      throw error;
    }
  }

  /** Resolves once bytes [0, end) of the data region are in the file. */
  ready(end: number): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.complete || end <= this.download.taken) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiting.push({ end, resolve, reject }));
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    checkRange(offset, length, this.size, `read of ${this.path}`);
    const held = this.download.held(offset, length);
    if (held) return held;
    await this.ready(offset + length);
    const bytes = new Uint8Array(length);
    readFully(this.fd, bytes, offset, this.path);
    return bytes;
  }

  private wake(): void {
    const taken = this.download.taken;
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      const waiter = this.waiting[i]!;
      if (this.complete || waiter.end <= taken) {
        this.waiting.splice(i, 1);
        waiter.resolve();
      }
    }
  }
}

/** A promise and the means to settle it from outside. */
function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (error: unknown) => void } {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((ok, fail) => {
    resolve = ok;
    reject = fail;
  });
  promise.catch(() => undefined); // a failure is the fetch's own, awaited where it is applied
  return { promise, resolve, reject };
}
