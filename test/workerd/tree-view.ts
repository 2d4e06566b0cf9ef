/**
 * A tree as comparable lines, read through any `node:fs/promises`-shaped
 * file system: memfs in the Worker, node:fs/promises in the test (what
 * unsquashfs extracted). No node: imports: this runs in workerd.
 */

export interface ViewFs {
  lstat(path: string): Promise<{ mode: number; mtimeMs: number; size: number; isDirectory(): boolean; isFile(): boolean; isSymbolicLink(): boolean }>;
  readdir(path: string): Promise<unknown[]>;
  readFile(path: string): Promise<Uint8Array>;
  readlink(path: string): Promise<unknown>;
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  return [...digest].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * One line an entry, sorted: path ('.' for the root), kind, permission bits
 * and mtime in seconds (not for symlinks, whose own times restores may
 * leave), and a file's size and SHA-256 or a symlink's target.
 */
export async function treeView(fs: ViewFs, root: string): Promise<string[]> {
  const lines: string[] = [];
  const visit = async (rel: string): Promise<void> => {
    const abs = rel ? `${root}/${rel}` : root;
    const st = await fs.lstat(abs);
    const mode = (st.mode & 0o7777).toString(8);
    const mtime = Math.floor(st.mtimeMs / 1000);
    const name = rel || '.';
    if (st.isSymbolicLink()) {
      lines.push(`${name} l -> ${String(await fs.readlink(abs))}`);
    } else if (st.isFile()) {
      const data = await fs.readFile(abs);
      lines.push(`${name} f ${mode} ${mtime} ${data.length} ${await sha256Hex(data)}`);
    } else if (st.isDirectory()) {
      lines.push(`${name} d ${mode} ${mtime}`);
      for (const child of (await fs.readdir(abs)).map(String).sort()) await visit(rel ? `${rel}/${child}` : child);
    } else {
      lines.push(`${name} other ${mode}`);
    }
  };
  await visit('');
  return lines.sort();
}
