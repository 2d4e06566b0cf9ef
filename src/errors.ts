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
