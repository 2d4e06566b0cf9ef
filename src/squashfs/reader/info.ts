import { CompressorId, Flag } from '../constants.js';

/** Names of the superblock flags that are set. */
export function flagNames(flags: number): string[] {
  return Object.entries(Flag)
    .filter(([, bit]) => (flags & bit) !== 0)
    .map(([name]) => name.toLowerCase().replace(/_/g, '-'));
}

/** Decodes a compressor options payload into named fields (squashfs_fs.h / the compressors' wrappers). */
export function decodeCompressorOptions(id: number, bytes: Uint8Array): Record<string, number> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u32 = (o: number) => (o + 4 <= bytes.length ? view.getUint32(o, true) : 0);
  const u16 = (o: number) => (o + 2 <= bytes.length ? view.getUint16(o, true) : 0);
  switch (id) {
    case CompressorId.GZIP:
      return { level: u32(0), windowSize: u16(4), strategies: u16(6) };
    case CompressorId.XZ:
      return { dictionarySize: u32(0), filters: u32(4) };
    case CompressorId.LZ4:
      return { version: u32(0), flags: u32(4) };
    case CompressorId.ZSTD:
      return { level: u32(0) };
    case CompressorId.LZO:
      return { algorithm: u32(0), level: u32(4) };
    default:
      return {};
  }
}
