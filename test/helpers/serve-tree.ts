/**
 * The tree the `sqfs serve` tests back up and browse: three levels of
 * directories, text (one file past the 1 MiB the page shows), a binary
 * file of several blocks, a hard link, an empty file, symlinks (one into
 * the tree, two pointing out of it), modes, fixed mtimes, a name that is
 * not UTF-8 and one with HTML in it, and a user xattr where setfattr is.
 * Beside it, outside the tree, a file whose marker must never be served.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { run } from './oracles.js';
import { compressibleBytes, pseudoRandomBytes } from './tree.js';

/** In the file outside the tree that the symlinks point at. */
export const OUTSIDE_MARKER = 'OUTSIDE-THE-IMAGE-7f3a9c';

export interface ServeTree {
  /** The tree to back up. */
  dir: string;
  /** The directory beside it that the escaping symlinks point into. */
  outside: string;
  files: {
    notes: Buffer;
    blob: Buffer;
    bigLog: Buffer;
  };
}

/** A name that is markup (never taken as such). */
export const MARKUP_NAME = `<img src=x onerror="alert(1)"> & 'q'.txt`;

/** The name that is not UTF-8: "café.txt" in Latin-1. */
export const LATIN1_NAME = Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x2e, 0x74, 0x78, 0x74]);

export async function makeServeTree(root: string): Promise<ServeTree> {
  const dir = path.join(root, 'project');
  const outside = path.join(root, 'outside');
  await fsp.mkdir(outside, { recursive: true });
  await fsp.writeFile(path.join(outside, 'secret.txt'), `${OUTSIDE_MARKER}\n`);
  const notes = Buffer.from(Array.from({ length: 120 }, (_, i) => `line ${i + 1}: the notes of chapter one, three levels down\n`).join(''));
  const blob = pseudoRandomBytes(1_500_000 + 321, 11);
  const bigLog = compressibleBytes(1_300_000, 5);
  const files: [string, Buffer | string, number][] = [
    ['README.md', '# Project\n\nBacked up to be browsed.\n', 0o644],
    ['docs/guide/intro.md', 'Intro\n', 0o644],
    ['docs/guide/chapter1/notes.txt', notes, 0o640],
    ['docs/guide/chapter1/page.html', '<script>document.title = "pwned"</script><b>bold</b>\n', 0o644],
    ['data/blob.bin', blob, 0o600],
    ['data/empty.bin', '', 0o644],
    ['logs/big.log', bigLog, 0o644],
    ['scripts/run.sh', '#!/bin/sh\necho hi\n', 0o755],
    [`odd/${MARKUP_NAME}`, 'a name with markup\n', 0o644],
  ];
  for (const [name, content, mode] of files) {
    const file = path.join(dir, name);
    await fsp.mkdir(path.dirname(file), { recursive: true });
    await fsp.writeFile(file, content);
    await fsp.chmod(file, mode);
  }
  await fsp.writeFile(Buffer.concat([Buffer.from(path.join(dir, 'odd')), Buffer.from('/'), LATIN1_NAME]), 'latin-1 name\n');
  await fsp.link(path.join(dir, 'data/blob.bin'), path.join(dir, 'data/blob-hard.bin'));
  await fsp.mkdir(path.join(dir, 'links'));
  await fsp.symlink('../README.md', path.join(dir, 'links/readme'));
  await fsp.symlink('../../outside/secret.txt', path.join(dir, 'links/escape'));
  await fsp.symlink(outside, path.join(dir, 'links/escape-dir'));
  await fsp.mkdir(path.join(dir, 'private'), { mode: 0o700 });
  await fsp.chmod(path.join(dir, 'private'), 0o700);
  await run('setfattr', ['-n', 'user.comment', '-v', 'browse me', path.join(dir, 'README.md')]).catch(() => undefined);
  // Fixed times, directories last (writing into one changes its mtime).
  for (const [i, name] of ['README.md', 'docs/guide/chapter1/notes.txt', 'data/blob.bin', 'logs/big.log'].entries()) {
    await fsp.utimes(path.join(dir, name), 1_600_000_000 + i * 86_400, 1_600_000_000 + i * 86_400);
  }
  for (const name of ['docs/guide/chapter1', 'docs/guide', 'docs', 'data']) await fsp.utimes(path.join(dir, name), 1_650_000_000, 1_650_000_000);
  return { dir, outside, files: { notes, blob, bigLog } };
}
