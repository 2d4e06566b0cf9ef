/**
 * The CLI's progress (issue 18): the bar's frames (phase, percentage, bytes
 * of the total, rate, time left), and pack, backup, unpack and restore on a
 * TTY over a tree whose files do not change, each ending at exactly 100%:
 * the counts meet their totals (a file read twice to find duplicates, hard
 * links, holes and empty files included), they are not forced there. Not
 * on a TTY: nothing but one summary line on stderr.
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { formatDuration, ProgressBar, renderProgress } from '../src/cli/progress.js';
import { packDirectory, type PackResult } from '../src/node/index.js';
import { pseudoRandomBytes } from './helpers/tree.js';

let work: string;
let tree: string;

/** Blocks of 128 KiB: files of several blocks with the same size (hashed, then read again to be written), small ones, a hard link, a hole, an empty file. */
async function makeTree(dir: string): Promise<void> {
  await fsp.mkdir(path.join(dir, 'sub/deeper'), { recursive: true });
  const big = pseudoRandomBytes(300_000, 1);
  await fsp.writeFile(path.join(dir, 'big-a.bin'), big);
  await fsp.writeFile(path.join(dir, 'big-b.bin'), big); // a duplicate
  const other = pseudoRandomBytes(300_000, 2); // the same size, other bytes: both read twice
  await fsp.writeFile(path.join(dir, 'sub/big-c.bin'), other);
  await fsp.writeFile(path.join(dir, 'sub/large.bin'), pseudoRandomBytes(1_000_000, 3));
  for (let i = 0; i < 40; i++) await fsp.writeFile(path.join(dir, `sub/deeper/small-${i}.txt`), `small file ${i}\n`.repeat(i + 1));
  await fsp.link(path.join(dir, 'sub/large.bin'), path.join(dir, 'large-link.bin'));
  const sparse = await fsp.open(path.join(dir, 'sparse.bin'), 'w');
  await sparse.write(Buffer.from('end'), 0, 3, 600_000);
  await sparse.close();
  await fsp.writeFile(path.join(dir, 'empty'), '');
}

/** A TTY that keeps what is written, and a clock the test moves. */
function fakeTty(columns = 120) {
  const writes: string[] = [];
  return { writes, stream: { isTTY: true, columns, write: (text: string) => void writes.push(text) } };
}

/** The frames drawn, as their text (no escapes), and each one's percentage when it has one. */
function frames(writes: string[]): { text: string; percent?: number }[] {
  return writes
    .map((w) => w.replace(/^\r\x1b\[K/, '').replace(/\n$/, ''))
    .filter((text) => text !== '')
    .map((text) => ({ text, percent: /^\S+\s+(\d+)% /.exec(text) ? Number(/^\S+\s+(\d+)% /.exec(text)![1]) : undefined }));
}

/** Runs the CLI with a TTY for progress; stdout and stderr kept apart. */
async function cli(argv: string[], progress?: { isTTY: boolean; write(text: string): unknown }) {
  let out = '';
  let err = '';
  const code = await main(argv, { stdout: (t) => void (out += t), stderr: (t) => void (err += t), progress: progress ?? { isTTY: false, write: () => true } });
  return { code, out, err };
}

/** The frames of one run end at exactly 100%, never above, and each phase's percentage never goes back. */
function expectEndsAtExactly100(writes: string[], lastPhase: string): void {
  const shown = frames(writes);
  expect(shown.length).toBeGreaterThan(1);
  const last = shown[shown.length - 1]!;
  expect(last.text.startsWith(lastPhase), last.text).toBe(true);
  expect(last.percent, last.text).toBe(100);
  for (const frame of shown) if (frame.percent !== undefined) expect(frame.percent, frame.text).toBeLessThanOrEqual(100);
  for (let i = 1; i < shown.length; i++) {
    const [a, b] = [shown[i - 1]!, shown[i]!];
    if (a.text.split(' ')[0] === b.text.split(' ')[0] && a.percent !== undefined && b.percent !== undefined) expect(b.percent).toBeGreaterThanOrEqual(a.percent);
  }
  // The bar is left on its line: the last write ends it.
  expect(writes[writes.length - 1]!.endsWith('\n')).toBe(true);
}

beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'sqfs-progress-'));
  tree = path.join(work, 'tree');
  await makeTree(tree);
});

afterAll(async () => {
  if (work) await fsp.rm(work, { recursive: true, force: true });
});

describe('the progress bar', () => {
  it('renders phase, percentage, bytes of the total, rate and time left; a phase without a total shows its count', () => {
    const MiB = 1024 * 1024;
    expect(renderProgress({ phase: 'compress', done: 50 * MiB, total: 200 * MiB, detail: '12 files' }, 25 * MiB, 120)).toBe(
      'compress   25% ▕██████                  ▏  50.0 MiB / 200.0 MiB  25.0 MiB/s  ETA 0:06  12 files',
    );
    expect(renderProgress({ phase: 'upload', done: 3, total: 8 }, undefined)).toBe('upload     37% ▕█████████               ▏  3 B / 8 B');
    expect(renderProgress({ phase: 'tables', done: 7, total: 7 }, 1)).toMatch(/^tables    100% ▕█{24}▏  7 B \/ 7 B  1 B\/s$/);
    expect(renderProgress({ phase: 'walk', done: 1234, unit: 'entries' }, 500)).toBe('walk      1234 entries  500/s');
    expect(renderProgress({ phase: 'empty', done: 0, total: 0 }, undefined)).toMatch(/^empty     100% /);
    expect(renderProgress({ phase: 'compress', done: 1, total: 3 }, undefined, 20)).toHaveLength(19);
    expect([formatDuration(0), formatDuration(59.2), formatDuration(61), formatDuration(3 * 3600 + 5)]).toEqual(['0:00', '1:00', '1:01', '3:00:05']);
  });

  it('measures the rate over the last seconds, draws at most every 100 ms (a new phase at once), and is silent off a TTY', () => {
    let now = 0;
    const { writes, stream } = fakeTty();
    const bar = new ProgressBar(stream, () => now);
    bar.update({ phase: 'walk', done: 10, unit: 'entries' });
    bar.update({ phase: 'compress', done: 0, total: 100 * 1024 * 1024 });
    now = 50;
    bar.update({ phase: 'compress', done: 1024 * 1024, total: 100 * 1024 * 1024 }); // too soon: not drawn
    now = 1000;
    bar.update({ phase: 'compress', done: 10 * 1024 * 1024, total: 100 * 1024 * 1024 });
    bar.done();
    expect(frames(writes).map((f) => f.text)).toEqual([
      'walk      10 entries',
      'compress    0% ▕                        ▏  0 B / 100.0 MiB',
      'compress   10% ▕██▍                     ▏  10.0 MiB / 100.0 MiB  10.0 MiB/s  ETA 0:09',
    ]);
    expect(writes[writes.length - 1]).toBe('\n'); // drawn already: the line is only ended
    // A last state that was skipped is drawn at the end.
    const skipped = fakeTty();
    const again = new ProgressBar(skipped.stream, () => now);
    again.update({ phase: 'compress', done: 1, total: 2 });
    again.update({ phase: 'compress', done: 2, total: 2 });
    again.done();
    expect(skipped.writes.map((w) => w.replace(/^\r\x1b\[K/, ''))).toEqual(['compress   50% ▕████████████            ▏  1 B / 2 B', 'compress  100% ▕████████████████████████▏  2 B / 2 B\n']);
    const quiet: string[] = [];
    const off = new ProgressBar({ isTTY: false, write: (t) => void quiet.push(t) });
    off.update({ phase: 'compress', done: 1, total: 2 }, true);
    off.done();
    expect(quiet).toEqual([]);
  });
});

describe('on a TTY, over a tree whose files do not change, the bar ends at exactly 100%', () => {
  let packed: PackResult;

  it('pack: the bytes read meet the total (not above it) however often a file is read', async () => {
    // The writer's own counts: every event at most the total, the last ones exactly it.
    const events: { phase: string; bytesRead: number; totalBytes: number }[] = [];
    packed = await packDirectory(tree, path.join(work, 'api.sqfs'), { compression: 'gzip', level: 1, onProgress: (p) => events.push(p) });
    expect(events.every((e) => e.bytesRead <= e.totalBytes)).toBe(true);
    expect(events.filter((e) => e.phase === 'tables' || e.phase === 'done').map((e) => e.bytesRead)).toEqual([packed.totalBytes, packed.totalBytes]);
    // Hard links once, holes and the duplicate counted as the files they are.
    expect(packed.totalBytes).toBe(2 * 300_000 + 300_000 + 1_000_000 + 600_003 + Array.from({ length: 40 }, (_, i) => `small file ${i}\n`.length * (i + 1)).reduce((a, b) => a + b, 0));

    const { writes, stream } = fakeTty();
    const image = path.join(work, 'cli.sqfs');
    const run = await cli(['pack', tree, image, '--comp', 'gzip', '--level', '1'], stream);
    expect(run.code, run.err).toBe(0);
    expectEndsAtExactly100(writes, 'done');
    expect(frames(writes).some((f) => f.text.startsWith('compress'))).toBe(true);
    expect(run.err).toMatch(/^[^\n]*cli\.sqfs: 46 files, 2\.4 MiB, image [\d.]+ [KM]iB \(gzip\), in [\d.]+s\n$/);
    expect(run.out).toBe('');
  });

  it('backup: compress, then the upload, to 100%; the handle records the bytes', async () => {
    const { writes, stream } = fakeTty();
    const store = `file://${path.join(work, 'store')}`;
    const run = await cli(['backup', tree, '--store', store], stream);
    expect(run.code, run.err).toBe(0);
    const handle = JSON.parse(run.out);
    expect(handle).toMatchObject({ compression: 'zstd', files: 46, bytes: packed.totalBytes, warnings: [] });
    expectEndsAtExactly100(writes, 'done');
    // The walk is shown every 1000 entries (this tree has fewer); a new phase is always drawn.
    expect([...new Set(frames(writes).map((f) => f.text.split(' ')[0]))]).toEqual(['compress', 'tables', 'upload', 'done']);
    expect(run.err).toMatch(new RegExp(`^backup ${handle.id}: 46 files, 2\\.4 MiB, image [\\d.]+ [KM]iB \\(zstd\\), in [\\d.]+s\\n$`, 'm'));

    // restore: the download, then the files' bytes to the handle's record.
    const restored = fakeTty();
    const target = path.join(work, 'restored');
    const back = await cli(['restore', handle.id, target, '--store', store], restored.stream);
    expect(back.code, back.err).toBe(0);
    expectEndsAtExactly100(restored.writes, 'extract');
    expect(back.err).toMatch(new RegExp(`^restored ${target}: 46 files, [\\d.]+ MiB, image ${(handle.size / 1024 / 1024).toFixed(1)} MiB, in [\\d.]+s\\n$`, 'm'));
  });

  it('unpack: the files counted first, then extracted to 100%', async () => {
    const { writes, stream } = fakeTty();
    const run = await cli(['unpack', path.join(work, 'cli.sqfs'), path.join(work, 'unpacked')], stream);
    expect(run.code, run.err).toBe(0);
    expectEndsAtExactly100(writes, 'extract');
    expect(frames(writes)[0]!.text).toMatch(/^scan +\d+ entries/);
    expect(run.err).toMatch(/^[^\n]*unpacked: 46 files, [\d.]+ MiB, image [\d.]+ [KM]iB, in [\d.]+s\n$/);
  });

  it('not on a TTY: no bar, one summary line on stderr', async () => {
    const run = await cli(['unpack', path.join(work, 'cli.sqfs'), path.join(work, 'unpacked-quiet')]);
    expect(run.code).toBe(0);
    expect(run.err.split('\n')).toHaveLength(2);
    expect(run.out).toBe('');
  });
});
