import { checkCanCompress, codecByName, type CodecRegistry } from '../codecs/codec.js';
import { BackupError, SquashfsError } from '../errors.js';
import { toHex, type HashFactory } from '../hash.js';
import { decodeUtf8Lossy } from '../squashfs/bytes.js';
import type { ImageSink, StoredBlock } from '../squashfs/writer/output.js';
import { writeImage, type ReusedRegion, type WriterOptions } from '../squashfs/writer/writer.js';
import { excludePatterns, type ExcludeFilter } from '../source/exclude.js';
import { fsSource, type FsPromisesLike } from '../source/fs-source.js';
import { S_IFDIR, S_IFMT, type SourcePath, type TreeSource } from '../source/source.js';
import type { ObjectStore } from '../uploader/store.js';
import { StreamUpload } from '../uploader/stream-upload.js';
import { DEFAULT_BLOCK_SIZE } from '../squashfs/constants.js';
import { chainOf, DEFAULT_MAX_CHAIN, resolveChain } from './chain.js';
import { deltaSource, deltaXattrs, mergedTree, planDelta, TreeWalk, type DeltaPlan } from './delta.js';
import { gitignoreFilter } from './gitignore.js';
import { RegionHashing } from './reused-region.js';
import { encodeSums, hashingSource, parseSums, sumsKey, type Sums } from './sums.js';
import { DEFAULT_TTL, imageKey, metadataKey, SuperblockLastHasher, type DirectoryBackup } from './handle.js';
import { listBackups, openLayer, resolveBackup } from './manage.js';

export type BackupAlgorithm = 'zstd' | 'gzip' | 'lz4' | 'xz';
export type BackupCompression = BackupAlgorithm | { algorithm: BackupAlgorithm; level?: number };

/** Each algorithm's levels: default, least, most (lz4 3-12 is high compression; xz's are its presets). */
const LEVELS: Record<BackupAlgorithm, readonly [number, number, number]> = { zstd: [3, 1, 22], gzip: [9, 1, 9], lz4: [1, 1, 12], xz: [6, 0, 9] };

export interface BackupProgress {
  /**
   * 'walk' (the tree's metadata), 'data' (files read and compressed),
   * 'tables' (the image's tables), 'upload' (the image is written; the last
   * parts are being acknowledged), 'done' (the handle is stored).
   */
  phase: 'walk' | 'data' | 'tables' | 'upload' | 'done';
  entries: number;
  files: number;
  /** Source bytes read: ends at `totalBytes` when no file changes (a file read twice to find duplicates counts once). */
  bytesRead: number;
  /** Image bytes produced. */
  bytesWritten: number;
  /** Image bytes the store has acknowledged. */
  bytesUploaded: number;
  /** Bytes of all regular files, known after the walk. */
  totalBytes: number;
}

export interface CreateBackupOptions {
  /** Absolute path of an existing directory. */
  dir: string;
  /** At most 256 characters, no control characters (default: the directory's name). */
  name?: string;
  /** Seconds the backup is kept (> 0; default 3 days). */
  ttl?: number;
  /** Where the image goes (Node default: a local directory store). */
  store?: ObjectStore;
  /** The source file system, `node:fs/promises`-shaped (memfs works); Node default: the real one. */
  fs?: FsPromisesLike;
  /**
   * Default zstd (level 3), where it can compress: the Node and workerd
   * entries bring its WASM; elsewhere (a browser bundle) the default is gzip
   * and the handle's warnings say why. Asked for, zstd fails where it cannot.
   */
  compression?: BackupCompression;
  /** gitignore-style patterns of entries to leave out. */
  excludes?: string[];
  /** Also leave out what git would: what every .gitignore in the tree lists (each for its own directory), and .git. */
  gitignore?: boolean;
  /** Symlinks are stored, never followed; one that points outside `dir` is reported, or with 'reject-outside' refused. */
  symlinks?: 'keep' | 'reject-outside';
  /** Data block size (default 128 KiB). */
  blockSize?: number;
  /** Codecs to use (e.g. zstd made from a precompiled WebAssembly.Module in a Worker). */
  codecs?: CodecRegistry;
  /**
   * Make an incremental backup: a delta over this backup (a handle, an id,
   * or 'latest': the newest live backup of the same `dir` in the store).
   * The delta holds only what changed against the chain's merged tree, as
   * an overlayfs layer (see chain.ts). Without it, a full backup.
   */
  base?: DirectoryBackup | string;
  /** Deltas a chain may have (default 8): when this one would be one too many, a full backup is made and its warnings say so. */
  maxChain?: number;
  /**
   * How a delta finds what changed: 'metadata' (default; type, size,
   * mtime, mode, owner, symlink target, device, xattrs, as rsync's quick
   * check) or 'content', which also hashes each file whose metadata match
   * and compares it with the checksum its chain recorded (every layer must
   * have been made with `checksums`). A content change that kept the size
   * and mtime is found only so.
   */
  compare?: 'metadata' | 'content';
  /**
   * Record the SHA-256 of every file in `<id>.sha256` beside the image
   * (sha256sum format; the handle's `checksums`). Costs a hash of every
   * file read; on by default with `compare: 'content'`, so the next delta
   * can compare by content too.
   */
  checksums?: boolean;
  /** Upload tuning: part size (default from the tree's size), parts in flight (default 8). Retries are the store's (its `policy`). */
  upload?: { partSize?: number; concurrency?: number };
  signal?: AbortSignal;
  onProgress?: (progress: BackupProgress) => void;
}

/** Compression off the calling thread (see WriterOptions for each member). */
export interface BackupCompressor {
  storeBlock: (data: Uint8Array, level: number) => Promise<StoredBlock>;
  blockBuffer?: (length: number) => Uint8Array;
  storeFileBlock?: (fd: number, position: number, length: number, level: number, digest?: boolean) => Promise<StoredBlock>;
  hashFileBlock?: (fd: number, position: number, length: number) => Promise<Uint8Array>;
  maxInFlight: number;
  close(): Promise<void>;
}

/** What a runtime supplies: defaults and primitives (Node: real fs, local store, worker threads). */
export interface BackupRuntime {
  defaultStore?(): Promise<ObjectStore>;
  defaultSource?(): TreeSource;
  codecs(): Promise<CodecRegistry>;
  createHash: HashFactory;
  /** A compressor off the calling thread, where the runtime has one. */
  compressor?(compression: string, blockSize: number): Promise<BackupCompressor | undefined>;
  /** Extended attributes of the tree, where the runtime can read them. */
  xattrs?(dir: string): Promise<WriterOptions['xattrs']>;
  randomUUID(): string;
}

const MAX_NAME = 256;

export interface Config {
  dir: string;
  name: string;
  ttl: number;
  algorithm: BackupAlgorithm;
  level: number;
  maxChain: number;
}

/** Checks options; every problem is INVALID_BACKUP_CONFIG saying which option and why. */
export function checkOptions(options: CreateBackupOptions): Config {
  const invalid = (message: string) => new BackupError('INVALID_BACKUP_CONFIG', message);
  if (!options || typeof options !== 'object') throw invalid('createBackup takes an options object');
  const { dir } = options;
  if (typeof dir !== 'string' || !dir.startsWith('/')) throw invalid(`dir must be an absolute path, not ${JSON.stringify(dir)}`);
  const clean = dir.length > 1 ? dir.replace(/\/+$/, '') : dir;
  const name = options.name ?? (clean.split('/').pop() || '/');
  if (typeof name !== 'string' || name.length > MAX_NAME) throw invalid(`name must be a string of at most ${MAX_NAME} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) throw invalid(`name ${JSON.stringify(name)} contains control characters`);
  const ttl = options.ttl ?? DEFAULT_TTL;
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl <= 0) throw invalid(`ttl must be a positive number of seconds, not ${ttl}`);
  const compression = options.compression ?? 'zstd';
  const algorithm = typeof compression === 'string' ? compression : compression?.algorithm;
  if (typeof algorithm !== 'string' || !Object.hasOwn(LEVELS, algorithm)) {
    throw invalid(`compression must be 'zstd', 'gzip', 'lz4' or 'xz', not ${JSON.stringify(algorithm)}`);
  }
  const [defaultLevel, least, most] = LEVELS[algorithm as BackupAlgorithm];
  const level = (typeof compression === 'object' ? compression.level : undefined) ?? defaultLevel;
  if (!Number.isInteger(level) || level < least || level > most) throw invalid(`${algorithm} level must be ${least}..${most}, not ${level}`);
  if (options.symlinks !== undefined && options.symlinks !== 'keep' && options.symlinks !== 'reject-outside') {
    throw invalid(`symlinks must be 'keep' or 'reject-outside', not ${JSON.stringify(options.symlinks)}`);
  }
  if (options.compare !== undefined && options.compare !== 'metadata' && options.compare !== 'content') {
    throw invalid(`compare must be 'metadata' or 'content', not ${JSON.stringify(options.compare)}`);
  }
  const maxChain = options.maxChain ?? DEFAULT_MAX_CHAIN;
  if (!Number.isInteger(maxChain) || maxChain < 0) throw invalid(`maxChain must be a whole number of deltas (0 or more), not ${maxChain}`);
  const base = options.base;
  if (base !== undefined && typeof base !== 'string' && (typeof base !== 'object' || base === null)) throw invalid(`base must be a backup handle, an id or 'latest'`);
  return { dir: clean, name, ttl, algorithm, level, maxChain };
}

/** One backup of a directory at a time, in call order; a failed one does not block the next. */
const queues = new Map<string, Promise<unknown>>();

function serialized<T>(dir: string, run: () => Promise<T>): Promise<T> {
  const previous = queues.get(dir) ?? Promise.resolve();
  const next = previous.catch(() => undefined).then(run);
  const tail = next.catch(() => undefined);
  queues.set(dir, tail);
  void tail.then(() => {
    if (queues.get(dir) === tail) queues.delete(dir);
  });
  return next;
}

/** createBackup on a given runtime (the package's entries bind their own). */
export function createBackupWith(runtime: BackupRuntime, options: CreateBackupOptions): Promise<DirectoryBackup> {
  let config: Config;
  try {
    config = checkOptions(options);
  } catch (error) {
    return Promise.reject(error);
  }
  return serialized(config.dir, () => create(runtime, config, options));
}

async function create(runtime: BackupRuntime, asked: Config, options: CreateBackupOptions): Promise<DirectoryBackup> {
  const { dir } = asked;
  const store = options.store ?? (await runtime.defaultStore?.());
  if (!store) throw new BackupError('INVALID_BACKUP_CONFIG', 'no store configured: pass `store` (s3Store, r2Store, localStore)');
  const base = options.fs ? fsSource(options.fs) : runtime.defaultSource?.();
  if (!base) throw new BackupError('INVALID_BACKUP_CONFIG', 'no file system to read: pass `fs` (node:fs/promises-shaped, e.g. memfs)');
  const failed = (message: string, cause?: unknown, path?: string) => new BackupError('BACKUP_CREATE_ERROR', message, { cause, path });

  const top = await base.lstat(dir).catch((cause: unknown) => {
    const missing = cause instanceof SquashfsError && cause.code === 'SOURCE_NOT_FOUND';
    throw failed(`${dir} ${missing ? 'does not exist' : `cannot be read: ${(cause as Error).message}`}`, cause, dir);
  });
  if ((top.mode & S_IFMT) !== S_IFDIR) throw failed(`${dir} is not a directory`, undefined, dir);

  const warnings: string[] = [...((await store.audit?.()) ?? [])];
  const source = watchSymlinks(base, dir, options.symlinks ?? 'keep', warnings);
  const exclude = excludeFilter(base, dir, options);
  // The xattr lookup (Node: one getfattr run) starts now; the writer needs it only at the end.
  const xattrs = options.fs ? undefined : runtime.xattrs?.(dir);
  xattrs?.catch(() => undefined); // awaited below, unless a failure comes first
  // The codecs load (zstd's WASM compiles) while a delta's chain is fetched.
  const codecsLoading = Promise.resolve(options.codecs ?? runtime.codecs());
  codecsLoading.catch(() => undefined); // awaited below
  const id = runtime.randomUUID();
  let delta: { base: DirectoryBackup; plan: DeltaPlan } | undefined;
  try {
    delta = await planIncremental(store, source, asked, options, exclude, xattrs, codecsLoading, warnings, runtime.createHash);
  } catch (error) {
    // A base that is missing, expired or damaged keeps its own code (BACKUP_NOT_FOUND, BACKUP_EXPIRED, ...).
    throw error instanceof BackupError ? error : asCreateError(error, dir, store, imageKey(id));
  }
  const codecs = await codecsLoading;
  const config = compressionHere(asked, options, codecs, warnings);
  const packed = delta ? deltaSource(source, delta.plan) : source;
  const sums: Sums | undefined = options.checksums ?? options.compare === 'content' ? new Map() : undefined;
  return storeImage(runtime, store, config, options, {
    id, codecs, warnings, sums,
    // A small delta is compressed on this thread: starting the compression threads would cost more.
    inline: delta !== undefined && delta.plan.bytes < INLINE_DELTA_BYTES,
    source: sums ? hashingSource(packed, dir, runtime.createHash, sums) : packed,
    root: dir,
    // A delta's plan has applied the filter already (a whiteout of a newly excluded name must not be left out).
    exclude: delta ? undefined : exclude,
    xattrs: delta ? deltaXattrs(delta.plan, await xattrs) : await xattrs,
    chain: delta && { base: delta.base.id, chain: [...chainOf(delta.base), id] },
  });
}

/**
 * The default compression, zstd, where it can compress with these codecs;
 * else gzip, and the warnings say why. A compression the options name is
 * kept (and fails later where it cannot compress).
 */
function compressionHere(config: Config, options: CreateBackupOptions, codecs: CodecRegistry, warnings: string[]): Config {
  if (options.compression !== undefined || config.algorithm !== 'zstd') return config;
  try {
    checkCanCompress(codecByName(codecs, 'zstd'), config.level);
    return config;
  } catch (error) {
    warnings.push(`gzip was used: zstd, the default, cannot compress here: ${(error as Error).message}`);
    return checkOptions({ ...options, compression: 'gzip' });
  }
}

/** What `storeImage` packs, and what the handle says of it. */
export interface Packing {
  id: string;
  codecs: CodecRegistry;
  source: TreeSource;
  /** The path in `source` to pack. */
  root: SourcePath;
  exclude?: ExcludeFilter;
  xattrs?: WriterOptions['xattrs'];
  warnings: string[];
  /** A delta's place in its chain. */
  chain?: { base: string; chain: string[] };
  /** The files' checksums as the source records them while the writer reads: stored beside the image once it is. */
  sums?: Sums;
  /** Compress on this thread, without the runtime's compressor. */
  inline?: boolean;
  /** A region of a stored image (`key`) taken in whole, copied on the store's side where it can (see WriterOptions.reuse). */
  reuse?: { key: string; region: ReusedRegion };
}

/** A delta holding fewer bytes of files than this is compressed on the calling thread. */
const INLINE_DELTA_BYTES = 4 * 1024 * 1024;

/**
 * Packs a tree and streams the image into the store (multipart, hashed on
 * the way), then stores the handle beside it. The common end of a backup
 * and of a compaction; `config.dir` is the directory the handle names.
 */
export async function storeImage(runtime: BackupRuntime, store: ObjectStore, config: Config, options: CreateBackupOptions, packing: Packing): Promise<DirectoryBackup> {
  const { dir } = config;
  const { id, codecs, warnings } = packing;
  const key = imageKey(id);
  const failed = (message: string, cause?: unknown, path?: string) => new BackupError('BACKUP_CREATE_ERROR', message, { cause, path });
  const compressor = packing.inline ? undefined : await runtime.compressor?.(config.algorithm, options.blockSize ?? DEFAULT_BLOCK_SIZE);
  const hasher = new SuperblockLastHasher(runtime.createHash());
  const progress: BackupProgress = { phase: 'walk', entries: 0, files: 0, bytesRead: 0, bytesWritten: 0, bytesUploaded: 0, totalBytes: 0 };
  const report = () => options.onProgress?.({ ...progress });
  let expected = 0;
  let upload: StreamUpload | undefined;
  let head: Uint8Array | undefined;
  /** The upload, made once the walk has told the size (part sizes are picked from it). */
  const uploading = () =>
    (upload ??= new StreamUpload({
      store, key, expectedSize: expected, signal: options.signal, ...options.upload,
      onProgress: (p) => {
        progress.bytesUploaded = p.bytesAcknowledged;
        report();
      },
    }));
  const hashing = new RegionHashing((bytes) => hasher.update(bytes), store, options.signal);
  const { reuse } = packing;
  const sink: ImageSink = {
    write: async (chunk) => {
      await hashing.write(chunk);
      await uploading().write(chunk);
    },
    finish: async (superblock) => {
      head = superblock.slice();
      upload!.patchHead(head); // part 1 may go up now, while the reused region is still being hashed
      await hashing.settle();
    },
    reuse: reuse && (async (offset, length) => {
      hashing.reuse(reuse.key, offset, length);
      await uploading().copy({ key: reuse.key, offset, length });
    }),
  };

  // The reused region is fetched for the hash from the start, while the tree is walked.
  if (reuse) hashing.prefetch(reuse.key, reuse.region.offset, reuse.region.length);
  let result;
  try {
    result = await writeImage(packing.source, packing.root, sink, {
      compression: config.algorithm,
      level: config.level,
      blockSize: options.blockSize,
      codecs,
      createHash: runtime.createHash,
      storeBlock: compressor?.storeBlock,
      blockBuffer: compressor?.blockBuffer,
      storeFileBlock: compressor?.storeFileBlock,
      hashFileBlock: compressor?.hashFileBlock,
      maxInFlight: compressor?.maxInFlight,
      exclude: packing.exclude,
      xattrs: packing.xattrs,
      reuse: reuse?.region,
      signal: options.signal,
      onProgress: (p) => {
        // Room for the metadata on top of the data: part sizes are picked from this.
        if (p.phase === 'data' && !upload) {
          expected = p.totalBytes + p.entries * 512 + (1 << 20);
          uploading().prepare(); // the multipart upload is created while the first parts fill
        }
        // The writer is done once the superblock is out: what is left is the upload's last parts.
        Object.assign(progress, { phase: p.phase === 'done' ? 'upload' : p.phase, entries: p.entries, files: p.files, bytesRead: p.bytesRead, bytesWritten: p.bytesWritten, totalBytes: p.totalBytes });
        report();
      },
    });
    await upload!.complete();
  } catch (error) {
    await upload?.abort(error);
    throw asCreateError(error, dir, store, key);
  } finally {
    hashing.cancel();
    await compressor?.close();
  }

  const now = Date.now();
  const backup: DirectoryBackup = {
    format: 'squashfs-4.0',
    id,
    name: config.name,
    dir,
    key,
    size: result.imageSize,
    sha256: toHex(hasher.digest(head)),
    compression: config.algorithm,
    level: config.level,
    blockSize: result.blockSize,
    createdAt: new Date(now).toISOString(),
    expiresAt: new Date(now + config.ttl * 1000).toISOString(),
    files: result.files,
    bytes: result.totalBytes,
    entries: result.inodes,
    warnings,
    ...packing.chain,
    ...(packing.sums && { checksums: sumsKey(id) }),
  };
  try {
    // The checksums before the handle: a listed backup has all its objects.
    if (packing.sums) await store.put(sumsKey(id), encodeSums(packing.sums), options.signal);
    await store.put(metadataKey(id), new TextEncoder().encode(`${JSON.stringify(backup, null, 2)}\n`), options.signal);
  } catch (error) {
    await store.delete(key).catch(() => undefined);
    if (packing.sums) await store.delete(sumsKey(id)).catch(() => undefined);
    throw failed(`the backup's metadata could not be stored at ${store.location}/${metadataKey(id)}: ${(error as Error).message}`, error);
  }
  progress.phase = 'done';
  report();
  return backup;
}

/**
 * The plan of a delta when `base` asks for one: the base's chain is
 * resolved (every layer live and stored), its merged tree read from the
 * layers' metadata by range, and the tree compared with it. Undefined for a
 * full backup: no `base`; 'latest' with no live backup of `dir`; or a chain
 * already `maxChain` deltas long (the warnings say which).
 */
async function planIncremental(
  store: ObjectStore, source: TreeSource, config: Config, options: CreateBackupOptions,
  exclude: ExcludeFilter | undefined, xattrs: Promise<WriterOptions['xattrs']> | undefined, codecsLoading: Promise<CodecRegistry>, warnings: string[], createHash: HashFactory,
): Promise<{ base: DirectoryBackup; plan: DeltaPlan } | undefined> {
  if (options.base === undefined) return undefined;
  const { signal } = options;
  // The tree is read while the chain is found, fetched and read (stopped unread if a full backup is made instead).
  const walk = new TreeWalk(source, config.dir, exclude, signal);
  try {
    let base: DirectoryBackup | undefined;
    let listed: DirectoryBackup[] | undefined;
    if (options.base === 'latest') {
      const now = Date.now();
      listed = await listBackups({ store, signal });
      const live = listed.filter((b) => b.dir === config.dir && now <= Date.parse(b.expiresAt));
      base = live[live.length - 1];
      if (!base) {
        warnings.push(`a full backup was made: ${store.location} holds no live backup of ${config.dir} to be a delta over`);
        return undefined;
      }
    } else {
      base = await resolveBackup(options.base, { store, signal });
    }
    const layers = await resolveChain(base, { store, signal, known: listed });
    if (layers.length > config.maxChain) {
      warnings.push(`a full backup was made: a delta over ${base.id} would be delta ${layers.length} of its chain, more than maxChain (${config.maxChain})`);
      return undefined;
    }
    const images = [];
    // Opened at once, while the codecs load: each is a few round trips (its size, superblock and tables).
    const opening = layers.map((layer) => openLayer(layer, { store, signal, codecsLoading, wholeTables: true }));
    try {
      const settled = await Promise.allSettled(opening);
      for (const result of settled) if (result.status === 'fulfilled') images.push(result.value);
      const failure = settled.find((result): result is PromiseRejectedResult => result.status === 'rejected');
      if (failure) throw failure.reason;
      const merged = await mergedTree(images, signal);
      const content = options.compare === 'content' ? { sums: await chainSums(store, layers, signal), createHash } : undefined;
      // The xattr lookup ran while the chain was fetched.
      const plan = await planDelta(walk, source, config.dir, merged, { xattrs: await xattrs, signal, content });
      return { base, plan };
    } finally {
      await Promise.all(images.map((image) => image.close()));
    }
  } finally {
    walk.stop();
  }
}

/** The checksums of a chain's merged tree: each layer's, upper layers' over lower ones'. */
async function chainSums(store: ObjectStore, layers: readonly DirectoryBackup[], signal?: AbortSignal): Promise<Sums> {
  const sums: Sums = new Map();
  for (const layer of layers) {
    if (!layer.checksums) {
      throw new BackupError('INVALID_BACKUP_CONFIG', `compare: 'content' needs the checksums of every layer of the chain; backup ${layer.id} was made without them (checksums: true)`);
    }
    const stream = await store.get(layer.checksums, signal);
    if (!stream) throw new BackupError('BACKUP_NOT_FOUND', `backup ${layer.id}: its checksums are not at ${store.location}/${layer.checksums}`, { key: layer.checksums });
    for (const [path, hex] of parseSums(new Uint8Array(await new Response(stream).arrayBuffer()))) sums.set(path, hex);
  }
  return sums;
}

function asCreateError(error: unknown, dir: string, store: ObjectStore, key: string): BackupError {
  if (error instanceof BackupError) return error.code === 'BACKUP_CREATE_ERROR' || error.code === 'INVALID_BACKUP_CONFIG' ? error : new BackupError('BACKUP_CREATE_ERROR', error.message, { cause: error, key });
  if (error instanceof SquashfsError) {
    const what = error.code === 'ABORTED' ? 'the backup was aborted' : error.message;
    return new BackupError('BACKUP_CREATE_ERROR', `backup of ${dir} to ${store.location} failed: ${what}`, { cause: error, path: error.path, key });
  }
  return new BackupError('BACKUP_CREATE_ERROR', `backup of ${dir} to ${store.location} failed: ${(error as Error)?.message ?? String(error)}`, { cause: error, key });
}

/** The path of an entry relative to the backed-up directory. */
function relativeTo(dir: string, path: SourcePath): string {
  const text = typeof path === 'string' ? path : decodeUtf8Lossy(path);
  return text === dir ? '' : text.slice(dir === '/' ? 1 : dir.length + 1);
}

/** Resolves "." and ".." in a relative POSIX path; undefined when it climbs above its start. */
function normalize(path: string): string | undefined {
  const out: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length === 0) return undefined;
      out.pop();
    } else out.push(part);
  }
  return out.join('/');
}

/** Reports (or refuses) symlinks whose target resolves outside `dir`; they are stored as links either way. */
function watchSymlinks(source: TreeSource, dir: string, policy: 'keep' | 'reject-outside', warnings: string[]): TreeSource {
  return {
    lstat: (p) => source.lstat(p),
    readdir: (p) => source.readdir(p),
    open: (p) => source.open(p),
    xattrs: source.xattrs?.bind(source),
    readlink: async (path) => {
      const target = await source.readlink(path);
      const text = decodeUtf8Lossy(target);
      const rel = relativeTo(dir, path);
      const parent = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '';
      const inside = text.startsWith('/') ? text === dir || text.startsWith(`${dir}/`) : normalize(`${parent}/${text}`) !== undefined;
      if (!inside) {
        const message = `symlink ${rel} -> ${text} points outside ${dir}`;
        if (policy === 'reject-outside') throw new BackupError('BACKUP_CREATE_ERROR', `${message} (symlinks: 'reject-outside')`, { path: `${dir}/${rel}` });
        warnings.push(message);
      }
      return target;
    },
  };
}

/** Patterns from `excludes`, and with `gitignore` what git would leave out (every .gitignore in the tree, and .git). */
function excludeFilter(source: TreeSource, dir: string, options: CreateBackupOptions): ExcludeFilter | undefined {
  const patterns = excludePatterns((options.excludes ?? []).filter((p) => p.trim() !== ''));
  return options.gitignore ? gitignoreFilter(source, dir, patterns) : patterns;
}
