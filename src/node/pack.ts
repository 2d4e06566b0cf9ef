import { resolve } from 'node:path';
import { SquashfsError } from '../errors.js';
import { excludePatterns } from '../source/exclude.js';
import { resolveWriterOptions, writeImage, type WriterOptions, type WriteResult } from '../squashfs/writer/writer.js';
import { availableParallelism } from 'node:os';
import { loadNodeCodecs, nodeSha256 } from './codecs.js';
import { CompressPool, sharedModules } from './compress-pool.js';
import { FileSink } from './file-sink.js';
import { nodeSource } from './source.js';
import { treeXattrs } from './xattrs.js';

export interface PackOptions extends Omit<WriterOptions, 'exclude' | 'fragments' | 'xattrs' | 'codecs'> {
  /** Like mksquashfs -no-fragments. */
  noFragments?: boolean;
  /** Like mksquashfs -always-use-fragments. */
  alwaysUseFragments?: boolean;
  /** gitignore-style patterns of entries to leave out. */
  exclude?: string[];
  /** Read xattrs with getfattr where it is installed (default true). */
  xattrs?: boolean;
  /** Told of things skipped (e.g. xattrs without getfattr). */
  onWarning?: (message: string) => void;
  /**
   * Make the image readable by its owner only (0600), for a tree with
   * private files. Default: 0644 under the umask, as mksquashfs makes it.
   */
  private?: boolean;
  /**
   * Threads compressing data blocks, like mksquashfs -processors (default:
   * the available cores). 0 compresses on the calling thread. The image is
   * byte-identical whatever the number.
   */
  processors?: number;
}

export type PackResult = WriteResult;

/** The image time: `mtime`, else SOURCE_DATE_EPOCH, else now. */
export function defaultMtime(mtime: number | undefined): number | undefined {
  if (mtime !== undefined) return mtime;
  const epoch = process.env.SOURCE_DATE_EPOCH;
  return epoch !== undefined && /^\d+$/.test(epoch) ? Number(epoch) : undefined;
}

/**
 * Packs a directory into a SquashFS image file. The image is written to a
 * temporary file beside `imagePath` and renamed into place only on success.
 */
export async function packDirectory(dir: string, imagePath: string, options: PackOptions = {}): Promise<PackResult> {
  const root = resolve(dir);
  const sink = new FileSink(resolve(imagePath), { private: options.private });
  const xattrs: WriterOptions['xattrs'] =
    options.xattrs ?? true ? treeXattrs(root, () => options.onWarning?.('getfattr is not installed: extended attributes are not stored')) : undefined;
  const { noFragments, alwaysUseFragments, exclude, processors, onWarning: _onWarning, xattrs: _xattrs, private: _private, ...rest } = options;
  // Only the chosen codec's encoder is loaded: the others' WASM modules would be compiled for nothing.
  const codecs = await loadNodeCodecs({ compressors: [rest.compression ?? 'gzip'] });
  // Bad options (a codec that only reads included) fail here, before any thread starts.
  const { codec, blockSize } = resolveWriterOptions({ ...rest, codecs, mtime: defaultMtime(options.mtime) });
  const compression = codec.name;
  const threads = processors ?? availableParallelism();
  if (!Number.isInteger(threads) || threads < 0) {
    throw new SquashfsError('INVALID_OPTION', `processors must be a whole number, got ${processors}`);
  }
  const usePool = threads > 0 && CompressPool.available();
  if (threads > 0 && !usePool) options.onWarning?.('the compression worker script is not beside this code: compressing on the main thread');
  const pool = usePool
    ? new CompressPool(compression, { threads, blockSize, compressorOptions: rest.compressorOptions, ...(await sharedModules(compression)) })
    : undefined;
  try {
    await sink.open();
  } catch (cause) {
    throw new SquashfsError('WRITE_FAILED', `cannot create ${sink.tempPath}: ${(cause as Error).message}`, { path: imagePath, cause });
  }
  try {
    const result = await writeImage(nodeSource(), root, sink, {
      codecs,
      createHash: nodeSha256,
      ...pool?.writerOptions(),
      ...rest,
      mtime: defaultMtime(options.mtime),
      fragments: noFragments ? 'never' : alwaysUseFragments ? 'always' : 'default',
      exclude: excludePatterns(exclude ?? []),
      xattrs,
    });
    await sink.commit().catch((cause: Error) => {
      throw new SquashfsError('WRITE_FAILED', `cannot complete ${imagePath}: ${cause.message}`, { path: imagePath, cause });
    });
    return result;
  } catch (error) {
    await sink.discard();
    throw error;
  } finally {
    await pool?.close();
  }
}
