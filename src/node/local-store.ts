import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BackupError } from '../errors.js';
import { requestPolicy, resumableStream, type RequestPolicy, type RequestPolicyOptions } from '../uploader/policy.js';
import { StoreError, type ObjectInfo, type ObjectStore } from '../uploader/store.js';

/** Where unfinished uploads live inside the store's directory (never listed). */
const UPLOADS = '.uploads';

/**
 * The store keeps what it holds to its owner, as restic and borg do: an
 * image of a tree with private files must not be readable by anyone the
 * files were not. Directories it makes are 0700, files 0600 (whatever the umask).
 */
const PRIVATE_DIR = 0o700;
const PRIVATE_FILE = 0o600;

/** Creates a new file readable and writable by its owner only. */
async function createPrivate(path: string): Promise<FileHandle> {
  const handle = await open(path, 'wx', PRIVATE_FILE);
  try {
    await handle.chmod(PRIVATE_FILE); // exactly 0600, whatever the umask took away
  } catch (error) {
    await handle.close();
    throw error;
  }
  return handle;
}

/** Errors of the moment (too many open files, a busy or interrupted call): worth another try. */
const TRANSIENT = new Set(['EAGAIN', 'EBUSY', 'EINTR', 'EMFILE', 'ENFILE']);

export interface LocalStoreOptions {
  /** How every operation is tried: retries, backoff, the stall timeout (default: 6 tries, 30 s without progress). */
  policy?: RequestPolicy | RequestPolicyOptions;
}

/** The local store used when none is given: $SQFS_STORE_DIR, else <data dir>/squashfs-ts/backups. */
export function defaultStoreDirectory(): string {
  if (process.env.SQFS_STORE_DIR) return resolve(process.env.SQFS_STORE_DIR);
  const data = process.env.XDG_DATA_HOME || join(os.homedir(), '.local', 'share');
  return join(data, 'squashfs-ts', 'backups');
}

/**
 * A store in a local directory: key "a/b" is the file <dir>/a/b. A multipart
 * upload writes its parts at their places in one temporary file, renamed
 * into place when complete; an aborted one is removed. Nothing is ever
 * visible under a key before it is whole.
 */
export function localStore(directory: string, options: LocalStoreOptions = {}): ObjectStore {
  const root = resolve(directory);
  const policy = requestPolicy(options.policy);
  const uploads = join(root, UPLOADS);
  const location = pathToFileURL(root).href;

  /** The file of a key, refusing keys that would leave the directory. */
  function pathOf(key: string): string {
    const path = resolve(root, key);
    if (!key || key.startsWith('/') || key.split('/').some((p) => p === '..' || p === '.' || p === '') || key.startsWith(`${UPLOADS}/`) || !path.startsWith(root + sep)) {
      throw new BackupError('INVALID_BACKUP_CONFIG', `"${key}" is not a key a local store takes`, { key });
    }
    return path;
  }

  function uploadFile(uploadId: string): { path: string; partSize: number } {
    const m = /^([0-9a-f-]{36})\.(\d+)$/.exec(uploadId);
    if (!m) throw new StoreError(`no such upload ${uploadId}`, { operation: 'upload', key: uploadId, status: 404, retryable: false });
    return { path: join(uploads, `${m[1]}.part`), partSize: Number(m[2]) };
  }

  /** One operation through the policy; file system errors become StoreErrors (transient for the errors of the moment). */
  function call<T>(operation: string, key: string, run: () => Promise<T>, part?: number, signal?: AbortSignal): Promise<T> {
    return policy.run({ operation, key, part }, async () => {
      try {
        return await run();
      } catch (cause) {
        if (cause instanceof StoreError || cause instanceof BackupError) throw cause;
        const code = (cause as NodeJS.ErrnoException).code;
        throw new StoreError(`${operation} ${key} in ${location}: ${(cause as Error).message}`, {
          operation, key, part, retryable: code !== undefined && TRANSIENT.has(code), code, status: code === 'ENOENT' ? 404 : undefined,
        }, cause);
      }
    }, signal);
  }

  async function writeAt(path: string, body: Uint8Array, position: number): Promise<void> {
    const handle = await open(path, 'r+');
    try {
      let done = 0;
      while (done < body.length) done += (await handle.write(body, done, body.length - done, position + done)).bytesWritten;
    } finally {
      await handle.close();
    }
  }

  /** Exactly `length` bytes of a stored object from `offset`. */
  async function readRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    const bytes = new Uint8Array(length);
    const handle = await open(pathOf(key), 'r');
    try {
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(bytes, done, length - done, offset + done);
        if (bytesRead === 0) throw new StoreError(`get ${key}: ends before ${offset + length}`, { operation: 'get', key, retryable: false });
        done += bytesRead;
      }
    } finally {
      await handle.close();
    }
    return bytes;
  }

  /** Moves a finished file into place under its key. */
  async function publish(from: string, key: string): Promise<void> {
    const to = pathOf(key);
    await mkdir(dirname(to), { recursive: true, mode: PRIVATE_DIR });
    await rename(from, to);
  }

  return {
    location,

    async audit() {
      const info = await stat(root).catch(() => undefined);
      if (!info?.isDirectory() || (info.mode & 0o077) === 0) return [];
      const mode = (info.mode & 0o777).toString(8).padStart(4, '0');
      return [`the local store ${root} can be read by other users (mode ${mode}), and so can the private files of the backups in it: chmod 700 it`];
    },

    createMultipartUpload: (key, partSize) =>
      call('create multipart upload', key, async () => {
        pathOf(key);
        await mkdir(uploads, { recursive: true, mode: PRIVATE_DIR });
        const id = randomUUID();
        await (await createPrivate(join(uploads, `${id}.part`))).close();
        return `${id}.${partSize}`;
      }),

    uploadPart: (key, uploadId, partNumber, body) =>
      call('upload part', key, async () => {
        const { path, partSize } = uploadFile(uploadId);
        await writeAt(path, body, (partNumber - 1) * partSize);
        return `"${partNumber}-${body.length}"`;
      }, partNumber),

    uploadPartCopy: (key, uploadId, partNumber, source) =>
      call('copy part', key, async () => {
        const { path, partSize } = uploadFile(uploadId);
        const bytes = await readRange(source.key, source.offset, source.length);
        await writeAt(path, bytes, (partNumber - 1) * partSize);
        return `"${partNumber}-${bytes.length}"`;
      }, partNumber),

    completeMultipartUpload: (key, uploadId, parts) =>
      call('complete multipart upload', key, async () => {
        const { path, partSize } = uploadFile(uploadId);
        const last = parts[parts.length - 1];
        const lastSize = Number(/-(\d+)"$/.exec(last?.etag ?? '')?.[1] ?? 0);
        const size = parts.length === 0 ? 0 : (parts.length - 1) * partSize + lastSize;
        if ((await stat(path)).size !== size) throw new Error(`the parts make ${(await stat(path)).size} bytes, the list says ${size}`);
        await publish(path, key);
      }),

    abortMultipartUpload: (key, uploadId) =>
      call('abort multipart upload', key, async () => {
        await unlink(uploadFile(uploadId).path).catch((e: NodeJS.ErrnoException) => {
          if (e.code !== 'ENOENT') throw e;
        });
      }),

    put: (key, body) =>
      call('put', key, async () => {
        pathOf(key);
        await mkdir(uploads, { recursive: true, mode: PRIVATE_DIR });
        const temp = join(uploads, `${randomUUID()}.put`);
        try {
          const handle = await createPrivate(temp);
          try {
            await handle.write(body);
          } finally {
            await handle.close();
          }
          await publish(temp, key);
        } catch (error) {
          await unlink(temp).catch(() => undefined);
          throw error;
        }
      }),

    head: (key) =>
      call('head', key, async (): Promise<ObjectInfo | undefined> => {
        const info = await stat(pathOf(key)).catch((e: NodeJS.ErrnoException) => {
          if (e.code === 'ENOENT') return undefined;
          throw e;
        });
        return info?.isFile() ? { key, size: info.size } : undefined;
      }),

    getRange: (key, offset, length) => call('get', key, () => readRange(key, offset, length)),

    get: (key, signal) =>
      resumableStream(policy, { operation: 'get', key }, async (offset) => {
        const path = pathOf(key);
        if (!(await stat(path).catch(() => undefined))?.isFile()) return undefined;
        return fileStream(path, offset);
      }, signal),

    async *list(prefix) {
      const found: ObjectInfo[] = [];
      async function walk(dir: string, rel: string): Promise<void> {
        const entries = await readdir(dir, { withFileTypes: true }).catch((e: NodeJS.ErrnoException) => {
          if (e.code === 'ENOENT') return [];
          throw e;
        });
        for (const entry of entries) {
          const key = rel ? `${rel}/${entry.name}` : entry.name;
          if (key === UPLOADS) continue;
          if (entry.isDirectory()) await walk(join(dir, entry.name), key);
          else if (entry.isFile() && key.startsWith(prefix)) found.push({ key, size: (await stat(join(dir, entry.name))).size });
        }
      }
      await call('list', prefix, () => walk(root, ''));
      yield* found.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    },

    delete: (key) =>
      call('delete', key, async () => {
        await rm(pathOf(key), { force: true });
      }),
  };
}

/** A file from `offset` on as a web stream, read 1 MiB at a time as the reader asks. */
function fileStream(path: string, offset: number): ReadableStream<Uint8Array> {
  const stream = fs.createReadStream(path, { start: offset, highWaterMark: 1 << 20 });
  return new ReadableStream<Uint8Array>({
    start(controller) {
      stream.on('data', (chunk) => {
        controller.enqueue(new Uint8Array(chunk as Buffer));
        if ((controller.desiredSize ?? 1) <= 0) stream.pause();
      });
      stream.on('end', () => controller.close());
      stream.on('error', (error) => controller.error(error));
    },
    pull() {
      stream.resume();
    },
    cancel() {
      stream.destroy();
    },
  }, { highWaterMark: 4 });
}
