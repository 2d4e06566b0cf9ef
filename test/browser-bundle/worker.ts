/**
 * A Worker made the way a plain browser bundle is (test/worker-defaults.test.ts
 * bundles it with esbuild for the browser platform: the package's `browser`
 * condition, dist/index.js, and no rule for `.wasm` files), so zstd's WASM
 * is nowhere to be had; run in workerd, without nodejs_compat. Its files are
 * a tiny in-memory file system of its own (memfs needs Node's modules).
 *
 * Route:
 *   POST /backup[?comp=zstd]   createBackup({ dir: '/data', fs, store }) into the R2 binding
 *     (comp: that compression asked for); answers the handle, or { code, message } with 422
 */
import { createBackup, r2Store, type R2BucketLike } from 'squashfs-ts';

interface Env {
  BACKUPS: R2BucketLike;
}

/** The files backed up. */
export const FILES: Record<string, string> = {
  '/data/readme.txt': 'hello from a browser bundle\n',
  '/data/docs/notes.md': '# notes\n'.repeat(200),
};

interface Node {
  ino: number;
  children?: Set<string>;
  data?: Uint8Array;
}

/** The node:fs/promises calls createBackup makes (lstat, readdir, readlink, open/read/close), over `files`. */
function memoryFs(files: Record<string, string>) {
  const encoder = new TextEncoder();
  const nodes = new Map<string, Node>();
  let ino = 1;
  const directory = (path: string): Node => {
    let node = nodes.get(path);
    if (!node) {
      node = { ino: ino++, children: new Set() };
      nodes.set(path, node);
      if (path !== '/') directory(path.slice(0, path.lastIndexOf('/')) || '/').children!.add(path.slice(path.lastIndexOf('/') + 1));
    }
    return node;
  };
  for (const [path, text] of Object.entries(files)) {
    directory(path.slice(0, path.lastIndexOf('/')) || '/').children!.add(path.slice(path.lastIndexOf('/') + 1));
    nodes.set(path, { ino: ino++, data: encoder.encode(text) });
  }
  const get = (path: unknown): Node => {
    const node = nodes.get(String(path));
    if (!node) throw Object.assign(new Error(`ENOENT: ${String(path)}`), { code: 'ENOENT' });
    return node;
  };
  return {
    lstat: async (path: unknown) => {
      const node = get(path);
      return {
        mode: node.children ? 0o40755 : 0o100644, uid: 0, gid: 0, size: node.data?.length ?? 0, mtimeMs: 1_700_000_000_000,
        ino: node.ino, dev: 1, nlink: node.children ? 2 : 1, rdev: 0,
      };
    },
    readdir: async (path: unknown) => [...get(path).children!].map((name) => encoder.encode(name)),
    readlink: async (path: unknown) => {
      throw Object.assign(new Error(`EINVAL: ${String(path)} is not a symlink`), { code: 'EINVAL' });
    },
    open: async (path: unknown) => {
      const data = get(path).data!;
      return {
        read: async (buffer: Uint8Array, offset: number, length: number, position: number) => {
          const chunk = data.subarray(position, position + length);
          buffer.set(chunk, offset);
          return { bytesRead: chunk.length };
        },
        close: async () => undefined,
      };
    },
  };
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname !== '/backup' || request.method !== 'POST') return new Response('not found\n', { status: 404 });
    const fs = memoryFs(FILES);
    const store = r2Store(env.BACKUPS, { prefix: 'browser' });
    try {
      const backup = url.searchParams.get('comp') === 'zstd'
        ? await createBackup({ dir: '/data', fs, store, compression: 'zstd' })
        : await createBackup({ dir: '/data', fs, store });
      return Response.json(backup);
    } catch (error) {
      const e = error as Error & { code?: string };
      return Response.json({ code: e.code, message: e.message }, { status: 422 });
    }
  },
};
