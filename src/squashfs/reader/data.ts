import type { Codec } from '../../codecs/codec.js';
import { SquashfsError } from '../../errors.js';
import { DATA_SIZE_MASK, DATA_UNCOMPRESSED, NO_INDEX } from '../constants.js';
import type { FileInode } from '../inode/inode.js';
import { checkRange } from './source.js';

/**
 * Where a regular file's contents lie: its blocks from `blocksStart`, one
 * size word each (0: a hole), then optionally a tail in a fragment block.
 * Plain data, so it can be handed to another thread.
 */
export interface FileLayout {
  inodeNumber: number;
  size: number;
  blocksStart: number;
  blockSizes: Uint32Array;
  /** The fragment holding the tail: where that block is stored, its size word, and where the tail starts in it. */
  fragment?: { index: number; start: number; word: number; offset: number };
}

/** One block of a run: its offset in the file, size word, stored and expected decompressed length. */
export interface RunBlock {
  offset: number;
  word: number;
  stored: number;
  expected: number;
}

/** A stretch of a file: a hole, or blocks stored one after another (read at once). */
export type DataRun =
  | { kind: 'hole'; offset: number; length: number }
  | { kind: 'blocks'; position: number; length: number; blocks: RunBlock[] };

/** Bytes read at once when a file's blocks follow each other. */
export const MAX_RUN_BYTES = 2 * 1024 * 1024;

const corrupt = (message: string, offset?: number) => new SquashfsError('CORRUPT_IMAGE', message, { offset });

/** The stored length a block size word gives, checked. */
export function storedLength(word: number, blockSize: number, what: string): number {
  const stored = word & DATA_SIZE_MASK;
  if ((word & ~(DATA_SIZE_MASK | DATA_UNCOMPRESSED)) !== 0 || stored > blockSize) {
    throw corrupt(`${what} has size word 0x${word.toString(16)}`);
  }
  return stored;
}

/** The layout of a file inode (its fragment resolved by the caller). */
export function layoutOf(inode: FileInode, fragment?: { start: number; word: number }): FileLayout {
  return {
    inodeNumber: inode.inodeNumber,
    size: inode.fileSize,
    blocksStart: inode.blocksStart,
    blockSizes: inode.blockSizes,
    fragment: fragment && inode.fragmentIndex !== NO_INDEX
      ? { index: inode.fragmentIndex, start: fragment.start, word: fragment.word, offset: inode.fragmentOffset }
      : undefined,
  };
}

/**
 * The runs covering blocks [first, end) of a file: holes, and stored blocks
 * grouped while they follow each other, up to `maxRun` bytes a run. Every
 * size word and range is checked against the block size and `bytesUsed`.
 */
export function* planRuns(
  layout: FileLayout,
  blockSize: number,
  bytesUsed: number,
  maxRun: number,
  first = 0,
  end = layout.blockSizes.length,
): Generator<DataRun> {
  const { blockSizes: sizes, size, inodeNumber } = layout;
  const what = (i: number) => `file #${inodeNumber} block ${i}`;
  let position = layout.blocksStart;
  for (let i = 0; i < first; i++) position += storedLength(sizes[i]!, blockSize, what(i));
  let i = first;
  while (i < end) {
    const word = sizes[i]!;
    if (word === 0) {
      yield { kind: 'hole', offset: i * blockSize, length: Math.min(blockSize, size - i * blockSize) };
      i++;
      continue;
    }
    const blocks: RunBlock[] = [];
    let length = 0;
    while (i < end && sizes[i] !== 0) {
      const stored = storedLength(sizes[i]!, blockSize, what(i));
      if (blocks.length > 0 && length + stored > maxRun) break;
      blocks.push({ offset: i * blockSize, word: sizes[i]!, stored, expected: Math.min(blockSize, size - i * blockSize) });
      length += stored;
      i++;
    }
    checkRange(position, length, bytesUsed, `file #${inodeNumber} blocks ${blocks[0]!.offset / blockSize}..${i - 1}`);
    yield { kind: 'blocks', position, length, blocks };
    position += length;
  }
}

/** Where a file's fragment tail goes in the file and how long it is, checked. */
export function fragmentTail(layout: FileLayout, blockSize: number): { offset: number; length: number } {
  const offset = layout.blockSizes.length * blockSize;
  const length = layout.size - offset;
  if (length <= 0 || length >= blockSize) {
    throw corrupt(`file #${layout.inodeNumber} has a fragment but a tail of ${length} bytes`);
  }
  return { offset, length };
}

/** A file's tail out of its decompressed fragment block: `length` bytes from `start`. */
export function tailOf(block: Uint8Array, start: number, length: number, inodeNumber: number, fragmentIndex: number): Uint8Array {
  if (start + length > block.length) {
    throw corrupt(`file #${inodeNumber}: fragment ${fragmentIndex} holds ${block.length} bytes, the tail wants ${start}..${start + length}`);
  }
  return block.subarray(start, start + length);
}

/**
 * Decodes one stored data or fragment block: raw when its word says so,
 * else through the codec, to exactly `expected` bytes (at most, for
 * fragments). Errors name the block's position.
 */
export function decodeDataBlock(codec: Codec, stored: Uint8Array, word: number, expected: number, atMost: boolean, where: number): Uint8Array {
  if (word & DATA_UNCOMPRESSED) {
    if (atMost ? stored.length > expected : stored.length !== expected) {
      throw corrupt(`uncompressed block at ${where} holds ${stored.length} bytes, expected ${expected}`, where);
    }
    return stored;
  }
  try {
    return codec.decompress(stored, expected, atMost);
  } catch (cause) {
    throw placed(cause, where);
  }
}

/** As `decodeDataBlock`, off the calling thread where the codec can. */
export async function decodeDataBlockAsync(
  codec: Codec, stored: Uint8Array, word: number, expected: number, atMost: boolean, where: number,
): Promise<Uint8Array> {
  if (word & DATA_UNCOMPRESSED || !codec.decompressAsync) return decodeDataBlock(codec, stored, word, expected, atMost, where);
  try {
    return await codec.decompressAsync(stored, expected, atMost);
  } catch (cause) {
    throw placed(cause, where);
  }
}

function placed(cause: unknown, where: number): unknown {
  if (cause instanceof SquashfsError) return new SquashfsError(cause.code, `block at ${where}: ${cause.message}`, { offset: where, cause });
  return cause;
}
