/**
 * The writer's failures: each must be a typed SquashfsError naming the
 * path concerned, the CLI must exit non-zero and say which path, and no
 * image (nor any temp file) may remain in the target directory.
 *
 * How the cases are made (we run as root, who can read anything): see
 * test/helpers/scenarios.ts. In short, unreadable sources are packed by a
 * child process running as uid 65534 (setpriv), and the changing file is a
 * 1 GiB sparse file truncated as soon as the child process has it open.
 *
 * Not covered here: INVALID_NAME. Linux cannot create a name over 255
 * bytes (ENAMETOOLONG) or with "/" or NUL, so the writer can never meet
 * one through packDirectory; that belongs in a lower-level test feeding the
 * writer an in-memory source (e.g. memfs).
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { SquashfsError } from '../src/errors.js';
import { packDirectory, type PackOptions } from '../src/node/index.js';
import { buildPackChild, cliInChild, packInChild, type ApiOutcome, type CliOutcome } from './helpers/child.js';
import { hasTool, withTempDir } from './helpers/oracles.js';
import {
  changingFileScenario,
  runningAsRoot,
  shrinkWhenOpened,
  unreadableDirScenario,
  unreadableFileScenario,
  type Scenario,
} from './helpers/scenarios.js';

const TIMEOUT = 60_000;

let work: string;
beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'sqfs-errors-'));
});

/** The writer bundled for child processes (built on first use). */
let childScriptP: Promise<string> | undefined;
function childScript(): Promise<string> {
  childScriptP ??= buildPackChild(work);
  return childScriptP;
}
afterAll(async () => {
  if (work) await fsp.rm(work, { recursive: true, force: true });
});

const canDropPrivileges = !runningAsRoot() || (await hasTool('setpriv', ['--version']));

/** The error names `expected` (absolute, or relative to the source). */
function expectNamesPath(errPath: string | undefined, expected: string, src: string): void {
  expect(errPath, 'error.path').toBeTypeOf('string');
  expect(path.resolve(src, errPath!)).toBe(path.resolve(expected));
}

async function expectEmptyDir(dir: string): Promise<void> {
  expect(await fsp.readdir(dir), `left behind in ${dir}`).toEqual([]);
}

async function expectPackFails(
  src: string,
  options: PackOptions,
  code: string,
  badPath: string | undefined,
): Promise<void> {
  await withTempDir('sqfs-err-out-', async (out) => {
    const image = path.join(out, 'image.sqfs');
    let caught: unknown;
    try {
      await packDirectory(src, image, options);
    } catch (e) {
      caught = e;
    }
    expect(caught, 'packDirectory must reject').toBeInstanceOf(SquashfsError);
    const err = caught as SquashfsError;
    expect(err.code).toBe(code);
    if (badPath !== undefined) expectNamesPath(err.path, badPath, src);
    await expectEmptyDir(out);
  });
}

async function runMain(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) });
  return { code, stdout, stderr };
}

async function expectCliFails(args: (image: string) => string[], mentions?: string): Promise<void> {
  await withTempDir('sqfs-err-out-', async (out) => {
    const image = path.join(out, 'image.sqfs');
    const r = await runMain(args(image));
    expect(r.code, `exit code; stderr: ${r.stderr}`).not.toBe(0);
    expect(r.stderr.length, 'an error message on stderr').toBeGreaterThan(0);
    if (mentions !== undefined) expect(r.stderr).toContain(mentions);
    await expectEmptyDir(out);
  });
}

describe('source problems (in process)', () => {
  it('missing source directory: SOURCE_NOT_FOUND', async () => {
    const missing = path.join(work, 'does-not-exist');
    await expectPackFails(missing, {}, 'SOURCE_NOT_FOUND', missing);
    await expectCliFails((img) => ['pack', missing, img], missing);
  }, TIMEOUT);

  it('a file instead of a directory: NOT_A_DIRECTORY', async () => {
    const file = path.join(work, 'plain-file');
    await fsp.writeFile(file, 'not a directory\n');
    await expectPackFails(file, {}, 'NOT_A_DIRECTORY', file);
    await expectCliFails((img) => ['pack', file, img], file);
  }, TIMEOUT);
});

describe('invalid options', () => {
  const src = () => path.join(work, 'opt-src');
  beforeAll(async () => {
    await fsp.mkdir(src(), { recursive: true });
    await fsp.writeFile(path.join(src(), 'f'), 'x');
  });

  it.each<[string, PackOptions]>([
    ['blockSize not a power of two', { blockSize: 100_000 }],
    ['blockSize too small', { blockSize: 2048 }],
    ['blockSize too large', { blockSize: 2 * 1048576 }],
    ['level 0', { level: 0 }],
    ['level 10', { level: 10 }],
    ['level not an integer', { level: 4.5 }],
  ])('%s: INVALID_OPTION, no image', async (_name, options) => {
    await expectPackFails(src(), options, 'INVALID_OPTION', undefined);
  });

  // Refused before any worker starts, so the error is the codec's own, not a worker's CODEC_ERROR after the walk.
  it.each(['lzma', 'lzo'])('a compressor that only reads (%s), on worker threads: UNSUPPORTED_COMPRESSOR, no image', async (name) => {
    await expectPackFails(src(), { compression: name, processors: 2 }, 'UNSUPPORTED_COMPRESSOR', undefined);
  });

  it.each<[string, string[]]>([
    ['--block-size 1000', ['--block-size', '1000']],
    ['--level 42', ['--level', '42']],
    ['--comp lzo (it only reads)', ['--comp', 'lzo']],
    ['--mtime not a number', ['--mtime', 'yesterday']],
    ['an unknown flag', ['--bogus']],
  ])('CLI %s: non-zero exit, no image', async (_name, flags) => {
    await expectCliFails((img) => ['pack', src(), img, ...flags]);
  });

  it('CLI usage errors: non-zero exit', async () => {
    expect((await runMain([])).code).not.toBe(0);
    expect((await runMain(['pack'])).code).not.toBe(0);
    expect((await runMain(['pack', src()])).code).not.toBe(0);
    expect((await runMain(['no-such-command'])).code).not.toBe(0);
  });
});

/** Runs the scenario through packDirectory and the CLI in child processes. */
async function expectChildFails(
  make: (dir: string) => Promise<Scenario>,
  code: string,
  watch?: 'shrink',
): Promise<void> {
  // packDirectory
  await withTempDir('sqfs-scn-', async (dir) => {
    const sc = await make(dir);
    const shrink = watch === 'shrink' ? shrinkWhenOpened(sc.badPath) : undefined;
    const outcome: ApiOutcome = await packInChild(await childScript(), sc.src, path.join(sc.outDir, 'image.sqfs'), { mtime: 0 }, {
      asUser: sc.asUser,
      onSpawn: shrink?.onSpawn,
    });
    if (shrink) expect(await shrink.done, 'the writer opened the file (and it was then truncated)').toBe(true);
    expect(outcome.ok, JSON.stringify(outcome)).toBe(false);
    if (!outcome.ok) {
      expect(outcome.error, outcome.error.stack).toMatchObject({ isSquashfsError: true, code });
      expectNamesPath(outcome.error.path, sc.badPath, sc.src);
    }
    await expectEmptyDir(sc.outDir);
  });
  // the CLI
  await withTempDir('sqfs-scn-', async (dir) => {
    const sc = await make(dir);
    const shrink = watch === 'shrink' ? shrinkWhenOpened(sc.badPath) : undefined;
    const outcome: CliOutcome = await cliInChild(
      await childScript(),
      ['pack', sc.src, path.join(sc.outDir, 'image.sqfs'), '--mtime', '0'],
      { asUser: sc.asUser, onSpawn: shrink?.onSpawn },
    );
    if (shrink) expect(await shrink.done, 'the CLI opened the file (and it was then truncated)').toBe(true);
    expect(outcome.threw, 'main must not throw').toBeUndefined();
    expect(outcome.code, outcome.stderr).not.toBe(0);
    expect(outcome.stderr).toContain(path.relative(sc.src, sc.badPath));
    await expectEmptyDir(sc.outDir);
  });
}

describe.skipIf(!canDropPrivileges)('unreadable sources (child process as uid 65534)', () => {
  it('an unreadable file: SOURCE_UNREADABLE naming the file', async () => {
    await expectChildFails(unreadableFileScenario, 'SOURCE_UNREADABLE');
  }, TIMEOUT);

  it('an unreadable directory: SOURCE_UNREADABLE naming the directory', async () => {
    await expectChildFails(unreadableDirScenario, 'SOURCE_UNREADABLE');
  }, TIMEOUT);
});

describe('a file that changes while packed', () => {
  it('shrinks mid-read: SOURCE_CHANGED naming the file', async () => {
    await expectChildFails(changingFileScenario, 'SOURCE_CHANGED', 'shrink');
  }, TIMEOUT);
});

describe('the error cases are real: without the trigger the same source packs', () => {
  it.skipIf(!runningAsRoot())('root reads the "unreadable" sources: the privilege drop is what fails them', async () => {
    for (const make of [unreadableFileScenario, unreadableDirScenario]) {
      await withTempDir('sqfs-scn-', async (dir) => {
        const sc = await make(dir);
        const outcome = await packInChild(await childScript(), sc.src, path.join(sc.outDir, 'image.sqfs'), { mtime: 0 });
        expect(outcome.ok, JSON.stringify(outcome)).toBe(true);
      });
    }
  }, TIMEOUT);

  it('the changing file packs when left alone', async () => {
    await withTempDir('sqfs-scn-', async (dir) => {
      const sc = await changingFileScenario(dir);
      await fsp.truncate(sc.badPath, 4 << 20); // quicker; what matters is that no change means no error
      const outcome = await packInChild(await childScript(), sc.src, path.join(sc.outDir, 'image.sqfs'), { mtime: 0 });
      expect(outcome.ok, JSON.stringify(outcome)).toBe(true);
    });
  }, TIMEOUT);
});
