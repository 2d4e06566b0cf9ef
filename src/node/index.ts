export * from '../index.js';
export { packDirectory, defaultMtime, type PackOptions, type PackResult } from './pack.js';
export { loadNodeCodecs, nodeCodecs, nodeGzipCodec, nodeSha256, type LoadNodeCodecsOptions } from './codecs.js';
export { CompressPool } from './compress-pool.js';
export { nodeAsyncSource, nodeSource } from './source.js';
export { FileSink } from './file-sink.js';
export { readTreeXattrs } from './xattrs.js';
export { fileSource, openImage, type FileBackedSource } from './file-source.js';
export { unpackImage, applyLayer, type UnpackOptions, type UnpackProgress, type UnpackResult, type ApplyLayerOptions } from './unpack.js';
export { localStore, type LocalStoreOptions } from './local-store.js';
export {
  createBackup, compactBackup, restoreBackup, defaultStoreDirectory, nodeBackupRuntime, type RestoreBackupOptions, type RestoreResult,
} from './backup.js';
export type { RestoreProgress } from './restore.js';
