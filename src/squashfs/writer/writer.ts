import { checkCanCompress, checkLevel, codecByName, configureCodec, hasCompressorOptions, type Codec, type CodecRegistry, type CompressorOptions } from '../../codecs/codec.js';
import { defaultCodecs } from '../../codecs/index.js';
import { SquashfsError, throwIfAborted } from '../../errors.js';
import { sha256, type HashFactory } from '../../hash.js';
import type { ExcludeFilter } from '../../source/exclude.js';
import type { SourcePath, TreeSource, XattrLookup } from '../../source/source.js';
import { DEFAULT_BLOCK_SIZE, DEVICE_BLOCK, Flag, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE } from '../constants.js';
import { encodeExportTable } from '../export-table.js';
import { encodeFragmentTable, type FragmentEntry } from '../fragment-table.js';
import { IdTable } from '../id-table.js';
import { encodeLookupTable, encodeMetadataBlock, type BlockCompressor } from '../metadata.js';
import { encodeSuperblock, SUPERBLOCK_SIZE } from '../superblock.js';
import { XattrTableBuilder } from '../xattr-table.js';
import { DataWriter, type FragmentMode } from './data.js';
import { writeMetadataTables } from './metadata-tables.js';
import { blockStorer, OrderedOutput, type ImageSink, type StoredBlock } from './output.js';
import { attachXattrs, walkTree } from './tree.js';

export interface WriterProgress {
  phase: 'walk' | 'data' | 'tables' | 'done';
  /** Entries found by the walk. */
  entries: number;
  /** Regular files whose data is written. */
  files: number;
  /** Source bytes read. */
  bytesRead: number;
  /** Image bytes handed to the sink. */
  bytesWritten: number;
  /** Total bytes of regular files, known after the walk. */
  totalBytes: number;
}

export interface WriterOptions {
  /** Compressor name: 'gzip' (default) or any registered codec. */
  compression?: string;
  /** Compression level; default the codec's (gzip 9). */
  level?: number;
  /**
   * Settings beyond the level, as mksquashfs's -X options (xz: dictionary
   * size and filters); written to the compressor options as mksquashfs
   * writes them. Plain data: a compression pool's threads get the same.
   */
  compressorOptions?: CompressorOptions;
  /** Data block size: a power of two from 4 KiB to 1 MiB; default 128 KiB. */
  blockSize?: number;
  /** 'default' packs files smaller than a block; 'never' = -no-fragments; 'always' = -always-use-fragments. */
  fragments?: FragmentMode;
  /** Store identical files once (default true). */
  dedupe?: boolean;
  /** Write the export table (default true, like mksquashfs). */
  exportable?: boolean;
  /** Make every owner 0:0. */
  allRoot?: boolean;
  /** The image's modification time (seconds); default now. */
  mtime?: number;
  exclude?: ExcludeFilter;
  /** Extended attributes per path; default: the source's own `xattrs`, if any. */
  xattrs?: XattrLookup;
  codecs?: CodecRegistry;
  /**
   * Stores one data or fragment block (compressed, or raw when that is not
   * smaller); e.g. on a pool of threads. The block belongs to it afterwards.
   * Default: the codec, on the calling thread (or its `compressAsync`).
   */
  storeBlock?: (data: Uint8Array, level: number) => Promise<StoredBlock>;
  /**
   * Reads and stores one block of a file straight from its descriptor (a
   * source file's `fd`), e.g. on the thread that compresses it, so the
   * bytes never pass through this one. Resolves `{ word: 0 }` with no bytes
   * for an all-zero block (a hole); rejects with SOURCE_CHANGED when the
   * file ends early. With `digest`, the block comes with a digest of the
   * bytes read (as hashFileBlock makes it). Used for the blocks of files
   * larger than a block; the rest is read here.
   */
  storeFileBlock?: (fd: number, position: number, length: number, level: number, digest?: boolean) => Promise<StoredBlock>;
  /**
   * Reads one block of a file from its descriptor elsewhere, like
   * storeFileBlock, and resolves a digest of its bytes (a collision-proof
   * hash such as SHA-256, the same for the same bytes): large files that
   * another file could duplicate are hashed block by block this way, off
   * this thread, then stored with storeFileBlock's digest to check they
   * did not change in between. Without it they are hashed here.
   */
  hashFileBlock?: (fd: number, position: number, length: number) => Promise<Uint8Array>;
  /**
   * Where the buffers that blocks are read into come from (default: new
   * ones); e.g. buffers a `storeBlock` pool handed back once done with them.
   */
  blockBuffer?: (length: number) => Uint8Array;
  createHash?: HashFactory;
  /**
   * A region of another image (its data blocks and fragments) to take in
   * whole, after the other files' data: the sink's `reuse` puts it in
   * place, and every file whose StoredFileData lies there (same `origin`)
   * points into it instead of being written again. Its fragment entries
   * keep their indexes. Bytes of the region no file uses are carried
   * along: readers never look at them.
   */
  reuse?: ReusedRegion;
  /** Blocks compressed ahead of the one being written (default 8). */
  maxInFlight?: number;
  signal?: AbortSignal;
  onProgress?: (progress: WriterProgress) => void;
}

/** See WriterOptions.reuse. */
export interface ReusedRegion {
  /** The image's name in its files' StoredFileData.origin. */
  origin: string;
  /** Where the region starts in its image, and how long it is. */
  offset: number;
  length: number;
  /** The image's fragment table. */
  fragments: readonly FragmentEntry[];
  /**
   * Take the region only when at most this share of it is unused by the
   * files that point into it (default 1: always); else every file is
   * written anew.
   */
  maxUnused?: number;
}

export interface WriteResult {
  /** Bytes of the image before padding (the superblock's bytes_used). */
  bytesUsed: number;
  /** Bytes handed to the sink, padding included. */
  imageSize: number;
  inodes: number;
  files: number;
  fragments: number;
  totalBytes: number;
  compression: string;
  level: number;
  blockSize: number;
}

/**
 * Checks the options that need no source (codec, level, block size, mtime)
 * and resolves their defaults; throws INVALID_OPTION or
 * UNSUPPORTED_COMPRESSOR (a codec that cannot compress here). writeImage
 * calls it first; a caller that starts threads for it calls it before.
 */
export function resolveWriterOptions(options: WriterOptions): { codec: Codec; level: number; blockSize: number } {
  const named = codecByName(options.codecs ?? defaultCodecs(), options.compression ?? 'gzip');
  const level = options.level ?? named.defaultLevel;
  checkLevel(named, level);
  const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
  if (!Number.isInteger(blockSize) || blockSize < MIN_BLOCK_SIZE || blockSize > MAX_BLOCK_SIZE || (blockSize & (blockSize - 1)) !== 0) {
    throw new SquashfsError('INVALID_OPTION', `block size must be a power of two from ${MIN_BLOCK_SIZE} to ${MAX_BLOCK_SIZE}, got ${blockSize}`);
  }
  const codec = configureCodec(named, options.compressorOptions, blockSize);
  checkCanCompress(codec, level);
  if (options.mtime !== undefined && (!Number.isInteger(options.mtime) || options.mtime < 0 || options.mtime > 0xffffffff)) {
    throw new SquashfsError('INVALID_OPTION', `mtime must be whole seconds from 0 to 4294967295, got ${options.mtime}`);
  }
  return { codec, level, blockSize };
}

/**
 * Packs a source tree into a SquashFS 4.0 image, streaming it to `sink`:
 * the walk reads metadata, then file data is written block by block, then
 * the tables, and last the superblock. Memory holds the blocks in flight
 * and the per-entry metadata, never the image.
 */
export async function writeImage(source: TreeSource, root: SourcePath, sink: ImageSink, options: WriterOptions = {}): Promise<WriteResult> {
  const { codec, level, blockSize } = resolveWriterOptions(options);
  const fragments = options.fragments ?? 'default';
  const dedupe = options.dedupe ?? true;
  const exportable = options.exportable ?? true;
  const compress: BlockCompressor = (data) => codec.compress(data, level);
  const progress: WriterProgress = { phase: 'walk', entries: 0, files: 0, bytesRead: 0, bytesWritten: 0, totalBytes: 0 };
  const report = () => options.onProgress?.({ ...progress });

  const tree = await walkTree(source, root, {
    exclude: options.exclude,
    signal: options.signal,
    onEntry: (entries) => {
      progress.entries = entries;
      if (entries % 1000 === 0) report();
    },
  });
  progress.totalBytes = tree.totalBytes;
  progress.phase = 'data';
  report();

  const counting: ImageSink = {
    write: (chunk) => {
      progress.bytesWritten += chunk.length;
      return sink.write(chunk);
    },
    finish: (superblock) => sink.finish(superblock),
    reuse: sink.reuse && ((offset, length) => {
      progress.bytesWritten += length;
      return sink.reuse!(offset, length);
    }),
  };
  const out = new OrderedOutput(counting, options.maxInFlight ?? 8);
  await out.push(new Uint8Array(SUPERBLOCK_SIZE));
  let flags = Flag.DUPLICATES;
  const compressorOptions = codec.encodeOptions(level, blockSize);
  if (compressorOptions) {
    flags |= Flag.COMPRESSOR_OPTIONS;
    await out.push(encodeMetadataBlock(compressorOptions, () => compressorOptions));
  }

  const { reuse } = options;
  const data = new DataWriter(source, tree.entries, tree.files, out, {
    pathOf: tree.pathOf,
    blockSize,
    fragments,
    dedupe,
    sizeCounts: tree.sizeCounts,
    store: options.storeBlock ? (data) => options.storeBlock!(data, level) : blockStorer(codec, level),
    createHash: options.createHash ?? sha256,
    blockBuffer: options.blockBuffer,
    storeFileBlock: options.storeFileBlock ? (fd, position, length, digest) => options.storeFileBlock!(fd, position, length, level, digest) : undefined,
    hashFileBlock: options.storeFileBlock && options.hashFileBlock,
    // Blocks of another image are copied only where its compressor settings surely fit ours (xz's dictionary may not).
    compressionId: hasCompressorOptions(options.compressorOptions) ? undefined : codec.id,
    reuse: reuse && { origin: reuse.origin, fragments: reuse.fragments },
    signal: options.signal,
    // Reported every 4 MiB read, within a file too: a large file moves the progress as it is read.
    onRead: (bytes) => {
      progress.bytesRead += bytes;
      if (progress.bytesRead - lastReport >= 4 * 1024 * 1024) {
        lastReport = progress.bytesRead;
        report();
      }
    },
  });
  let lastReport = 0;
  const placed = await data.placeReused(tree.files);
  const reusing = reuse !== undefined && placed.used >= (1 - (reuse.maxUnused ?? 1)) * reuse.length;
  if (reusing) {
    progress.bytesRead += placed.bytes; // the placed files are done: progress still ends at the total
  } else if (reuse) {
    data.unplace(); // too much of the region would be carried along unused
  }
  await data.writeFiles(reusing ? placed.rest : tree.files, () => {
    progress.files++;
    if (progress.bytesRead - lastReport >= 4 * 1024 * 1024) {
      lastReport = progress.bytesRead;
      report();
    }
  });
  await data.finish();
  if (reusing) {
    // The region goes after the other files' data (so part 1 of an upload is mostly bytes that had to be sent anyway).
    data.shiftReused(out.position - reuse.offset);
    await out.reuse(reuse.offset, reuse.length);
  }
  throwIfAborted(options.signal);
  progress.phase = 'tables';
  report();
  const lookupXattrs = options.xattrs ?? source.xattrs?.bind(source);
  if (lookupXattrs) await attachXattrs(tree, lookupXattrs);

  const ids = new IdTable();
  const xattrs = new XattrTableBuilder();
  const tables = writeMetadataTables(tree.entries, data.layouts, { compress, ids, xattrs, allRoot: options.allRoot ?? false, pathOf: tree.pathOf });

  let position = out.position;
  const emit = async (chunks: readonly Uint8Array[]) => {
    for (const chunk of chunks) {
      await out.push(chunk);
      position += chunk.length;
    }
  };
  const inodeTableStart = position;
  await emit(tables.inodeTable.blocks);
  const directoryTableStart = position;
  await emit(tables.directoryTable.blocks);
  // With no fragments the start stays at the end of the directory table, as mksquashfs leaves it.
  let fragmentTableStart = position;
  if (data.fragments.length > 0) {
    const table = encodeLookupTable(encodeFragmentTable(data.fragments), position, compress);
    await emit(table.bytes);
    fragmentTableStart = table.indexStart; // the superblock points at the index after the blocks
  }
  let exportTableStart: number | undefined;
  if (exportable) {
    const table = encodeLookupTable(encodeExportTable(tables.exportRefs), position, compress);
    await emit(table.bytes);
    exportTableStart = table.indexStart;
  }
  const idTable = encodeLookupTable(ids.encode(), position, compress);
  await emit(idTable.bytes);
  let xattrIdTableStart: number | undefined;
  if (xattrs.count > 0) {
    const table = xattrs.encode(position, compress);
    await emit(table.bytes);
    xattrIdTableStart = table.headerStart;
  } else {
    flags |= Flag.NO_XATTRS;
  }
  const bytesUsed = position;
  const padding = (DEVICE_BLOCK - (bytesUsed % DEVICE_BLOCK)) % DEVICE_BLOCK;
  if (padding > 0) await emit([new Uint8Array(padding)]);
  await out.flush();

  if (fragments === 'never') flags |= Flag.NO_FRAGMENTS;
  if (fragments === 'always') flags |= Flag.ALWAYS_FRAGMENTS;
  if (exportable) flags |= Flag.EXPORTABLE;
  const superblock = encodeSuperblock({
    inodeCount: tables.inodeCount,
    modificationTime: options.mtime ?? Math.floor(Date.now() / 1000),
    blockSize,
    fragmentEntryCount: data.fragments.length,
    compressionId: codec.id,
    blockLog: Math.log2(blockSize),
    flags,
    idCount: ids.ids.length,
    versionMajor: 4,
    versionMinor: 0,
    rootInodeRef: tables.rootRef,
    bytesUsed,
    idTableStart: idTable.indexStart,
    xattrIdTableStart,
    inodeTableStart,
    directoryTableStart,
    fragmentTableStart,
    exportTableStart,
  });
  throwIfAborted(options.signal);
  await counting.finish(superblock);
  progress.phase = 'done';
  report();
  return {
    bytesUsed,
    imageSize: bytesUsed + padding,
    inodes: tables.inodeCount,
    files: tree.files.length,
    fragments: data.fragments.length,
    totalBytes: tree.totalBytes,
    compression: codec.name,
    level,
    blockSize,
  };
}
