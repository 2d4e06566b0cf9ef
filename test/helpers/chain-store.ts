/**
 * Backups of images packed by the test itself, and the kernel's view of a
 * chain of them, for the chain tests.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { imageKey, metadataKey, parseHandle, type DirectoryBackup } from '../../src/backup/handle.js';
import type { ObjectStore } from '../../src/uploader/store.js';
import { cannotMount } from './mount.js';
import { run } from './oracles.js';

/**
 * Stores an image as a backup: the image under its key, then its handle as
 * the metadata. The SHA-256 is computed here, independently of the
 * library's hasher: bytes 96..end, then the 96-byte superblock.
 */
export async function storeBackup(
  store: ObjectStore,
  image: Uint8Array,
  fields: { id: string; dir: string; base?: DirectoryBackup },
): Promise<DirectoryBackup> {
  const sha256 = createHash('sha256').update(image.subarray(96)).update(image.subarray(0, 96)).digest('hex');
  const now = Date.now();
  const handle = parseHandle(
    {
      format: 'squashfs-4.0',
      id: fields.id,
      name: 'chain test',
      dir: fields.dir,
      key: imageKey(fields.id),
      size: image.length,
      sha256,
      compression: 'zstd',
      level: 3,
      blockSize: 131072,
      createdAt: new Date(now).toISOString(),
      expiresAt: new Date(now + 3600_000).toISOString(),
      files: 0,
      entries: 0,
      warnings: [],
      ...(fields.base && { base: fields.base.id, chain: [...(fields.base.chain ?? [fields.base.id]), fields.id] }),
    },
    `the test's handle of ${fields.id}`,
  );
  await store.put(handle.key, image);
  await store.put(metadataKey(handle.id), new TextEncoder().encode(JSON.stringify(handle)));
  return handle;
}

/** A chain mounted as overlayfs shows it: `merged`, until `unmount`. */
export interface MountedChain {
  merged: string;
  unmount(): Promise<void>;
}

/**
 * Mounts each image (squashfs, loop, read-only) and the overlay of them,
 * the last image on top; or says why it cannot.
 */
export async function mountChain(images: string[], work: string): Promise<MountedChain | string> {
  const why = await cannotMount('kernel');
  if (why) return why;
  const mounted: string[] = [];
  const unmount = async () => {
    for (const dir of mounted.splice(0).reverse()) {
      for (let attempt = 0; attempt < 5 && (await run('umount', [dir])).code !== 0; attempt++) await new Promise((r) => setTimeout(r, 200));
    }
  };
  try {
    const lower: string[] = [];
    for (const [i, image] of images.entries()) {
      const dir = path.join(work, `mnt-${i}`);
      await fsp.mkdir(dir, { recursive: true });
      const r = await run('mount', ['-t', 'squashfs', '-o', 'loop,ro', image, dir]);
      if (r.code !== 0) throw new Error(`mount ${image}: ${r.stderr.toString().trim()}`);
      mounted.push(dir);
      lower.unshift(dir);
    }
    const merged = path.join(work, 'merged');
    await fsp.mkdir(merged, { recursive: true });
    const r = await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower.join(':')}`, merged]);
    if (r.code !== 0) throw new Error(`mount -t overlay: ${r.stderr.toString().trim()}`);
    mounted.push(merged);
    return { merged, unmount };
  } catch (error) {
    await unmount();
    return (error as Error).message;
  }
}
