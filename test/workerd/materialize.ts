/**
 * Lays a TreeSource out as a real directory (Node only), so the oracles in
 * test/helpers/oracles.ts can compare an image with it: contents, modes,
 * owners (as root), mtimes, symlinks and user xattrs (where setfattr works).
 */
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { SourcePath, TreeSource } from '../../src/source/source.js';

const execFileP = promisify(execFile);
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const S_IFREG = 0o100000;

export interface Materialized {
  /** Whether the xattrs could be set (setfattr present and the file system takes user xattrs). */
  xattrs: boolean;
}

export async function materialize(source: TreeSource, root: string, dest: string): Promise<Materialized> {
  const isRoot = process.getuid?.() === 0;
  let xattrs = true;
  const times: [string, number, boolean][] = [];
  const visit = async (from: SourcePath, to: string): Promise<void> => {
    const st = await source.lstat(from);
    const type = st.mode & S_IFMT;
    if (type === S_IFDIR) {
      await fsp.mkdir(to, { recursive: true });
      for (const name of await source.readdir(from)) {
        const text = new TextDecoder().decode(name);
        await visit(`${typeof from === 'string' ? from.replace(/\/$/, '') : from}/${text}`, path.join(to, text));
      }
    } else if (type === S_IFLNK) {
      await fsp.symlink(Buffer.from(await source.readlink(from)), to);
    } else if (type === S_IFREG) {
      const file = await source.open(from);
      const data = new Uint8Array(st.size);
      let offset = 0;
      while (offset < data.length) {
        const n = await file.read(data.subarray(offset), offset);
        if (n === 0) break;
        offset += n;
      }
      await file.close();
      await fsp.writeFile(to, data);
    } else {
      throw new Error(`materialize: unsupported type 0o${type.toString(8)} at ${String(from)}`);
    }
    if (type !== S_IFLNK) await fsp.chmod(to, st.mode & 0o7777);
    if (isRoot) await fsp.lchown(to, st.uid, st.gid);
    for (const { name, value } of (await source.xattrs?.(from)) ?? []) {
      try {
        await execFileP('setfattr', ['-h', '-n', name, '-v', `0x${Buffer.from(value).toString('hex')}`, to]);
      } catch {
        xattrs = false;
      }
    }
    times.push([to, st.mtime, type === S_IFLNK]);
  };
  await visit(root, dest);
  // In visiting order, children before their directory: setting a time moves no other.
  for (const [to, mtime, link] of times) {
    await (link ? fsp.lutimes(to, mtime, mtime) : fsp.utimes(to, mtime, mtime));
  }
  return { xattrs };
}
