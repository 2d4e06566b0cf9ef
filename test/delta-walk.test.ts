/**
 * The tree walk behind a delta's plan (issue #14): it reads the tree ahead
 * of the comparison, in the comparison's order, but never more than its
 * read-ahead, and a failure reaches the comparison where it happened.
 */
import { describe, expect, it } from 'vitest';
import { Volume } from 'memfs';
import { TreeWalk } from '../src/backup/delta.js';
import { decodeUtf8Lossy } from '../src/squashfs/bytes.js';
import { fsSource } from '../src/source/fs-source.js';
import type { SourcePath, TreeSource } from '../src/source/source.js';

const S_IFDIR = 0o040000;

function tree(): Volume {
  const files: Record<string, string> = {};
  for (const a of ['b', 'a', 'c']) {
    for (const b of ['y', 'x']) {
      files[`/t/${a}/${b}/f1`] = `${a}${b}1`;
      files[`/t/${a}/${b}/f2`] = `${a}${b}2`;
    }
    files[`/t/${a}/top.txt`] = a;
  }
  files['/t/z.txt'] = 'z';
  files['/t/skip/inner.txt'] = 'never read';
  return Volume.fromJSON(files);
}

/** A source that counts its lstat calls. */
function counted(source: TreeSource): TreeSource & { lstats: number } {
  const wrapped = { ...source, lstats: 0, lstat: (path: SourcePath) => (wrapped.lstats++, source.lstat(path)) };
  return wrapped;
}

/** Takes the walk's directories depth first, as the planner does: each directory's listing, then its subdirectories in name order. */
async function drain(walk: TreeWalk): Promise<string[]> {
  const seen: string[] = [];
  const visit = async (at: string) => {
    const { names, stats } = await walk.next();
    seen.push(`${at}: ${names.map((n) => decodeUtf8Lossy(n)).join(' ')}`);
    for (const [i, stat] of stats.entries()) if ((stat.mode & 0o170000) === S_IFDIR) await visit(`${at}/${decodeUtf8Lossy(names[i]!)}`);
  };
  await visit('');
  return seen;
}

const settle = async () => {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
};

describe('TreeWalk', () => {
  const exclude = async (relative: string) => relative === 'skip';

  it('gives the directories in the planner order, names sorted, the filter applied, whatever its read-ahead', async () => {
    const expected = [
      ': a b c z.txt',
      '/a: top.txt x y', '/a/x: f1 f2', '/a/y: f1 f2',
      '/b: top.txt x y', '/b/x: f1 f2', '/b/y: f1 f2',
      '/c: top.txt x y', '/c/x: f1 f2', '/c/y: f1 f2',
    ];
    for (const readAhead of [0, 1, 5, 1 << 16]) {
      const walk = new TreeWalk(fsSource(tree().promises as never), '/t', exclude, undefined, readAhead);
      expect(await drain(walk)).toEqual(expected);
      walk.stop();
    }
  });

  it('reads no more than its read-ahead before the planner takes it', async () => {
    const source = counted(fsSource(tree().promises as never));
    const walk = new TreeWalk(source, '/t', exclude, undefined, 3);
    await settle();
    // The root's 5 names are read, 4 held (skip is left out), more than 3: the walk waits.
    expect(source.lstats).toBe(5);
    await walk.next();
    await settle();
    // Then /a (3 held) and /a/x (5 held).
    expect(source.lstats).toBe(10);
    walk.stop();
    await settle();
    expect(source.lstats).toBe(10);

    const whole = counted(fsSource(tree().promises as never));
    const unbounded = new TreeWalk(whole, '/t', exclude);
    await settle();
    // With the default read-ahead, all of it before the planner takes anything.
    expect(whole.lstats).toBe(5 + 3 * (3 + 2 + 2));
    unbounded.stop();
  });

  it('fails where the tree cannot be read, after what was read before', async () => {
    const vol = tree();
    const source = fsSource(vol.promises as never);
    const failing: TreeSource = { ...source, readdir: (path) => (String(path).endsWith('/b/y') ? Promise.reject(new Error('EIO')) : source.readdir(path)) };
    const walk = new TreeWalk(failing, '/t', exclude);
    const taken: string[] = [];
    const error = await (async () => {
      for (;;) taken.push(decodeUtf8Lossy((await walk.next()).names[0] ?? new Uint8Array()));
    })().catch((e: Error) => e);
    expect(taken).toEqual(['a', 'top.txt', 'f1', 'f1', 'top.txt', 'f1']);
    expect(String(error)).toMatch(/EIO|read directory/);
  });

  it('stops at an abort', async () => {
    const controller = new AbortController();
    controller.abort(new Error('stop'));
    const walk = new TreeWalk(fsSource(tree().promises as never), '/t', undefined, controller.signal);
    await expect(walk.next()).rejects.toThrow();
  });
});
