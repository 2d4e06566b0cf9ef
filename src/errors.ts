/**
 * The one error class of the format layer. `code` is stable and meant for
 * branching; `message` carries the numbers (path, offset, expected, found).
 */
export type SquashfsErrorCode =
  /** An option given to the writer or reader is out of range. */
  | 'INVALID_OPTION'
  /** The source directory (or a path inside it) does not exist. */
  | 'SOURCE_NOT_FOUND'
  /** The source root is not a directory. */
  | 'NOT_A_DIRECTORY'
  /** A source file or directory could not be read. */
  | 'SOURCE_UNREADABLE'
  /** A file changed (size or type) while it was being packed. */
  | 'SOURCE_CHANGED'
  /** A name is empty, longer than 255 bytes, or contains "/" or NUL. */
  | 'INVALID_NAME'
  /** Something exceeds a limit of the format (sizes, counts). */
  | 'TOO_LARGE'
  /** A codec failed or produced the wrong length. */
  | 'CODEC_ERROR'
  /** No codec is registered for a compressor id. */
  | 'UNSUPPORTED_COMPRESSOR'
  /** The image is malformed. */
  | 'CORRUPT_IMAGE'
  /** A path was not found in an image. */
  | 'NOT_FOUND'
  /** The image could not be written where it was asked to go. */
  | 'WRITE_FAILED'
  /** The operation was cancelled through an AbortSignal. */
  | 'ABORTED';

export interface SquashfsErrorDetails {
  /** The file system path (source) or image path concerned. */
  path?: string;
  /** The byte offset in the image concerned. */
  offset?: number;
  cause?: unknown;
}

export class SquashfsError extends Error {
  override readonly name = 'SquashfsError';
  readonly code: SquashfsErrorCode;
  readonly path?: string;
  readonly offset?: number;

  constructor(code: SquashfsErrorCode, message: string, details: SquashfsErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    if (details.path !== undefined) this.path = details.path;
    if (details.offset !== undefined) this.offset = details.offset;
  }
}

/** Throws `ABORTED` when the signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw new SquashfsError('ABORTED', 'the operation was aborted', { cause: signal.reason });
  }
}

/** The codes of the backup contract (see docs: createBackup, restoreBackup). */
export type BackupErrorCode =
  /** The backup could not be made: source missing or unreadable, upload failed, too large, out of space. */
  | 'BACKUP_CREATE_ERROR'
  /** Bad options, or no store configured. */
  | 'INVALID_BACKUP_CONFIG'
  /** No backup (image or metadata) under that id or key. */
  | 'BACKUP_NOT_FOUND'
  /** The backup's expiry time has passed. */
  | 'BACKUP_EXPIRED'
  /** The stored image's size or SHA-256 is not the handle's. */
  | 'BACKUP_INTEGRITY_ERROR'
  /** The restore failed (the target was left as it was). */
  | 'BACKUP_RESTORE_ERROR'
  /** The backup is the base of a live delta (delete it with its dependants, or not at all). */
  | 'BACKUP_IN_USE';

export interface BackupErrorDetails {
  /** The object key in the store. */
  key?: string;
  /** The multipart upload part concerned. */
  part?: number;
  /** The HTTP status the store answered. */
  status?: number;
  /** A file system path concerned. */
  path?: string;
  cause?: unknown;
}

/** The errors of createBackup, restoreBackup, the uploader and the stores: `code`, and what and where in `message`. */
export class BackupError extends Error {
  override readonly name = 'BackupError';
  readonly code: BackupErrorCode;
  readonly key?: string;
  readonly part?: number;
  readonly status?: number;
  readonly path?: string;

  constructor(code: BackupErrorCode, message: string, details: BackupErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    if (details.key !== undefined) this.key = details.key;
    if (details.part !== undefined) this.part = details.part;
    if (details.status !== undefined) this.status = details.status;
    if (details.path !== undefined) this.path = details.path;
  }
}
