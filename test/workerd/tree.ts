/**
 * The tree the workerd worker packs, shared by the worker (bundled into it)
 * and the test (which lays it out on disk to compare against). No node:
 * imports: this runs in workerd.
 */
import { memoryDir, memorySource, type MemoryTaggedDirectory, type TreeSource } from '../../dist/index.js';

/** The mtime of every entry that gives none, and of the image. */
export const TREE_MTIME = 1_700_000_000;

/** `size` bytes of compressible text: numbered lines of a few repeated words. */
export function compressibleText(size: number): Uint8Array {
  const words = ['squashfs', 'workerd', 'block', 'fragment', 'inode', 'gzip', 'deflate', 'metadata'];
  let text = '';
  for (let i = 0; text.length < size; i++) {
    text += `${String(i).padStart(6, '0')} ${words[i % 8]} ${words[(i * 7) % 8]} ${words[(i * 3) % 8]}\n`;
  }
  return new TextEncoder().encode(text.slice(0, size));
}

/** `size` incompressible bytes (xorshift32), the same for the same seed. */
export function noise(size: number, seed = 0x2545f491): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

export const BIG_SIZE = 300 * 1024;

/**
 * A few files (one of 300 KiB, compressible: two full 128 KiB blocks and a
 * tail), an executable, incompressible bytes, an empty file and directory,
 * a non-ASCII name, symlinks (one pointing up and out of its directory),
 * owners, modes, an mtime of its own and a user xattr.
 */
export function sampleTree(): MemoryTaggedDirectory {
  return memoryDir(
    {
      'readme.txt': { data: 'hello from workerd\n', xattrs: { 'user.note': 'memo' } },
      'big.txt': { data: compressibleText(BIG_SIZE), mode: 0o600, uid: 1000, gid: 1000 },
      bin: {
        'tool.sh': { data: '#!/bin/sh\necho hi\n', mode: 0o755 },
        'random.bin': noise(5000),
        up: { symlink: '../big.txt' },
      },
      docs: memoryDir({ 'héllo wörld.md': '# unicode name\n', old: { data: 'from 2001\n', mtime: 1_000_000_000 } }, { mode: 0o750 }),
      empty: '',
      emptydir: {},
      link: { symlink: 'readme.txt' },
    },
    { mtime: ROOT_MTIME },
  );
}

/** The root directory's own mtime (set through memoryDir). */
export const ROOT_MTIME = 1_650_000_000;

/** The source both sides use: entries without an mtime get TREE_MTIME. */
export function sampleSource(): TreeSource {
  return memorySource(sampleTree(), { mtime: TREE_MTIME });
}
