/**
 * Overlay layers written from a script, for the chain tests. The same
 * script is written two ways: as a layer directory (whiteouts as character
 * devices 0:0, opaque directories by their trusted.overlay.opaque xattr,
 * each directory on the way held with its attributes), to pack; and
 * applied onto an expected tree with plain file operations, the oracle for
 * when the kernel cannot mount the layers.
 *
 * A directory a layer holds shows its own attributes only (overlayfs takes
 * a merged directory's owner, mode, times and xattrs from the top layer),
 * so every directory on a path of the script gets DIRECTORY_DEFAULTS unless
 * a `dir` step gives it others. Creating an entry changes its directory's
 * time, so directories get theirs last, deepest first.
 */
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export interface Attributes {
  mode?: number;
  /** Seconds since the epoch. */
  mtime?: number;
  owner?: [uid: number, gid: number];
  /** user.* xattrs by name. */
  xattrs?: Record<string, string>;
}

/** One step of a layer; paths are relative, '/'-separated ('' is the root). */
export type LayerStep =
  | ({ dir: string; opaque?: boolean } & Attributes)
  | ({ file: string; data: string | Buffer } & Attributes)
  | { symlink: string; target: string; mtime?: number }
  /** A second name of a file made earlier in the same layer. */
  | { link: string; to: string }
  | ({ fifo: string } & Attributes)
  | ({ device: string; major: number; minor: number } & Attributes)
  | { whiteout: string };

export const DIRECTORY_DEFAULTS = { mode: 0o755, mtime: 1_600_000_000, owner: [0, 0] } satisfies Attributes;
const FILE_DEFAULTS = { mode: 0o644, mtime: 1_600_000_100, owner: [0, 0] } satisfies Attributes;

const stepPath = (step: LayerStep): string => {
  if ('dir' in step) return step.dir;
  if ('file' in step) return step.file;
  if ('symlink' in step) return step.symlink;
  if ('link' in step) return step.link;
  if ('fifo' in step) return step.fifo;
  if ('device' in step) return step.device;
  return step.whiteout;
};

/** Writes a layer (or the full backup at the bottom) into an empty directory. */
export async function writeLayer(root: string, steps: LayerStep[]): Promise<void> {
  await write(root, steps, true);
}

/** Applies a layer's steps onto `root` as overlayfs would show them over it. */
export async function applySteps(root: string, steps: LayerStep[]): Promise<void> {
  await write(root, steps, false);
}

async function write(root: string, steps: LayerStep[], asLayer: boolean): Promise<void> {
  const directories = new Map<string, Attributes>([['', DIRECTORY_DEFAULTS]]);
  const at = (rel: string) => (rel === '' ? root : path.join(root, rel));
  for (const step of steps) {
    const rel = stepPath(step);
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      if (directories.has(parent)) continue;
      directories.set(parent, DIRECTORY_DEFAULTS);
      await holdDirectory(at(parent), asLayer, false);
    }
    const p = at(rel);
    if ('whiteout' in step) {
      if (asLayer) await exec('mknod', [p, 'c', '0', '0']);
      else await fsp.rm(p, { recursive: true, force: true });
      continue;
    }
    if ('dir' in step) {
      directories.set(rel, { ...DIRECTORY_DEFAULTS, ...step });
      await holdDirectory(p, asLayer, step.opaque ?? false, rel === '');
      if (asLayer && step.opaque) await exec('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', p]);
      continue;
    }
    await fsp.rm(p, { recursive: true, force: true });
    if ('symlink' in step) {
      await fsp.symlink(step.target, p);
      const t = step.mtime ?? FILE_DEFAULTS.mtime;
      await fsp.lutimes(p, t, t);
    } else if ('link' in step) {
      await fsp.link(at(step.to), p);
    } else {
      if ('file' in step) await fsp.writeFile(p, step.data);
      else if ('fifo' in step) await exec('mkfifo', [p]);
      else await exec('mknod', [p, 'c', String(step.major), String(step.minor)]);
      await setAttributes(p, { ...FILE_DEFAULTS, ...step });
    }
  }
  const deepestFirst = [...directories].sort(([a], [b]) => depth(b) - depth(a));
  for (const [rel, attributes] of deepestFirst) await setAttributes(at(rel), attributes);
}

const depth = (rel: string) => (rel === '' ? 0 : rel.split('/').length);

/**
 * A directory of the layer at `p`: made in a layer; in the expected tree,
 * a directory there is kept with its entries (replaced when opaque; the root never is) but
 * made anew, so it keeps none of its own attributes, and anything else is
 * replaced.
 */
async function holdDirectory(p: string, asLayer: boolean, opaque: boolean, isRoot = false): Promise<void> {
  if (asLayer) {
    await fsp.mkdir(p, { recursive: true });
    return;
  }
  const there = await fsp.lstat(p).catch(() => undefined);
  if (isRoot) return; // the root merges, opaque or not: the kernel never reads its marker
  if (!there?.isDirectory() || opaque) {
    await fsp.rm(p, { recursive: true, force: true });
    await fsp.mkdir(p);
    return;
  }
  const fresh = `${p}.fresh`;
  await fsp.mkdir(fresh);
  for (const name of await fsp.readdir(p)) await fsp.rename(path.join(p, name), path.join(fresh, name));
  await fsp.rmdir(p);
  await fsp.rename(fresh, p);
}

async function setAttributes(p: string, a: Attributes): Promise<void> {
  if (a.owner) await fsp.lchown(p, a.owner[0], a.owner[1]);
  for (const [name, value] of Object.entries(a.xattrs ?? {})) await exec('setfattr', ['-n', name, '-v', value, p]);
  if (a.mode !== undefined) await fsp.chmod(p, a.mode);
  if (a.mtime !== undefined) await fsp.utimes(p, a.mtime, a.mtime);
}
