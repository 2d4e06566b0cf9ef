import { SquashfsError } from '../errors.js';

/**
 * A block compressor, keyed in a registry by its on-disk compressor id.
 * `compress` and `decompress` work on whole blocks; `compressAsync`, where
 * present, may run off the calling thread and must give the same bytes.
 */
export interface Codec {
  /** The on-disk compressor id (superblock `compression_id`). */
  readonly id: number;
  /** The name squashfs-tools uses (`-comp NAME`). */
  readonly name: string;
  readonly defaultLevel: number;
  readonly minLevel: number;
  readonly maxLevel: number;
  compress(data: Uint8Array, level: number): Uint8Array;
  compressAsync?(data: Uint8Array, level: number): Promise<Uint8Array>;
  /**
   * Decompresses one block to exactly `expectedLength` bytes, or, with
   * `atMost`, to at most that many (fragment and metadata blocks, whose
   * uncompressed size is not stored). Anything else is `CODEC_ERROR`.
   */
  decompress(data: Uint8Array, expectedLength: number, atMost?: boolean): Uint8Array;
  /** The same off the calling thread, where the runtime can (Node's zlib thread pool). */
  decompressAsync?(data: Uint8Array, expectedLength: number, atMost?: boolean): Promise<Uint8Array>;
  /**
   * The compressor options payload (written after the superblock) for this
   * level in an image of `blockSize` blocks, or undefined when the defaults
   * apply.
   */
  encodeOptions(level: number, blockSize?: number): Uint8Array | undefined;
  /**
   * This codec with settings beyond the level (mksquashfs's -X options) for
   * an image of `blockSize` blocks; absent when the codec takes none. The
   * settings are plain data, so a worker thread makes the same codec from
   * them (and so the same bytes).
   */
  configure?(options: CompressorOptions, blockSize: number): Codec;
}

/**
 * Settings beyond the level, as mksquashfs takes them with -X options. Only
 * xz has any today.
 */
export interface CompressorOptions {
  /**
   * xz (-Xdict-size): the dictionary of data blocks, in bytes or as a
   * percentage of the block size ('50%'); at least 8 KiB, at most the block
   * size, and 2^n or 2^n + 2^(n-1). Default: the block size.
   */
  dictionarySize?: number | string;
  /**
   * xz (-Xbcj): branch/call/jump filters (x86, powerpc, ia64, arm,
   * armthumb, sparc, arm64) to try beside plain LZMA2 on each block; the
   * smallest result is kept. Default: none.
   */
  filters?: readonly string[];
}

/** Whether `options` sets anything (a field left undefined sets nothing). */
export function hasCompressorOptions(options: CompressorOptions | undefined): options is CompressorOptions {
  return options !== undefined && Object.values(options).some((value) => value !== undefined);
}

/** `codec` with `options` applied; INVALID_OPTION when it takes none and some are given. */
export function configureCodec(codec: Codec, options: CompressorOptions | undefined, blockSize: number): Codec {
  if (!hasCompressorOptions(options)) return codec;
  if (!codec.configure) {
    throw new SquashfsError('INVALID_OPTION', `${codec.name} takes no compressor options, got ${Object.entries(options).filter(([, value]) => value !== undefined).map(([key]) => key).join(', ')}`);
  }
  return codec.configure(options, blockSize);
}

export type CodecRegistry = ReadonlyMap<number, Codec>;

export function createRegistry(codecs: readonly Codec[]): Map<number, Codec> {
  return new Map(codecs.map((codec) => [codec.id, codec]));
}

export function codecById(registry: CodecRegistry, id: number): Codec {
  const codec = registry.get(id);
  if (!codec) throw new SquashfsError('UNSUPPORTED_COMPRESSOR', `no codec is registered for compressor id ${id}`);
  return codec;
}

export function codecByName(registry: CodecRegistry, name: string): Codec {
  for (const codec of registry.values()) if (codec.name === name) return codec;
  const known = [...registry.values()].map((c) => c.name).join(', ');
  throw new SquashfsError('UNSUPPORTED_COMPRESSOR', `unknown compressor "${name}" (known: ${known})`);
}

export function checkLevel(codec: Codec, level: number): void {
  if (!Number.isInteger(level) || level < codec.minLevel || level > codec.maxLevel) {
    throw new SquashfsError('INVALID_OPTION', `${codec.name} level must be an integer from ${codec.minLevel} to ${codec.maxLevel}, got ${level}`);
  }
}

/**
 * Throws `UNSUPPORTED_COMPRESSOR` when the codec cannot compress here (a
 * read-only codec, or zstd without its WASM module), by compressing one
 * byte: a writer calls it before it starts, so the failure comes first and
 * says why, not from the first block (or from a worker thread).
 */
export function checkCanCompress(codec: Codec, level: number): void {
  try {
    codec.compress(new Uint8Array(1), level);
  } catch (error) {
    if (error instanceof SquashfsError && error.code === 'UNSUPPORTED_COMPRESSOR') throw error;
    throw new SquashfsError('UNSUPPORTED_COMPRESSOR', `${codec.name} cannot compress here: ${(error as Error).message}`, { cause: error });
  }
}

/** Throws `CODEC_ERROR` unless a decompressed block has the expected length (or, with `atMost`, no more). */
export function checkLength(codec: string, out: Uint8Array, expected: number, atMost = false): Uint8Array {
  if (atMost ? out.length > expected : out.length !== expected) {
    const want = atMost ? `at most ${expected}` : `${expected}`;
    throw new SquashfsError('CODEC_ERROR', `${codec} block decompressed to ${out.length} bytes, expected ${want}`);
  }
  return out;
}
