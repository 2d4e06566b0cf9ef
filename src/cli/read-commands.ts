import { existsSync } from 'node:fs';
import { isBackupId } from '../backup/handle.js';
import { SquashfsError } from '../errors.js';
import { openImage } from '../node/file-source.js';
import { unpackImage } from '../node/unpack.js';
import { concatBytes } from '../squashfs/bytes.js';
import { splitPath } from '../squashfs/reader/image.js';
import type { BackupImage } from '../backup/chain-image.js';
import type { EntryStat } from '../squashfs/reader/types.js';
import { longLine } from './listing.js';
import type { CliContext } from './main.js';
import { formatBytes, ProgressBar, summaryLine } from './progress.js';
import { STORE_OPTIONS, type StoreValues } from './store-options.js';

/** Opens a backup by id (the store code is loaded only for this). */
async function openBackupById(ctx: CliContext, id: string, values: StoreValues): Promise<BackupImage> {
  return (await import('./backup-commands.js')).openBackupById(ctx, id, values);
}

/** Opens an image file, or (for ls and cat) a stored backup named by its id (through its chain, for a delta). */
async function withImage<T>(path: string, fn: (image: BackupImage) => Promise<T>, backupFrom?: { ctx: CliContext; values: StoreValues }): Promise<T> {
  const image = backupFrom && isBackupId(path) && !existsSync(path) ? await openBackupById(backupFrom.ctx, path, backupFrom.values) : await openImage(path);
  return using(image, fn);
}

async function using<I extends { close(): Promise<void> }, T>(image: I, fn: (image: I) => Promise<T>): Promise<T> {
  try {
    return await fn(image);
  } finally {
    await image.close();
  }
}


const SLASH = new Uint8Array([0x2f]);
const NEWLINE = new Uint8Array([0x0a]);

/** sqfs ls <image> [path] [-l] [-R]: names are written as the raw bytes they are. */
export async function ls(ctx: CliContext): Promise<number> {
  const { values, positionals } = ctx.parse({ ...STORE_OPTIONS, long: { type: 'boolean', short: 'l' }, recursive: { type: 'boolean', short: 'R' } });
  if (positionals.length < 1 || positionals.length > 2) throw ctx.usage('ls takes <image> [path]');
  const [imagePath, inner = '/'] = positionals as [string, string?];
  return withImage(imagePath, async (image) => {
    const start = splitPath(inner);
    const pathOf = (names: Uint8Array[]) => (names.length === 0 ? SLASH : concatBytes(names.flatMap((n) => [SLASH, n])));
    const print = async (names: Uint8Array[], shown: Uint8Array, stat?: EntryStat) => {
      if (!values.long) return ctx.outBytes(concatBytes([shown, NEWLINE]));
      const path = pathOf(names);
      stat ??= await image.stat(path);
      const target = stat.type === 'symlink' ? await image.readlink(path) : undefined;
      return ctx.outBytes(longLine(stat, shown, target));
    };
    const top = await image.stat(pathOf(start));
    if (values.recursive) {
      const visit = async (names: Uint8Array[]) => {
        const stat = await image.stat(pathOf(names));
        await print(names, pathOf(names), stat);
        if (stat.type !== 'directory') return;
        for (const entry of await image.readdir(pathOf(names))) await visit([...names, entry.nameBytes]);
      };
      if (start.length === 0) {
        for await (const entry of image.walk()) await print(entry.names, pathOf(entry.names), entry.stat); // one pass
      } else await visit(start);
    } else if (top.type === 'directory') {
      for (const entry of await image.readdir(pathOf(start))) await print([...start, entry.nameBytes], entry.nameBytes);
    } else {
      await print(start, pathOf(start), top);
    }
    return 0;
  }, { ctx, values });
}

/** sqfs cat <image> <path> */
export async function cat(ctx: CliContext): Promise<number> {
  const { values, positionals } = ctx.parse({ ...STORE_OPTIONS });
  if (positionals.length !== 2) throw ctx.usage('cat takes <image> <path>');
  const [imagePath, inner] = positionals as [string, string];
  return withImage(imagePath, async (image) => {
    const stat = await image.stat(inner);
    if (stat.type !== 'file') throw new SquashfsError('NOT_FOUND', `${inner} is a ${stat.type}, not a regular file`, { path: inner });
    for await (const chunk of image.readChunks(inner)) await ctx.outBytes(chunk.bytes ?? new Uint8Array(chunk.hole));
    return 0;
  }, { ctx, values });
}

/** The sizes of an image's regular files, a hard-linked one once: what an unpack's `fileBytes` ends at. */
async function fileBytes(image: BackupImage, onEntries: (entries: number) => void): Promise<number> {
  const linked = new Set<number>();
  let bytes = 0;
  let entries = 0;
  for await (const { stat } of image.walk()) {
    if (++entries % 1000 === 0) onEntries(entries);
    if (stat.type !== 'file' || (stat.nlink > 1 && linked.has(stat.inode))) continue;
    if (stat.nlink > 1) linked.add(stat.inode);
    bytes += stat.size;
  }
  onEntries(entries);
  return bytes;
}

/** sqfs unpack <image> <dir> [--force] */
export async function unpack(ctx: CliContext): Promise<number> {
  const { values, positionals } = ctx.parse({ force: { type: 'boolean', short: 'f' } });
  if (positionals.length !== 2) throw ctx.usage('unpack takes <image> <dir>');
  const [imagePath, dir] = positionals as [string, string];
  const progress = new ProgressBar(ctx.progress);
  const started = Date.now();
  return using(await openImage(imagePath), async (image) => {
    // For the bar's total, the files' bytes are counted first: one pass over the metadata, only where the bar is shown.
    const total = progress.enabled ? await fileBytes(image, (done) => progress.update({ phase: 'scan', done, unit: 'entries' })) : undefined;
    const result = await unpackImage(image, dir, {
      force: values.force === true,
      onWarning: (message) => ctx.err(`sqfs unpack: warning: ${message}\n`),
      onProgress: (p) => progress.update({ phase: 'extract', done: p.fileBytes, total, detail: `${p.entries} entries` }),
    }).finally(() => progress.done());
    ctx.err(summaryLine(dir, [`${result.files} files`, formatBytes(result.bytes), `image ${formatBytes(image.info().size)}`], started));
    return 0;
  });
}

/** sqfs info <image> [--json] */
export async function info(ctx: CliContext): Promise<number> {
  const { values, positionals } = ctx.parse({ json: { type: 'boolean' } });
  if (positionals.length !== 1) throw ctx.usage('info takes <image>');
  return withImage(positionals[0]!, async (image) => {
    const details = { ...image.info(), xattrIds: await image.xattrCount() };
    if (values.json) {
      ctx.out(`${JSON.stringify(details, null, 2)}\n`);
      return 0;
    }
    const options = details.compressorOptions ? ` (${Object.entries(details.compressorOptions).map(([k, v]) => `${k} ${v}`).join(', ')})` : '';
    ctx.out(
      [
        `SquashFS ${details.version}, ${details.compression}${options}, block size ${details.blockSize}`,
        `bytes used ${details.bytesUsed} of ${details.size}`,
        `inodes ${details.inodes}, fragments ${details.fragments}, ids ${details.ids}, xattr sets ${details.xattrIds}`,
        `created ${new Date(details.modificationTime * 1000).toISOString()}`,
        `flags ${details.flags.join(' ') || '(none)'}${details.exportable ? '' : ', not exportable'}`,
      ].join('\n') + '\n',
    );
    return 0;
  });
}
