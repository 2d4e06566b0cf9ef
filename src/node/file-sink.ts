import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { ImageSink } from '../squashfs/writer/output.js';

const FLUSH_AT = 1 << 20;

/**
 * Writes an image to a temporary file beside `target`; `commit` patches the
 * superblock in at offset 0 and renames the file into place, `discard`
 * removes it. Small chunks are gathered into 1 MiB writes (one writev each).
 */
export class FileSink implements ImageSink {
  readonly tempPath: string;
  private handle: FileHandle | undefined;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private superblock: Uint8Array | undefined;

  /** `private`: the image is readable and writable by its owner only (0600); else 0644 under the umask, as mksquashfs makes it. */
  constructor(readonly target: string, private readonly options: { private?: boolean } = {}) {
    this.tempPath = join(dirname(target), `.${basename(target)}.${process.pid}.${Date.now().toString(36)}.tmp`);
  }

  async open(): Promise<void> {
    this.handle = await open(this.tempPath, 'wx', this.options.private ? 0o600 : 0o644);
    if (this.options.private) await this.handle.chmod(0o600);
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= FLUSH_AT) await this.flush();
  }

  finish(superblock: Uint8Array): void {
    this.superblock = superblock;
  }

  async commit(): Promise<void> {
    const handle = this.handle!;
    await this.flush();
    if (!this.superblock) throw new Error('the image has no superblock');
    await handle.write(this.superblock, 0, this.superblock.length, 0);
    await handle.datasync();
    await handle.close();
    this.handle = undefined;
    await rename(this.tempPath, this.target);
  }

  async discard(): Promise<void> {
    await this.handle?.close().catch(() => undefined);
    this.handle = undefined;
    await unlink(this.tempPath).catch(() => undefined);
  }

  /** Writes the gathered chunks with one writev (no copy into one buffer), and the rest of a short write, if any. */
  private async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const chunks = this.pending;
    const total = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    let { bytesWritten: done } = await this.handle!.writev(chunks);
    if (done < total) {
      const rest = Buffer.concat(chunks).subarray(done);
      while (done < total) done += (await this.handle!.write(rest, done - (total - rest.length))).bytesWritten;
    }
  }
}
