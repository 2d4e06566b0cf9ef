import { resolve } from 'node:path';
import { SquashfsError } from '../errors.js';
import { excludePatterns } from '../source/exclude.js';
import { writeImage, type WriterOptions, type WriteResult } from '../squashfs/writer/writer.js';
import { nodeCodecs, nodeSha256 } from './codecs.js';
import { FileSink } from './file-sink.js';
import { nodeSource } from './source.js';
import { pathKey, readTreeXattrs } from './xattrs.js';

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
  const sink = new FileSink(resolve(imagePath));
  let xattrs: WriterOptions['xattrs'];
  if (options.xattrs ?? true) {
    const table = await readTreeXattrs(root);
    if (table) xattrs = async (path) => table.get(pathKey(path));
    else options.onWarning?.('getfattr is not installed: extended attributes are not stored');
  }
  const { noFragments, alwaysUseFragments, exclude, onWarning: _onWarning, xattrs: _xattrs, ...rest } = options;
  try {
    await sink.open();
  } catch (cause) {
    throw new SquashfsError('WRITE_FAILED', `cannot create ${sink.tempPath}: ${(cause as Error).message}`, { path: imagePath, cause });
  }
  try {
    const result = await writeImage(nodeSource(), root, sink, {
      codecs: nodeCodecs(),
      createHash: nodeSha256,
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
  }
}
