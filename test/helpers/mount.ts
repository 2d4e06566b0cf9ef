/**
 * The strictest oracles: the Linux kernel's squashfs driver (loop mount, as
 * root) and squashfuse. Each helper says why it cannot run instead of
 * failing, so a test can skip with a visible message.
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run } from './oracles.js';

export type Mounter = 'kernel' | 'squashfuse';

/** Why an image cannot be mounted this way here, or undefined when it can. */
export async function cannotMount(how: Mounter): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return `${how} mount needs root`;
  const probe = await run(how === 'kernel' ? 'mount' : 'squashfuse', ['--version']).catch(() => undefined);
  if (!probe) return `${how === 'kernel' ? 'mount' : 'squashfuse'} is not installed`;
  if (how === 'kernel') {
    const filesystems = await fsp.readFile('/proc/filesystems', 'utf8').catch(() => '');
    if (!filesystems.includes('squashfs')) {
      await run('modprobe', ['squashfs']).catch(() => undefined);
      const again = await fsp.readFile('/proc/filesystems', 'utf8').catch(() => '');
      if (!again.includes('squashfs')) return 'the kernel has no squashfs driver';
    }
  } else {
    const fuse = await fsp.stat('/dev/fuse').catch(() => undefined);
    if (!fuse) return '/dev/fuse is missing';
  }
  return undefined;
}

/** Mounts `image` read-only, runs `fn` on the mount point, unmounts. Throws when mounting fails. */
export async function withMount<T>(how: Mounter, image: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), `sqfs-${how}-`));
  const mounted =
    how === 'kernel'
      ? await run('mount', ['-t', 'squashfs', '-o', 'loop,ro', image, dir])
      : await run('squashfuse', [image, dir]);
  if (mounted.code !== 0) {
    await fsp.rmdir(dir).catch(() => undefined);
    throw new Error(`${how} refused ${image}: ${mounted.stderr.toString()}`);
  }
  try {
    return await fn(dir);
  } finally {
    const args = how === 'kernel' ? ['umount', [dir]] as const : ['fusermount', ['-u', dir]] as const;
    for (let attempt = 0; attempt < 5; attempt++) {
      if ((await run(args[0], [...args[1]])).code === 0) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    await fsp.rmdir(dir).catch(() => undefined);
  }
}
