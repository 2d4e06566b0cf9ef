import { packDirectory } from '../node/pack.js';
import { parseInteger, parseSize, type CliContext } from './main.js';
import { formatBytes, ProgressBar, summaryLine, writingState } from './progress.js';

/** sqfs pack <dir> <image> [options] */
export async function pack(ctx: CliContext): Promise<number> {
  const { values, positionals } = ctx.parse({
    comp: { type: 'string' },
    level: { type: 'string' },
    'xz-dict-size': { type: 'string' },
    'xz-bcj': { type: 'string' },
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
  const progress = new ProgressBar(ctx.progress);
  const started = Date.now();
  const result = await packDirectory(dir, image, {
    compression: values.comp,
    level: parseInteger(values.level, '--level'),
    compressorOptions: { dictionarySize: values['xz-dict-size'], filters: values['xz-bcj']?.split(',') },
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
    onProgress: (p) => progress.update(writingState(p), p.phase === 'done'),
  }).finally(() => progress.done());
  // On a TTY after the bar, elsewhere alone: one line.
  const parts = [`${result.files} files`, `${formatBytes(result.totalBytes)}`, `image ${formatBytes(result.imageSize)} (${result.compression})`];
  ctx.err(summaryLine(image, parts, started));
  return 0;
}
