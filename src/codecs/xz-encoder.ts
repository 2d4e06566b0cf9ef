import { SquashfsError } from '../errors.js';
import { checkLevel, type Codec, type CompressorOptions } from './codec.js';
import { xzCodec } from './xz.js';
import { instantiateXzWasm, loadXzWasmModule, type XzWasm } from './xz-wasm.js';

/**
 * Writing xz (id 4) as mksquashfs does: each block one .xz stream with a
 * CRC32 check, LZMA2 at an xz preset (the level, default 6 as mksquashfs's
 * LZMA_PRESET_DEFAULT) with the dictionary as large as the block (or
 * -Xdict-size), and, with -Xbcj filters, each block compressed once plain
 * and once behind each filter, the smallest kept. Compression runs in
 * liblzma's WASM build (xz-wasm.ts); decoding stays the pure-JS decoder of
 * xz.ts.
 */

/** mksquashfs's branch/call/jump filters: name, xz filter id, bit in the options' flags. */
export const XZ_FILTERS = [
  { name: 'x86', id: 0x04 },
  { name: 'powerpc', id: 0x05 },
  { name: 'ia64', id: 0x06 },
  { name: 'arm', id: 0x07 },
  { name: 'armthumb', id: 0x08 },
  { name: 'sparc', id: 0x09 },
  { name: 'arm64', id: 0x0a },
] as const;

/** The smallest dictionary mksquashfs accepts, and the one it uses for metadata blocks. */
const MIN_DICTIONARY = 8192;
export const XZ_DEFAULT_LEVEL = 6;

/** xz's settings for one image, checked. */
export interface XzSettings {
  /** The dictionary of data blocks (default: the block size). */
  dictionarySize: number;
  /** Filter ids to try beside plain LZMA2, in mksquashfs's order. */
  filters: number[];
  /** The options' flags: bit i set for XZ_FILTERS[i]. */
  flags: number;
}

const invalid = (message: string): never => {
  throw new SquashfsError('INVALID_OPTION', `xz: ${message}`);
};

/** 2^n or 2^n + 2^(n-1): what the .xz header can store (mksquashfs checks the same). */
function storable(size: number): boolean {
  const low = size & -size;
  return size === low || size === low * 3;
}

/** Parses -Xdict-size's forms: bytes, '64K', '1M', or a percentage of the block size ('50%', '37.5%'). */
export function parseDictionarySize(value: number | string, blockSize: number): number {
  let size: number;
  if (typeof value === 'number') {
    size = value;
  } else {
    const match = /^\s*(\d+(?:\.\d+)?)\s*(%|[kKmM])?\s*$/.exec(value);
    if (!match) return invalid(`dictionary size "${value}" is not bytes, K, M or a percentage`);
    const number = Number(match[1]);
    const unit = match[2];
    if (unit === '%') {
      if (number <= 0 || number > 100) invalid(`dictionary size ${value} must be a percentage from 0 (exclusive) to 100`);
      size = Math.floor((blockSize * number) / 100);
    } else {
      size = number * (unit === 'k' || unit === 'K' ? 1024 : unit === 'm' || unit === 'M' ? 1024 * 1024 : 1);
    }
  }
  if (!Number.isInteger(size)) invalid(`dictionary size ${value} is not a whole number of bytes`);
  if (size < MIN_DICTIONARY) invalid(`dictionary size ${size} is below ${MIN_DICTIONARY} bytes`);
  if (size > blockSize) invalid(`dictionary size ${size} is larger than the block size ${blockSize}`);
  if (!storable(size)) invalid(`dictionary size ${size} is not 2^n or 2^n + 2^(n-1) bytes (e.g. 100%, 75%, 50%, 37.5%, 25%, or 32K, 16K, 8K)`);
  return size;
}

/** Checks xz's compressor options for an image of `blockSize` blocks. */
export function xzSettings(options: CompressorOptions, blockSize: number): XzSettings {
  for (const key of Object.keys(options)) {
    if (key !== 'dictionarySize' && key !== 'filters') invalid(`unknown compressor option "${key}" (xz takes dictionarySize and filters)`);
  }
  const dictionarySize = options.dictionarySize === undefined ? blockSize : parseDictionarySize(options.dictionarySize, blockSize);
  let flags = 0;
  for (const name of options.filters ?? []) {
    const index = XZ_FILTERS.findIndex((f) => f.name === name);
    if (index < 0) invalid(`unknown filter "${name}" (known: ${XZ_FILTERS.map((f) => f.name).join(', ')})`);
    flags |= 1 << index;
  }
  return { dictionarySize, flags, filters: XZ_FILTERS.filter((_, i) => flags & (1 << i)).map((f) => f.id) };
}

/**
 * xz's compressor options (squashfs-tools xz comp_opts): u32 dictionary
 * size, u32 filter flags; only when not the defaults (dictionary = block
 * size, no filters).
 */
export function encodeXzOptions(settings: XzSettings, blockSize: number): Uint8Array | undefined {
  if (settings.dictionarySize === blockSize && settings.flags === 0) return undefined;
  const bytes = new Uint8Array(8);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, settings.dictionarySize, true);
  view.setUint32(4, settings.flags, true);
  return bytes;
}

/**
 * The dictionary for one block: the image's, but no larger than the block
 * needs (rounded up to a storable size, at least 8 KiB). So a full data
 * block uses the image's dictionary, a metadata block 8 KiB as in
 * mksquashfs, and no reader needs more than the options say.
 */
function dictionaryFor(length: number, imageDictionary: number | undefined): number {
  // Powers of two, and at the last step 2^n + 2^(n-1) where that is enough.
  let fit = MIN_DICTIONARY;
  while (fit < length) fit = fit + (fit >> 1) >= length ? fit + (fit >> 1) : fit * 2;
  return imageDictionary === undefined ? fit : Math.min(fit, imageDictionary);
}

function xzWriter(wasm: XzWasm, settings: XzSettings | undefined): Codec {
  const base = xzCodec();
  const codec: Codec = {
    ...base,
    compress(data, level) {
      checkLevel(codec, level);
      const dictionarySize = dictionaryFor(data.length, settings?.dictionarySize);
      let best: Uint8Array | undefined;
      for (const filter of [0, ...(settings?.filters ?? [])]) {
        const capacity = (best?.length ?? data.length) - 1;
        if (capacity <= 0) break;
        best = wasm.encode(data, { preset: level, dictionarySize, filter }, capacity) ?? best;
      }
      return best ?? data;
    },
    encodeOptions: (_level, blockSize) => (settings && blockSize !== undefined ? encodeXzOptions(settings, blockSize) : undefined),
    configure: (options, blockSize) => xzWriter(wasm, xzSettings(options, blockSize)),
  };
  return codec;
}

export interface XzCodecOptions {
  /**
   * The package's `xz.wasm` (our liblzma build, scripts/xz-wasm),
   * compiled. Required where code generation from bytes is refused
   * (Cloudflare Workers: import the file as a module). Default, on Node: the
   * package's dist/xz.wasm, read and compiled once per thread.
   */
  module?: WebAssembly.Module;
}

/**
 * The "xz" compressor (id 4), reading and writing (see above). `compress`
 * is synchronous; each codec owns one WASM instance, so make one per
 * thread.
 */
export async function createXzCodec(options: XzCodecOptions = {}): Promise<Codec> {
  return xzWriter(instantiateXzWasm(options.module ?? (await loadXzWasmModule())), undefined);
}
