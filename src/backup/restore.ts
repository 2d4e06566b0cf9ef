import { defaultCodecs } from '../codecs/index.js';
import type { CodecRegistry } from '../codecs/codec.js';
import { BackupError, SquashfsError } from '../errors.js';
import { sha256, type HashFactory } from '../hash.js';
import { concatBytes } from '../squashfs/bytes.js';
import { SquashfsImage } from '../squashfs/reader/image.js';
import { bytesSource } from '../squashfs/reader/source.js';
import type { ObjectStore } from '../uploader/store.js';
import { checkIntegrity, checkNotExpired, SuperblockLastHasher, type DirectoryBackup } from './handle.js';
import { checkStored, resolveBackup } from './manage.js';

/** The `node:fs/promises` calls a restore makes (memfs and workerd's node:fs have them). */
export interface FsWriteLike {
  mkdir(path: string, options?: { recursive?: boolean; mode?: number }): Promise<unknown>;
  writeFile(path: string, data: Uint8Array): Promise<void>;
  symlink(target: string, path: string): Promise<void>;
  link?(existing: string, path: string): Promise<void>;
  chmod(path: string, mode: number): Promise<void>;
  utimes(path: string, atime: number, mtime: number): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  rm(path: string, options: { recursive: true; force: true }): Promise<void>;
  lstat(path: string): Promise<unknown>;
}

export interface WebRestoreOptions {
  store: ObjectStore;
  /** The file system to restore into (e.g. a memfs volume's `promises`). */
  fs: FsWriteLike;
  /** Absolute; default the directory that was backed up. Its contents are replaced. */
  dir?: string;
  codecs?: CodecRegistry;
  createHash?: HashFactory;
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
 * runtime: checks expiry, downloads the image (into memory: a Worker's
 * backups are small) while hashing it, checks size and SHA-256, extracts
 * into a sibling directory and swaps it in with renames. Names are written
 * as UTF-8 strings; fifos, sockets and devices are skipped with a warning.
 */
export async function restoreBackup(backup: DirectoryBackup | string, options: WebRestoreOptions): Promise<WebRestoreResult> {
  const { store, fs, signal } = options;
  const handle = await resolveBackup(backup, { store, signal });
  checkNotExpired(handle);
  const target = (options.dir ?? handle.dir).replace(/(.)\/+$/, '$1');
  if (!target.startsWith('/')) throw new BackupError('INVALID_BACKUP_CONFIG', `dir must be an absolute path, not ${JSON.stringify(target)}`);
  await checkStored(handle, store, signal);

  const stream = await store.get(handle.key, signal);
  if (!stream) throw new BackupError('BACKUP_NOT_FOUND', `backup ${handle.id}: no image at ${store.location}/${handle.key}`, { key: handle.key });
  const hasher = new SuperblockLastHasher((options.createHash ?? sha256)());
  const chunks: Uint8Array[] = [];
  try {
    for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
      hasher.update(chunk);
      chunks.push(chunk);
      if (hasher.size > handle.size) break;
    }
  } catch (cause) {
    throw new BackupError('BACKUP_RESTORE_ERROR', `download of ${store.location}/${handle.key} failed: ${(cause as Error).message}`, { key: handle.key, cause });
  }
  checkIntegrity(handle, hasher);

  const slash = target.lastIndexOf('/');
  const staging = `${target.slice(0, slash) || ''}/.${target.slice(slash + 1)}.restore-${handle.id}`;
  try {
    const image = await SquashfsImage.open(bytesSource(concatBytes(chunks)), { codecs: options.codecs ?? defaultCodecs() });
    await fs.rm(staging, { recursive: true, force: true });
    const result = await extract(image, fs, staging, options);
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

async function extract(image: SquashfsImage, fs: FsWriteLike, root: string, options: WebRestoreOptions): Promise<Omit<WebRestoreResult, 'dir'>> {
  const result = { entries: 0, files: 0, bytes: 0 };
  const settle: { path: string; mode: number; mtime: number }[] = [];
  const firstPath = new Map<number, string>();
  let skipped = false;
  for await (const entry of image.walk({ signal: options.signal })) {
    const path = entry.path === '' ? root : `${root}/${entry.path}`;
    const st = entry.stat;
    result.entries++;
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
        await fs.mkdir(path, { recursive: entry.path === '', mode: 0o700 });
        break;
      case 'file': {
        const bytes = await image.readFile(entry);
        await fs.writeFile(path, bytes);
        result.files++;
        result.bytes += bytes.length;
        break;
      }
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
