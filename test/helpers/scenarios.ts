/**
 * Source trees that must make the writer fail, shared by the writer's error
 * tests and the harness self-check (which proves with a stand-in reader
 * that each situation really arises).
 *
 * How the cases are made, given that the tests run as root:
 * - Unreadable file / directory: root (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH)
 *   reads mode 000 files, so the writer runs in a child process as
 *   uid/gid 65534 (`setpriv --reuid=65534 --regid=65534 --clear-groups`),
 *   where a root-owned mode 000 file (or directory) is unreadable. When the
 *   tests do not run as root, the child runs as the current user.
 * - A file that changes while packed: a 1 GiB sparse file. The writer runs
 *   in a child process; the test polls /proc/<pid>/fd until the child has
 *   the file open, then truncates it to 1 MiB. Reading 1 GiB takes far
 *   longer than the ~1 ms polling interval, so the writer is always mid-file
 *   (or has yet to read it) when its size changes: it must notice the short
 *   read (or the changed size) and fail with SOURCE_CHANGED.
 * - A name over 255 bytes cannot be created on Linux (ENAMETOOLONG), nor can
 *   "/" or NUL in a name; INVALID_NAME is for a lower-level test with an
 *   in-memory source (memfs), not this file-system based one.
 */
import type { ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { waitUntilOpened } from './child.js';

export const NOBODY = { uid: 65534, gid: 65534 };

export function runningAsRoot(): boolean {
  return process.getuid?.() === 0;
}

export interface Scenario {
  /** The source directory to pack. */
  src: string;
  /** An empty directory, writable by the child, to put the image in. */
  outDir: string;
  /** The path the error must name. */
  badPath: string;
  /** Who the child must run as (undefined: the current user). */
  asUser?: { uid: number; gid: number };
}

async function base(dir: string): Promise<{ src: string; outDir: string }> {
  const src = path.join(dir, 'src');
  const outDir = path.join(dir, 'out');
  await fsp.mkdir(path.join(src, 'sub'), { recursive: true });
  await fsp.mkdir(outDir);
  await fsp.writeFile(path.join(src, 'a.txt'), 'readable\n');
  await fsp.writeFile(path.join(src, 'sub', 'b.txt'), 'readable too\n');
  if (runningAsRoot()) {
    // mkdtemp makes 0700 dirs: let the unprivileged child in.
    await fsp.chmod(dir, 0o755);
    await fsp.chown(outDir, NOBODY.uid, NOBODY.gid);
  }
  return { src, outDir };
}

/** `src/sub/secret` is a file the child cannot read. */
export async function unreadableFileScenario(dir: string): Promise<Scenario> {
  const { src, outDir } = await base(dir);
  const badPath = path.join(src, 'sub', 'secret');
  await fsp.writeFile(badPath, 'you cannot read me\n');
  await fsp.chmod(badPath, 0o000);
  return { src, outDir, badPath, asUser: runningAsRoot() ? NOBODY : undefined };
}

/** `src/sub/locked` is a directory the child cannot list. */
export async function unreadableDirScenario(dir: string): Promise<Scenario> {
  const { src, outDir } = await base(dir);
  const badPath = path.join(src, 'sub', 'locked');
  await fsp.mkdir(badPath);
  await fsp.writeFile(path.join(badPath, 'inside'), 'x');
  await fsp.chmod(badPath, 0o000);
  return { src, outDir, badPath, asUser: runningAsRoot() ? NOBODY : undefined };
}

export const CHANGING_FILE_SIZE = 1 << 30;
export const CHANGED_SIZE = 1 << 20;

/** `src/sub/shrinks.bin` is 1 GiB (sparse); `shrinkWhenOpened` truncates it. */
export async function changingFileScenario(dir: string): Promise<Scenario> {
  const { src, outDir } = await base(dir);
  const badPath = path.join(src, 'sub', 'shrinks.bin');
  const fh = await fsp.open(badPath, 'w');
  await fh.write(Buffer.from('start'), 0, 5, 0);
  await fh.truncate(CHANGING_FILE_SIZE);
  await fh.close();
  return { src, outDir, badPath };
}

/**
 * For ChildRunOptions.onSpawn: once the child has `file` open, truncate it.
 * `done` resolves to true if the truncation happened, false if the child
 * exited without opening the file.
 */
export function shrinkWhenOpened(file: string): { onSpawn: (c: ChildProcess) => void; done: Promise<boolean> } {
  let resolve!: (v: boolean) => void;
  const done = new Promise<boolean>((r) => (resolve = r));
  return {
    done,
    onSpawn: (child) => {
      waitUntilOpened(child.pid!, file).then(
        async () => {
          await fsp.truncate(file, CHANGED_SIZE);
          resolve(true);
        },
        () => resolve(false),
      );
    },
  };
}
