/**
 * Trees of many small files (issue #20): 20,000 entries in one directory and
 * 50,000 over nested directories are packed, listed by unsquashfs (the
 * oracle), unpacked and compared; the memory the writer holds per entry
 * (JS heap and array buffers: the entry table is typed arrays), measured
 * after a full GC once every entry is walked and its data written, stays
 * under 250 bytes beside a few MiB held whatever the tree. It was kilobytes (a dedupe key per file kept as a rope of
 * 64 small strings), then about 650 (an object graph per entry); the entry
 * table holds about 150.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openImage, packDirectory, unpackImage } from '../src/node/index.js';

v8.setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const base = existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
let work: string;
beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(base, 'sqfs-many-'));
});
afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

/** `count` small files, `perDirectory` to a directory (nested two deep), a few bytes each, some alike. */
async function makeTree(root: string, count: number, perDirectory: number): Promise<void> {
  for (let i = 0; i < count; i += perDirectory) {
    const d = i / perDirectory;
    const dir = perDirectory >= count ? root : path.join(root, `pkg${Math.floor(d / 50)}`, `mod${d}`);
    await fsp.mkdir(dir, { recursive: true });
    const files = Math.min(perDirectory, count - i);
    for (let j0 = 0; j0 < files; j0 += 250) {
      await Promise.all(
        Array.from({ length: Math.min(250, files - j0) }, (_, k) => {
          const j = j0 + k;
          return fsp.writeFile(path.join(dir, `file${String(j).padStart(5, '0')}.js`), `module.exports = ${(i + j) % 7919};\n`.repeat(1 + ((i + j) % 5)));
        }),
      );
    }
  }
}

/** Every path unsquashfs lists, relative ("squashfs-root/a/b" -> "a/b"). */
function unsquashfsPaths(image: string): string[] {
  const r = spawnSync('unsquashfs', ['-l', '-no-progress', image], { encoding: 'utf8', maxBuffer: 1 << 28 });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.split('\n').filter((l) => l.startsWith('squashfs-root/')).map((l) => l.slice('squashfs-root/'.length)).sort();
}

async function walk(root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fsp.readdir(path.join(root, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${entry.name}` : entry.name;
    out.push(p);
    if (entry.isDirectory()) out.push(...(await walk(root, p)));
  }
  return out;
}

const FIXED_BYTES = 4 * 1024 * 1024;
const BYTES_PER_ENTRY = 250;

describe.each([
  ['20,000 entries in one directory', 20_000, 20_000],
  ['50,000 entries over nested directories', 50_000, 250],
])('%s', (_label, count, perDirectory) => {
  it('packs (unsquashfs lists every entry), unpacks byte for byte, holding under 250 bytes per entry', async () => {
    const tree = path.join(work, `tree-${count}`);
    await makeTree(tree, count, perDirectory);
    const expected = (await walk(tree)).sort();
    const image = path.join(work, `many-${count}.sqfs`);

    const held = () => {
      const usage = process.memoryUsage();
      return usage.heapUsed + usage.arrayBuffers;
    };
    gc();
    const before = held();
    let heldAtTables = 0;
    let entries = 0;
    // On this thread with gzip: no worker's spare buffers or zstd's wasm memory among the array buffers counted.
    const result = await packDirectory(tree, image, {
      compression: 'gzip',
      level: 1,
      processors: 0,
      onProgress: (p) => {
        // Everything walked and every file's data written: what the writer holds per entry to the end.
        if (p.phase === 'tables' && heldAtTables === 0) {
          gc();
          heldAtTables = held() - before;
          entries = p.entries;
        }
      },
    });
    expect(result.inodes).toBe(expected.length + 1);
    expect(entries).toBe(expected.length + 1);
    console.log(`${count} files: ${Math.round(heldAtTables / entries)} bytes of heap and array buffers per entry at the tables`);
    // A pack holds a few MiB whatever the tree (a 1 MiB slab for small files, a 1 MiB chunk of names, a fragment block).
    expect(heldAtTables).toBeLessThan(FIXED_BYTES + BYTES_PER_ENTRY * entries);

    expect(unsquashfsPaths(image)).toEqual(expected);
    const out = path.join(work, `out-${count}`);
    const opened = await openImage(image);
    try {
      await unpackImage(opened, out);
    } finally {
      await opened.close();
    }
    expect((await walk(out)).sort()).toEqual(expected);
    const diff = spawnSync('diff', ['-r', '--no-dereference', tree, out], { encoding: 'utf8', maxBuffer: 1 << 26 });
    expect(diff.status, diff.stdout.slice(0, 2000)).toBe(0);
    await fsp.rm(tree, { recursive: true, force: true });
    await fsp.rm(out, { recursive: true, force: true });
  }, 120_000);
});
