import { unzlibSync, zlibSync } from 'fflate';
import { SquashfsError } from '../errors.js';
import { checkLength, type Codec } from './codec.js';

/** gzip's on-disk compressor id (superblock `compression_id`). */
export const GZIP_ID = 1;

/** gzip's compressor options: level, window size and strategies (squashfs_fs.h gzip_comp_opts). */
export function encodeGzipOptions(level: number, windowSize = 15, strategies = 0): Uint8Array | undefined {
  if (level === 9 && windowSize === 15 && strategies === 0) return undefined;
  const bytes = new Uint8Array(8);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, level, true);
  view.setUint16(4, windowSize, true);
  view.setUint16(6, strategies, true);
  return bytes;
}

type Deflate = (data: Uint8Array, level: number) => Uint8Array;
type Inflate = (data: Uint8Array, expectedLength: number) => Uint8Array;

/**
 * The "gzip" compressor: zlib streams (2-byte header, deflate, Adler-32).
 * The portable implementation is fflate; runtimes with a native zlib pass
 * their own primitives.
 */
export function gzipCodec(native?: {
  deflate: Deflate;
  inflate: Inflate;
  deflateAsync?: (data: Uint8Array, level: number) => Promise<Uint8Array>;
  inflateAsync?: (data: Uint8Array, expectedLength: number) => Promise<Uint8Array>;
}): Codec {
  const deflate: Deflate = native?.deflate ?? ((data, level) => zlibSync(data, { level: level as 9 }));
  const inflate: Inflate =
    // One spare byte: fflate silently stops at the end of `out`, so output that is too long must show.
    native?.inflate ?? ((data, expectedLength) => unzlibSync(data, { out: new Uint8Array(expectedLength + 1) }));
  const codec: Codec = {
    id: GZIP_ID,
    name: 'gzip',
    defaultLevel: 9,
    minLevel: 1,
    maxLevel: 9,
    compress: deflate,
    decompress(data, expectedLength, atMost = false) {
      let out: Uint8Array;
      try {
        out = inflate(data, expectedLength);
      } catch (cause) {
        throw new SquashfsError('CODEC_ERROR', `gzip block of ${data.length} bytes does not inflate: ${(cause as Error).message}`, { cause });
      }
      return checkLength('gzip', out, expectedLength, atMost);
    },
    encodeOptions: (level) => encodeGzipOptions(level),
  };
  if (native?.deflateAsync) codec.compressAsync = native.deflateAsync;
  const inflateAsync = native?.inflateAsync;
  if (inflateAsync) {
    codec.decompressAsync = async (data, expectedLength, atMost = false) => {
      let out: Uint8Array;
      try {
        out = await inflateAsync(data, expectedLength);
      } catch (cause) {
        throw new SquashfsError('CODEC_ERROR', `gzip block of ${data.length} bytes does not inflate: ${(cause as Error).message}`, { cause });
      }
      return checkLength('gzip', out, expectedLength, atMost);
    };
  }
  return codec;
}
