import { BackupError } from '../errors.js';
import type { ObjectStore } from '../uploader/store.js';
import { resolveChain } from './chain.js';
import { ChainImage } from './chain-image.js';
import { checkOptions, storeImage, type BackupProgress, type BackupRuntime, type Config } from './create.js';
import { checkNotExpired, DEFAULT_TTL, type DirectoryBackup } from './handle.js';
import { imageSource } from './image-source.js';
import { openLayer, resolveBackup } from './manage.js';
import type { SquashfsImage } from '../squashfs/reader/image.js';
import type { CodecRegistry } from '../codecs/codec.js';

export interface CompactBackupOptions {
  /** Where the chain is, and where the compacted backup goes (Node default: the local store). */
  store?: ObjectStore;
  /** Seconds the new backup is kept (default: as long as the chain's top layer has left, else 3 days). */
  ttl?: number;
  /** Default: the top layer's name. */
  name?: string;
  codecs?: CodecRegistry;
  upload?: { partSize?: number; concurrency?: number };
  signal?: AbortSignal;
  onProgress?: (progress: BackupProgress) => void;
}

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
  const top = await resolveBackup(backup, { store, signal });
  checkNotExpired(top);
  const layers = await resolveChain(top, { store, signal });
  const codecs = await (options.codecs ?? runtime.codecs());
  const left = Math.floor((Date.parse(top.expiresAt) - Date.now()) / 1000);
  // The same checks as a backup's options (name, ttl).
  const config: Config = checkOptions({
    dir: top.dir, name: options.name ?? top.name, ttl: options.ttl ?? (left > 0 ? left : DEFAULT_TTL),
    compression: { algorithm: top.compression, level: top.level },
  });
  const images: SquashfsImage[] = [];
  try {
    for (const layer of layers) images.push(await openLayer(layer, { store, signal, codecs }));
    const chain = new ChainImage(images);
    const warnings = [...((await store.audit?.()) ?? [])];
    return await storeImage(runtime, store, config, { dir: top.dir, blockSize: top.blockSize, upload: options.upload, signal, onProgress: options.onProgress }, {
      id: runtime.randomUUID(), codecs, warnings, source: imageSource(chain), root: '/',
    });
  } finally {
    await Promise.allSettled(images.map((image) => image.close()));
  }
}
