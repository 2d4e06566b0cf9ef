export { SquashfsError, type SquashfsErrorCode } from './errors.js';
export * from './codecs/index.js';
export { sha256, type Hasher, type HashFactory } from './hash.js';
export type { TreeSource, SourceStat, SourceFile, SourcePath } from './source/source.js';
export { fsSource, type FsPromisesLike } from './source/fs-source.js';
export { excludePatterns, type ExcludeFilter } from './source/exclude.js';
export { writeImage, type WriterOptions, type WriteResult, type WriterProgress } from './squashfs/writer/writer.js';
export type { ImageSink } from './squashfs/writer/output.js';
export type { Xattr } from './squashfs/xattr-table.js';
export { encodeSuperblock, decodeSuperblock, type Superblock } from './squashfs/superblock.js';
export { SquashfsImage, splitPath, type OpenOptions } from './squashfs/reader/image.js';
export { bytesSource, httpSource, type HttpSourceOptions, type CountingSource } from './squashfs/reader/source.js';
export type {
  RandomAccessSource, ImagePath, EntryStat, EntryType, DirEntry, WalkEntry, FileChunk, ImageInfo,
} from './squashfs/reader/types.js';
export {
  memorySource, memoryDir, type MemoryEntry, type MemoryDirectory, type MemoryTaggedDirectory, type MemoryFile,
  type MemorySymlink, type MemoryMeta, type MemorySourceOptions,
} from './source/memory-source.js';
export { compressionStreamGzipCodec, deflateWithCompressionStream, hasCompressionStream } from './codecs/compression-stream.js';
export { BackupError, type BackupErrorCode, type BackupErrorDetails } from './errors.js';
export { StoreError, type ObjectStore, type ObjectInfo, type CompletedPart } from './uploader/store.js';
export {
  RequestPolicy, requestPolicy, isTransient, type RequestPolicyOptions, type RequestContext, type RequestTarget,
} from './uploader/policy.js';
export {
  StreamUpload, choosePartSize, MIN_PART_SIZE, MAX_PARTS, type StreamUploadOptions, type UploadProgress, type UploadResult,
} from './uploader/stream-upload.js';
export { s3Store, awsPresigner, encodeKey, type S3StoreOptions, type Presigner, type PresignRequest, type AwsPresignerOptions } from './uploader/s3-store.js';
export {
  presignService, presignOperation, type PresignService, type PresignServiceOptions, type PresignAnswer, type TokenGrant, type TokenClaims,
  type Capability, type PresignOperation,
} from './uploader/presign-service.js';
export { remotePresigner, type RemotePresignerOptions } from './uploader/remote-presigner.js';
export { r2Store, type R2BucketLike, type R2MultipartUploadLike, type R2StoreOptions } from './uploader/r2-store.js';
export { createBackup, compactBackup, webBackupRuntime } from './backup/web.js';
export { compactBackupWith, type CompactBackupOptions } from './backup/compact.js';
export {
  createBackupWith, checkOptions, type CreateBackupOptions, type BackupProgress, type BackupCompression, type BackupRuntime,
} from './backup/create.js';
export { type DirectoryBackup, parseHandle, checkNotExpired, SuperblockLastHasher, DEFAULT_TTL } from './backup/handle.js';
export {
  openBackup, listBackups, deleteBackup, pruneExpiredBackups, resolveBackup, storeSource, checkStored, chainsOf, baseOf,
  type OpenBackupOptions, type StoreOptions, type DeleteBackupOptions, type PruneOptions,
} from './backup/manage.js';
export { resolveChain, chainOf, isWhiteout, isOpaque, OPAQUE_XATTR, DEFAULT_MAX_CHAIN } from './backup/chain.js';
export { imageSource, type ImageTree } from './backup/image-source.js';
export { ChainImage, type BackupImage, type ChainInfo } from './backup/chain-image.js';
export { restoreBackup, type FsWriteLike, type WebRestoreOptions, type WebRestoreResult } from './backup/restore.js';
