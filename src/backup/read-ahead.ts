import type { RandomAccessSource } from '../squashfs/reader/types.js';

export interface ReadAheadOptions {
  /** The most a sequential reader is read ahead, in bytes (default 4 MiB). */
  maxAhead?: number;
  /** Pieces kept (default 4). */
  pieces?: number;
}

interface Piece {
  offset: number;
  length: number;
  bytes: Promise<Uint8Array>;
}

/** A sequential reader is first read ahead this much; it doubles with each sequential read. */
const FIRST_AHEAD = 256 * 1024;

/**
 * A source over a slow one (ranged GETs) that reads ahead for a reader
 * going forward and asks for exactly what is read otherwise: a lookup of
 * one small file costs its own bytes, a large file streams with the next
 * piece already on its way. A read that continues where the last one
 * ended fetches more than asked (doubling, up to `maxAhead`), and a read
 * into the second half of the newest piece starts fetching the one after.
 */
export function readAheadSource(source: RandomAccessSource, options: ReadAheadOptions = {}): RandomAccessSource {
  const maxAhead = options.maxAhead ?? 4 * 1024 * 1024;
  const most = options.pieces ?? 4;
  const pieces: Piece[] = [];
  let expected = -1;
  let ahead = 0;

  const fetch = (offset: number, length: number, signal?: AbortSignal): Piece => {
    const piece: Piece = { offset, length, bytes: source.read(offset, length, signal) };
    piece.bytes.catch(() => {
      const at = pieces.indexOf(piece); // a failed piece is not kept
      if (at >= 0) pieces.splice(at, 1);
    });
    pieces.push(piece);
    if (pieces.length > most) pieces.shift();
    return piece;
  };
  const covering = (offset: number, length: number) => pieces.find((p) => p.offset <= offset && offset + length <= p.offset + p.length);

  return {
    size: source.size,
    close: source.close?.bind(source),
    async read(offset, length, signal) {
      const sequential = offset === expected;
      expected = offset + length;
      ahead = sequential ? Math.min(maxAhead, Math.max(FIRST_AHEAD, ahead * 2)) : 0;
      let piece = covering(offset, length);
      if (!piece) piece = fetch(offset, Math.min(source.size - offset, Math.max(length, ahead)), signal);
      const end = piece.offset + piece.length;
      if (sequential && offset + length > piece.offset + piece.length / 2 && end < source.size && !covering(end, 1)) {
        fetch(end, Math.min(source.size - end, ahead));
      }
      const bytes = await piece.bytes;
      // A copy: what the reader caches must not hold a whole piece in memory.
      return bytes.slice(offset - piece.offset, offset - piece.offset + length);
    },
  };
}
