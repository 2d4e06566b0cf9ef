/**
 * The harness proves itself against the reference writer: images made by
 * squashfs-tools' mksquashfs from the tricky tree (and from random trees)
 * must pass every oracle, and deliberately wrong images/sources must fail
 * them (so the oracles have teeth).
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  expect7zAccepts,
  expectExtractMatches,
  expectListingMatches,
  expectSqfs2tarAccepts,
  expectSuperblockMatches,
  hasTool,
  mksquashfs,
  runOk,
  withTempDir,
} from './helpers/oracles.js';
import { makeTrickyTree, randomTreeArb, sharedTrickyTree, writeTree } from './helpers/tree.js';

const TIMEOUT = 60_000;
const TOOLS: [string, string[], string][] = [
  ['mksquashfs', ['-version'], 'squashfs-tools'],
  ['unsquashfs', ['-version'], 'squashfs-tools'],
  ['sqfs2tar', ['--version'], 'squashfs-tools-ng'],
  ['7z', [], 'p7zip-full'],
  ['getfattr', ['--version'], 'attr'],
  ['setfattr', ['--version'], 'attr'],
];

// A missing oracle must fail loudly, never skip silently.
it('the oracle tools are installed', async () => {
  const missing: string[] = [];
  for (const [cmd, args, pkg] of TOOLS) if (!(await hasTool(cmd, args))) missing.push(`${cmd} (apt package ${pkg})`);
  expect(missing).toEqual([]);
});

let work: string;
beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'sqfs-selfcheck-'));
});
afterAll(async () => {
  if (work) await fsp.rm(work, { recursive: true, force: true });
});

/** Trees are shared between configurations with the same block size. */
const trees = new Map<string, Promise<string>>();
const trickyTree = (blockSize: number, big: boolean) => sharedTrickyTree(trees, work, blockSize, big);

const configs: { name: string; blockSize: number; big: boolean; args: string[] }[] = [
  { name: 'default block size', blockSize: 131072, big: true, args: [] },
  { name: '-b 4096', blockSize: 4096, big: false, args: ['-b', '4096'] },
  { name: '-b 1048576', blockSize: 1048576, big: false, args: ['-b', '1048576'] },
  { name: '-no-fragments', blockSize: 131072, big: true, args: ['-no-fragments'] },
];

describe.each(configs)('oracles accept mksquashfs images: $name', ({ name, blockSize, big, args }) => {
  let src: string;
  let image: string;
  beforeAll(async () => {
    src = await trickyTree(blockSize, big);
    image = path.join(work, `${name.replace(/\W+/g, '_')}.sqfs`);
    await mksquashfs(src, image, args);
  }, TIMEOUT);

  it('superblock: version, block size, inode and id counts', async () => {
    await expectSuperblockMatches(image, src, { blockSize });
  });
  it('unsquashfs -lln listing matches the source', async () => {
    await expectListingMatches(image, src);
  }, TIMEOUT);
  it('unsquashfs extraction matches the source', async () => {
    await expectExtractMatches(image, src);
  }, TIMEOUT);
  it('sqfs2tar accepts it', async () => {
    await expectSqfs2tarAccepts(image);
  }, TIMEOUT);
  it('7z accepts it', async () => {
    await expect7zAccepts(image);
  }, TIMEOUT);
});

it('oracles accept a mksquashfs -all-root image with allRoot expectations', async () => {
  const src = await trickyTree(4096, false);
  const image = path.join(work, 'all-root.sqfs');
  await mksquashfs(src, image, ['-b', '4096', '-all-root', '-mkfs-time', '1234567890']);
  await expectSuperblockMatches(image, src, { blockSize: 4096, allRoot: true, modTime: 1234567890 });
  await expectListingMatches(image, src, { allRoot: true });
  await expectExtractMatches(image, src, { allRoot: true });
  if (process.getuid?.() === 0) {
    await expect(expectListingMatches(image, src)).rejects.toThrow(/1000\/1000/);
    await expect(expectSuperblockMatches(image, src, { blockSize: 4096 })).rejects.toThrow(/idCount/);
  }
}, TIMEOUT);

describe('oracles accept mksquashfs images of random trees', () => {
  it('listing and extraction match for random trees', async () => {
    let i = 0;
    await fc.assert(
      fc.asyncProperty(randomTreeArb({ blockSize: 4096 }), async (tree) => {
        const dir = path.join(work, `random-${i++}`);
        const src = path.join(dir, 'tree');
        const image = path.join(dir, 'image.sqfs');
        try {
          await writeTree(src, tree);
          await mksquashfs(src, image, ['-b', '4096']);
          await expectListingMatches(image, src);
          await expectExtractMatches(image, src);
        } finally {
          await fsp.rm(dir, { recursive: true, force: true });
        }
      }),
      { numRuns: 12, interruptAfterTimeLimit: 40_000 },
    );
  }, TIMEOUT);
});

/** The oracles must reject images that do not match their source. */
describe('oracles reject wrong images', () => {
  async function smallTree(root: string): Promise<void> {
    await fsp.mkdir(path.join(root, 'd'), { recursive: true });
    await fsp.writeFile(path.join(root, 'd/a.txt'), 'hello\n');
    await fsp.writeFile(path.join(root, 'b.bin'), Buffer.alloc(10_000, 7));
    await fsp.link(path.join(root, 'b.bin'), path.join(root, 'd/b-link'));
    await fsp.symlink('d/a.txt', path.join(root, 'ln'));
    await runOk('setfattr', ['-n', 'user.k', '-v', 'v', path.join(root, 'd/a.txt')]);
  }

  async function withImage(fn: (src: string, image: string) => Promise<void>): Promise<void> {
    await withTempDir('sqfs-neg-', async (dir) => {
      const src = path.join(dir, 'src');
      const image = path.join(dir, 'img.sqfs');
      await smallTree(src);
      await mksquashfs(src, image);
      await expectListingMatches(image, src);
      await expectExtractMatches(image, src);
      await fn(src, image);
    });
  }

  it('content changed (same size and mtime): extraction oracle fails, listing passes', async () => {
    await withImage(async (src, image) => {
      const p = path.join(src, 'd/a.txt');
      const st = await fsp.stat(p);
      await fsp.writeFile(p, 'HELLO\n');
      await fsp.utimes(p, st.atime, st.mtime);
      await expectListingMatches(image, src);
      await expect(expectExtractMatches(image, src)).rejects.toThrow(/content differs/);
    });
  }, TIMEOUT);

  it('mode, owner, mtime, symlink target, new file: both oracles fail', async () => {
    await withImage(async (src, image) => {
      await fsp.chmod(path.join(src, 'd/a.txt'), 0o4600);
      await expect(expectListingMatches(image, src)).rejects.toThrow(/-rwS------/);
      await expect(expectExtractMatches(image, src)).rejects.toThrow(/d\/a.txt: mode 4600 became 644/);
    });
    await withImage(async (src, image) => {
      await fsp.utimes(path.join(src, 'b.bin'), 0, 0);
      await expect(expectListingMatches(image, src)).rejects.toThrow(/1970-01-01 00:00/);
      await expect(expectExtractMatches(image, src)).rejects.toThrow(/mtime/);
    });
    await withImage(async (src, image) => {
      await fsp.unlink(path.join(src, 'ln'));
      await fsp.symlink('d/b-link', path.join(src, 'ln'));
      await expect(expectListingMatches(image, src)).rejects.toThrow(/-> d\/b-link/);
      await expect(expectExtractMatches(image, src)).rejects.toThrow(/symlink target/);
    });
    await withImage(async (src, image) => {
      await fsp.writeFile(path.join(src, 'extra'), '');
      await expect(expectListingMatches(image, src)).rejects.toThrow(/extra/);
      await expect(expectExtractMatches(image, src)).rejects.toThrow(/missing from image: extra/);
    });
    if (process.getuid?.() === 0) {
      await withImage(async (src, image) => {
        await fsp.lchown(path.join(src, 'ln'), 5, 6);
        await expect(expectListingMatches(image, src)).rejects.toThrow(/5\/6/);
        await expect(expectExtractMatches(image, src)).rejects.toThrow(/owner 5:6 became 0:0/);
      });
    }
  }, TIMEOUT);

  it('hard link broken or xattr changed: extraction oracle fails', async () => {
    await withImage(async (src, image) => {
      const p = path.join(src, 'd/b-link');
      const dirSt = await fsp.stat(path.join(src, 'd'));
      await fsp.unlink(p);
      await fsp.writeFile(p, Buffer.alloc(10_000, 7));
      const st = await fsp.stat(path.join(src, 'b.bin'));
      await fsp.utimes(p, st.atime, st.mtime);
      await fsp.utimes(path.join(src, 'd'), dirSt.atime, dirSt.mtime);
      await expectListingMatches(image, src);
      await expect(expectExtractMatches(image, src)).rejects.toThrow(/hard-link groups differ/);
    });
    if (process.getuid?.() === 0) {
      await withImage(async (src, image) => {
        await runOk('setfattr', ['-n', 'user.k', '-v', 'other', path.join(src, 'd/a.txt')]);
        await expect(expectExtractMatches(image, src)).rejects.toThrow(/xattrs/);
      });
    }
  }, TIMEOUT);

  it('a corrupted data block makes sqfs2tar, 7z and unsquashfs fail', async () => {
    await withImage(async (src, image) => {
      // mksquashfs writes the first compressed block (here the fragment
      // block holding both small files) right after the 96-byte superblock.
      const fh = await fsp.open(image, 'r+');
      await fh.write(Buffer.from([0xde, 0xad, 0xbe, 0xef, 0xde, 0xad]), 0, 6, 96 + 4);
      await fh.close();
      await expect(expectSqfs2tarAccepts(image)).rejects.toThrow();
      await expect(expect7zAccepts(image)).rejects.toThrow();
      await expect(expectExtractMatches(image, src)).rejects.toThrow();
    });
  }, TIMEOUT);

  it('a truncated image makes every oracle fail', async () => {
    await withImage(async (src, image) => {
      // Cut into the metadata (the image is 4 KiB padded; bytes_used is at 40).
      const head = await fsp.readFile(image);
      const bytesUsed = Number(head.readBigUInt64LE(40));
      await fsp.truncate(image, Math.floor(bytesUsed / 2));
      await expect(expectListingMatches(image, src)).rejects.toThrow();
      await expect(expectExtractMatches(image, src)).rejects.toThrow();
      await expect(expectSqfs2tarAccepts(image)).rejects.toThrow();
      await expect(expect7zAccepts(image)).rejects.toThrow();
    });
  }, TIMEOUT);
});

it('the tricky tree has what it promises', async () => {
  await withTempDir('sqfs-tree-', async (dir) => {
    await makeTrickyTree(dir, { blockSize: 4096 });
    const st = await fsp.lstat(path.join(dir, 'special/socket'));
    expect(st.isSocket()).toBe(true);
    expect((await fsp.lstat(path.join(dir, 'special/fifo'))).isFIFO()).toBe(true);
    expect((await fsp.stat(path.join(dir, 'links/b/c/h3'))).nlink).toBe(3);
    const sparse = await fsp.stat(path.join(dir, 'sparse/all-hole'));
    expect(sparse.size).toBe(3 * 4096 + 17);
    expect(sparse.blocks).toBe(0);
    expect((await fsp.stat(path.join(dir, 'times/max'))).mtimeMs).toBe((2 ** 32 - 1) * 1000);
    expect((await fsp.stat(path.join(dir, 'times/dir-0'))).mtimeMs).toBe(0);
    expect((await fsp.readdir(path.join(dir, 'wide'))).length).toBe(1500);
    expect((await fsp.stat(path.join(dir, 'modes/m4755-setuid'))).mode & 0o7777).toBe(0o4755);
    if (process.getuid?.() === 0) {
      expect((await fsp.lstat(path.join(dir, 'special/big-numbers'))).isCharacterDevice()).toBe(true);
      expect((await fsp.stat(path.join(dir, 'owners/dir-big'))).uid).toBe(3000000000);
    }
  });
}, TIMEOUT);
