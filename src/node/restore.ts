import fs from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { ImageDownload } from '../backup/image-download.js';
import { checkNotExpired, type DirectoryBackup } from '../backup/handle.js';
import { resolveBackup } from '../backup/manage.js';
import { BackupError, SquashfsError } from '../errors.js';
import { SquashfsImage } from '../squashfs/reader/image.js';
import { checkRange } from '../squashfs/reader/source.js';
import type { DownloadOptions } from '../uploader/download.js';
import type { ObjectStore } from '../uploader/store.js';
import { nodeCodecs, nodeSha256 } from './codecs.js';
import { writeAll } from './file-extractor.js';
import { readFully, type FileBackedSource } from './file-source.js';
import { defaultStoreDirectory, localStore } from './local-store.js';
import { unpackImage, type UnpackResult } from './unpack.js';

export interface RestoreBackupOptions {
  /** Default: the local store `createBackup` uses by default. */
  store?: ObjectStore;
  /** Where to restore (absolute; default the directory that was backed up). Its contents are replaced. */
  dir?: string;
  /** Ranged GETs at once and their size (default 8 of 2 MiB): memory stays within twice their product. */
  download?: DownloadOptions;
  signal?: AbortSignal;
  /** `bytes` downloaded (phase 'download') or written out (phase 'extract') of the image's `total`. */
  onProgress?: (progress: { phase: 'download' | 'extract'; bytes: number; total: number; entries?: number }) => void;
  onWarning?: (message: string) => void;
}

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
  const onAbort = () => controller.abort(options.signal!.reason);
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const temp = join(dirname(target), `.${basename(target)}.restore-${handle.id}-${process.pid}.sqfs`);
  let fd: number | undefined;
  let download: ImageDownload | undefined;
  let filling: Promise<void> | undefined;
  let downloadError: unknown;
  try {
    download = await ImageDownload.start(handle, store, nodeSha256, options.download, controller.signal);
    await mkdir(dirname(target), { recursive: true }).catch((cause: Error) => {
      throw new BackupError('BACKUP_RESTORE_ERROR', `cannot create ${dirname(target)}: ${cause.message}`, { path: target, cause });
    });
    fd = fs.openSync(temp, 'wx+', 0o600);
    const file = new GrowingFile(download, fd, temp, handle.size);
    filling = file.fill((bytes) => options.onProgress?.({ phase: 'download', bytes, total: handle.size }));
    filling.catch((error: unknown) => {
      downloadError = error;
      controller.abort(error);
    });
    const image = await SquashfsImage.open(file, { codecs: nodeCodecs() });
    const result = await unpackImage(image, target, {
      force: true,
      signal: controller.signal,
      onWarning: options.onWarning,
      dataReady: (end) => file.ready(end),
      beforeSwap: () => filling!,
      onProgress: (p) => options.onProgress?.({ phase: 'extract', bytes: p.bytes, total: handle.size, entries: p.entries }),
    });
    return { ...result, dir: target };
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
  }
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
