import { packDirectory } from '../node/pack.js';
import { parseInteger, parseSize, type CliContext } from './main.js';
import { formatBytes, ProgressLine } from './progress.js';

/** sqfs pack <dir> <image> [options] */
export async function pack(ctx: CliContext): Promise<number> {
  const { values, positionals } = ctx.parse({
    comp: { type: 'string' },
    level: { type: 'string' },
    'block-size': { type: 'string' },
    'no-fragments': { type: 'boolean' },
    'always-use-fragments': { type: 'boolean' },
    'all-root': { type: 'boolean' },
    mtime: { type: 'string' },
    exclude: { type: 'string', multiple: true },
    'no-xattrs': { type: 'boolean' },
    processors: { type: 'string' },
    private: { type: 'boolean' },
  });
  if (positionals.length !== 2) throw ctx.usage('pack takes <dir> <image>');
  const [dir, image] = positionals as [string, string];
  const progress = new ProgressLine(ctx.progress);
  const started = Date.now();
  const result = await packDirectory(dir, image, {
    compression: values.comp,
    level: parseInteger(values.level, '--level'),
    blockSize: values['block-size'] === undefined ? undefined : parseSize(values['block-size'], '--block-size'),
    noFragments: values['no-fragments'],
    alwaysUseFragments: values['always-use-fragments'],
    allRoot: values['all-root'],
    mtime: parseInteger(values.mtime, '--mtime'),
    exclude: values.exclude,
    xattrs: !values['no-xattrs'],
    processors: parseInteger(values.processors, '--processors'),
    private: values.private,
    onWarning: (message) => ctx.err(`sqfs: warning: ${message}\n`),
    onProgress: (p) => {
      if (p.phase === 'walk') progress.update(() => `scanning: ${p.entries} entries`);
      else if (p.phase === 'data') {
        const percent = p.totalBytes > 0 ? Math.floor((p.bytesRead / p.totalBytes) * 100) : 100;
        progress.update(() => `packing: ${percent}% ${formatBytes(p.bytesRead)} / ${formatBytes(p.totalBytes)}, ${p.files} files`);
      } else if (p.phase === 'tables') progress.update('writing tables', true);
    },
  }).finally(() => progress.done());
  if (progress.enabled) {
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    ctx.err(`${image}: ${result.inodes} inodes, ${formatBytes(result.imageSize)} from ${formatBytes(result.totalBytes)} in ${seconds}s\n`);
  }
  return 0;
}
