import { Decompress } from 'fzstd';
import { SquashfsError } from '../errors.js';
import { checkLength, checkLevel, type Codec } from './codec.js';
import { codecError, guardDecode } from './lzma.js';
import { instantiateZstdWasm, loadZstdWasmModule, type ZstdWasm } from './zstd-wasm.js';

/** zstd's on-disk compressor id (superblock `compression_id`). */
export const ZSTD_ID = 6;

/**
 * The "zstd" compressor (id 6): each block is one zstd frame. Encoding is
 * the reference library in WASM (zstd-wasm.ts); so is decoding where that
 * module is loaded (ZSTD_decompress into a buffer of the expected length,
 * several times faster), else fzstd (pure JS, by the fflate author).
 * Before either sees a frame, the frame header and block headers are
 * checked here so that nothing allocates from a size found in corrupt
 * data: the declared content size must be the expected length, the window
 * is clamped to what the expected output can use, and the data must be
 * exactly one frame.
 */

const fail: (message: string) => never = (message) => codecError('zstd', message);

const MAGIC = 0xfd2fb528;
const MAX_BLOCK_SIZE = 128 * 1024;

interface FrameHeader {
  headerSize: number;
  singleSegment: boolean;
  windowSize: number;
  contentSize: number | undefined;
  hasChecksum: boolean;
}

function readFrameHeader(data: Uint8Array): FrameHeader {
  if (data.length < 6) fail(`${data.length} bytes is too short for a frame`);
  const magic = (data[0] | (data[1] << 8) | (data[2] << 16) | (data[3] << 24)) >>> 0;
  if (magic !== MAGIC) fail(`magic 0x${magic.toString(16)} is not a zstd frame`);
  const fhd = data[4];
  if (fhd & 0x08) fail(`reserved bit set in frame header descriptor 0x${fhd.toString(16)}`);
  const fcsFlag = fhd >>> 6;
  const singleSegment = (fhd & 0x20) !== 0;
  const hasChecksum = (fhd & 0x04) !== 0;
  const dictIdSize = [0, 1, 2, 4][fhd & 3];
  let pos = 5;
  let windowSize = 0;
  if (!singleSegment) {
    const wd = data[pos++];
    const base = 2 ** (10 + (wd >>> 3));
    windowSize = base + (base / 8) * (wd & 7);
  }
  if (data.length < pos + dictIdSize) fail('frame header passes the end of the data');
  let dictId = 0;
  for (let i = 0; i < dictIdSize; i++) dictId += data[pos + i] * 2 ** (8 * i);
  if (dictId !== 0) fail(`frame needs dictionary ${dictId}`);
  pos += dictIdSize;
  const fcsSize = fcsFlag === 0 ? (singleSegment ? 1 : 0) : 1 << fcsFlag;
  if (data.length < pos + fcsSize) fail('frame header passes the end of the data');
  let contentSize: number | undefined;
  if (fcsSize > 0) {
    contentSize = 0;
    for (let i = 0; i < fcsSize; i++) contentSize += data[pos + i] * 2 ** (8 * i);
    if (fcsSize === 2) contentSize += 256;
    if (singleSegment) windowSize = contentSize;
  }
  return { headerSize: pos + fcsSize, singleSegment, windowSize, contentSize, hasChecksum };
}

/** Walks the block headers: the data must be exactly one frame. */
function checkFrameExtent(data: Uint8Array, header: FrameHeader): void {
  let pos = header.headerSize;
  const maxBlock = Math.min(header.windowSize, MAX_BLOCK_SIZE);
  for (;;) {
    if (data.length - pos < 3) fail(`block header at offset ${pos} passes the end of the data (${data.length})`);
    const bh = data[pos] | (data[pos + 1] << 8) | (data[pos + 2] << 16);
    const type = (bh >>> 1) & 3;
    const size = bh >>> 3;
    if (type === 3) fail(`reserved block type at offset ${pos}`);
    if (size > maxBlock) fail(`block of ${size} bytes at offset ${pos} exceeds the maximum ${maxBlock}`);
    pos += 3 + (type === 1 ? 1 : size);
    if (pos > data.length) fail(`block at offset ${pos} passes the end of the data (${data.length})`);
    if (bh & 1) break;
  }
  if (header.hasChecksum) pos += 4;
  if (pos !== data.length) fail(`frame is ${pos} bytes, the block ${data.length}`);
}

/** The smallest window descriptor byte whose window holds `size` bytes. */
function windowDescriptorFor(size: number): number {
  for (let exponent = 0; exponent < 32; exponent++) {
    const base = 2 ** (10 + exponent);
    for (let mantissa = 0; mantissa < 8; mantissa++) {
      if (base + (base / 8) * mantissa >= size) return (exponent << 3) | mantissa;
    }
  }
  return 0xff;
}

/** Decodes one checked frame; with `wasm`, in the reference library, else with fzstd. */
export function decodeZstdFrame(data: Uint8Array, expectedLength: number, atMost = false, wasm?: ZstdWasm): Uint8Array {
  const header = readFrameHeader(data);
  if (header.contentSize !== undefined && (atMost ? header.contentSize > expectedLength : header.contentSize !== expectedLength)) {
    fail(`frame declares ${header.contentSize} bytes, expected ${atMost ? 'at most ' : ''}${expectedLength}`);
  }
  checkFrameExtent(data, header);
  let frame = data;
  if (!header.singleSegment) {
    // A frame never looks back further than its own output, so a window
    // larger than the expected length only costs memory: shrink it.
    const descriptor = windowDescriptorFor(Math.max(expectedLength, 1));
    if (descriptor < data[5]) {
      frame = data.slice();
      frame[5] = descriptor;
    }
  }
  if (wasm) {
    let out: Uint8Array;
    try {
      out = wasm.decompress(frame, expectedLength);
    } catch (error) {
      fail(`does not decode (${(error as Error).message})`);
    }
    return checkLength('zstd', out, expectedLength, atMost);
  }
  const out = new Uint8Array(expectedLength);
  let outPos = 0;
  const decoder = new Decompress((chunk) => {
    if (chunk.length > expectedLength - outPos) {
      throw new SquashfsError('CODEC_ERROR', `zstd block: decompresses past the expected ${expectedLength} bytes`);
    }
    out.set(chunk, outPos);
    outPos += chunk.length;
  });
  decoder.push(frame, true);
  return checkLength('zstd', out.subarray(0, outPos), expectedLength, atMost);
}

/** squashfs-tools' zstd default level; other levels are written as compressor options. */
export const ZSTD_DEFAULT_LEVEL = 15;

/** zstd's compressor options (squashfs-tools zstd_comp_opts): the level as a u32, only when it is not 15. */
export function encodeZstdOptions(level: number): Uint8Array | undefined {
  if (level === ZSTD_DEFAULT_LEVEL) return undefined;
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, level, true);
  return bytes;
}

/** `wasm` gives the instance to decode with, when there is one. */
function zstdBase(compress: Codec['compress'], wasm: () => ZstdWasm | undefined = () => undefined): Codec {
  return {
    id: ZSTD_ID,
    name: 'zstd',
    defaultLevel: ZSTD_DEFAULT_LEVEL,
    minLevel: 1,
    maxLevel: 22,
    compress,
    decompress: (data, expectedLength, atMost) => guardDecode('zstd', data, expectedLength, () => decodeZstdFrame(data, expectedLength, atMost, wasm())),
    encodeOptions: encodeZstdOptions,
  };
}

/**
 * The "zstd" compressor (id 6), reading only: decoding is pure JS and
 * synchronous, so it can sit in the registry `defaultCodecs()` builds.
 * For writing use `createZstdCodec()`.
 */
export function zstdCodec(decoder?: () => ZstdWasm | undefined): Codec {
  return zstdBase(() => {
    throw new SquashfsError(
      'UNSUPPORTED_COMPRESSOR',
      'zstd compression is not supported; this codec only reads: register `await createZstdCodec()` to write zstd (on Node, loadNodeCodecs() does)',
    );
  }, decoder);
}

export interface ZstdCodecOptions {
  /**
   * The package's `zstd.wasm` (`@foxglove/wasm-zstd`'s build), compiled. Required where code
   * generation from bytes is refused and no module is imported for you (the
   * package's workerd entry imports it, so `createBackup` there needs none).
   * Default, on Node: the package's dist/zstd.wasm, read and compiled once
   * per thread.
   */
  module?: WebAssembly.Module;
}

/**
 * The "zstd" compressor (id 6), reading and writing. Compression is the
 * reference zstd library in WASM, one frame per block in one shot with the
 * size known (so the window never exceeds the block: what the Linux kernel
 * needs), the same as squashfs-tools' ZSTD_compressCCtx. `compress` is
 * synchronous; each codec owns one WASM instance, so make one per thread.
 * Decoding uses the same instance.
 */
export async function createZstdCodec(options: ZstdCodecOptions = {}): Promise<Codec> {
  const wasm = instantiateZstdWasm(options.module ?? (await loadZstdWasmModule()));
  const codec: Codec = zstdBase(
    (data, level) => {
      checkLevel(codec, level);
      return wasm.compress(data, level);
    },
    () => wasm,
  );
  return codec;
}
