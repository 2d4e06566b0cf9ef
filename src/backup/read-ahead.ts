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

/** Pieces kept of reads that did not continue the last one. */
const ELSEWHERE_PIECES = 4;

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
  /** What was read ahead for a sequential reader; and what reads elsewhere fetched (a fragment, a table), kept apart so they do not push it out. */
  const pieces: Piece[] = [];
  const elsewhere: Piece[] = [];
  let expected = -1;
  let ahead = 0;

  const fetch = (offset: number, length: number, signal?: AbortSignal, kept = pieces, keep = most): Piece => {
    const piece: Piece = { offset, length, bytes: source.read(offset, length, signal) };
    piece.bytes.catch(() => {
      const at = kept.indexOf(piece); // a failed piece is not kept
      if (at >= 0) kept.splice(at, 1);
    });
    kept.push(piece);
    if (kept.length > keep) kept.shift();
    return piece;
  };
  const covering = (offset: number, length: number) =>
    pieces.find((p) => p.offset <= offset && offset + length <= p.offset + p.length) ??
    elsewhere.find((p) => p.offset <= offset && offset + length <= p.offset + p.length);

  return {
    size: source.size,
    close: source.close?.bind(source),
    async read(offset, length, signal) {
      const sequential = offset === expected;
      expected = offset + length;
      ahead = sequential ? Math.min(maxAhead, Math.max(FIRST_AHEAD, ahead * 2)) : 0;
      // The pieces that hold the bytes, one after another; what none holds is fetched (only that: a read across the end of a piece must not fetch its successor again).
      const parts: Piece[] = [];
      let at = offset;
      for (let piece = covering(at, 1); piece && at < offset + length; piece = covering(at, 1)) {
        parts.push(piece);
        at = piece.offset + piece.length;
      }
      if (at < offset + length) {
        const missing = offset + length - at;
        parts.push(sequential
          ? fetch(at, Math.min(source.size - at, Math.max(missing, ahead)), signal)
          : fetch(at, missing, signal, elsewhere, ELSEWHERE_PIECES));
      }
      const last = parts[parts.length - 1]!;
      const end = last.offset + last.length;
      if (sequential && offset + length > last.offset + last.length / 2 && end < source.size && !covering(end, 1)) {
        fetch(end, Math.min(source.size - end, ahead));
      }
      // A copy: what the reader caches must not hold a whole piece in memory.
      const out = new Uint8Array(length);
      for (const piece of parts) {
        const bytes = await piece.bytes;
        const from = Math.max(offset, piece.offset);
        const to = Math.min(offset + length, piece.offset + piece.length);
        out.set(bytes.subarray(from - piece.offset, to - piece.offset), from - offset);
      }
      return out;
    },
  };
}
