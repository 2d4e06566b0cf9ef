import { BackupError } from '../errors.js';
import type { ObjectStore } from '../uploader/store.js';
import { resolveChain } from './chain.js';
import { ChainImage } from './chain-image.js';
import { checkOptions, storeImage, type BackupProgress, type BackupRuntime, type Config } from './create.js';
import { checkNotExpired, DEFAULT_TTL, type DirectoryBackup } from './handle.js';
import { imageSource } from './image-source.js';
import { openLayer, resolveBackup } from './manage.js';
import type { SquashfsImage } from '../squashfs/reader/image.js';
import { codecByName, type CodecRegistry } from '../codecs/codec.js';
import type { ReusedRegion } from '../squashfs/writer/writer.js';

export interface CompactBackupOptions {
  /** Where the chain is, and where the compacted backup goes (Node default: the local store). */
  store?: ObjectStore;
  /** Seconds the new backup is kept (default: as long as the chain's top layer has left, else 3 days). */
  ttl?: number;
  /** Default: the top layer's name. */
  name?: string;
  codecs?: CodecRegistry;
  upload?: { partSize?: number; concurrency?: number };
  /**
   * Take the full backup's data region (every block of its files) into the
   * new image as it is, copied on the store's side where the store can
   * (S3's UploadPartCopy), so the unchanged data never travels: only the
   * layers' new data and the tables are sent. The region keeps the blocks
   * of files the chain has since changed or deleted (readers never look at
   * them). Default: when the region is at least 16 MiB and no more than a
   * quarter of it is such blocks. `true`: whenever the compressor and block
   * size allow it; `false`: never (every file's blocks are written anew).
   */
  reuseBase?: boolean;
  signal?: AbortSignal;
  onProgress?: (progress: BackupProgress) => void;
}

/** A delta of the chain at most this large is fetched whole when the compaction opens it. */
const WHOLE_LAYER_BYTES = 16 * 1024 * 1024;

/** `reuseBase` by default: a region this large at least, and at most this share of it unused. */
const REUSE_MIN_BYTES = 16 * 1024 * 1024;
const REUSE_MAX_UNUSED = 0.25;

/**
 * Writes one full backup equal to a chain's merged tree (what restoring
 * its top layer gives), and returns its handle; the chain is left as it
 * is. The layers are read by range; a file's blocks are copied as their
 * layer stores them when the layer's compressor and block size are the
 * new image's (the top layer's), so compacting costs the transfer rather
 * than the compression. Runs wherever createBackup runs (a Worker too).
 */
export async function compactBackupWith(runtime: BackupRuntime, backup: DirectoryBackup | string, options: CompactBackupOptions = {}): Promise<DirectoryBackup> {
  const store = options.store ?? (await runtime.defaultStore?.());
  if (!store) throw new BackupError('INVALID_BACKUP_CONFIG', 'no store configured: pass `store` (s3Store, r2Store, localStore)');
  const { signal } = options;
  // The codecs load (zstd's WASM compiles) while the chain's handles are read.
  const codecsLoading = Promise.resolve(options.codecs ?? runtime.codecs());
  codecsLoading.catch(() => undefined); // awaited below
  const top = await resolveBackup(backup, { store, signal });
  checkNotExpired(top);
  const layers = await resolveChain(top, { store, signal });
  const codecs = await codecsLoading;
  const left = Math.floor((Date.parse(top.expiresAt) - Date.now()) / 1000);
  // The same checks as a backup's options (name, ttl).
  const config: Config = checkOptions({
    dir: top.dir, name: options.name ?? top.name, ttl: options.ttl ?? (left > 0 ? left : DEFAULT_TTL),
    compression: { algorithm: top.compression, level: top.level },
  });
  const images: SquashfsImage[] = [];
  try {
    // Opened at once: each is a few round trips (its size, superblock and tables).
    // The deltas above the full backup are fetched whole when small: their files are read anyway, and not then one by one.
    const whole = (layer: DirectoryBackup, i: number) => i > 0 && layer.size <= WHOLE_LAYER_BYTES;
    const opened = await Promise.allSettled(layers.map((layer, i) => openLayer(layer, { store, signal, codecs, wholeTables: true, whole: whole(layer, i) })));
    for (const settled of opened) if (settled.status === 'fulfilled') images.push(settled.value);
    const failure = opened.find((settled): settled is PromiseRejectedResult => settled.status === 'rejected');
    if (failure) throw failure.reason;
    const chain = new ChainImage(images);
    const warnings = [...((await store.audit?.()) ?? [])];
    const reuse = options.reuseBase === false ? undefined : await reusableBase(images[0]!, layers[0]!, codecByName(codecs, config.algorithm).id, top.blockSize, options.reuseBase === true);
    return await storeImage(runtime, store, config, { dir: top.dir, blockSize: top.blockSize, upload: options.upload, signal, onProgress: options.onProgress }, {
      id: runtime.randomUUID(), codecs, warnings, source: imageSource(chain), root: '/', reuse,
    });
  } finally {
    await Promise.allSettled(images.map((image) => image.close()));
  }
}

/**
 * The full backup's data region, to take in whole (see `reuseBase`), or
 * undefined when its compressor or block size differ from the new image's,
 * or (unless `always`) when it is small. Unless `always`, the writer takes
 * it only when the merged tree's files use enough of it (maxUnused).
 */
async function reusableBase(image: SquashfsImage, layer: DirectoryBackup, compressionId: number, blockSize: number, always: boolean): Promise<{ key: string; region: ReusedRegion } | undefined> {
  const sb = image.superblock;
  if (sb.compressionId !== compressionId || sb.blockSize !== blockSize) return undefined;
  const region = await image.dataRegion();
  if (!always && region.length < REUSE_MIN_BYTES) return undefined;
  const fragments = await image.fragmentEntries();
  return { key: layer.key, region: { origin: '0', ...region, fragments, maxUnused: always ? 1 : REUSE_MAX_UNUSED } };
}
