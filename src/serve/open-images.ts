import type { BackupImage } from '../backup/chain-image.js';

interface Held {
  image: Promise<BackupImage>;
  users: number;
  /** Left the cache: closed when its last user is done. */
  dropped: boolean;
}

/**
 * The images the server has open, a few at a time (the most recently
 * used), so that browsing a backup reads its superblock and tables once
 * and not on every page. An image is closed when it leaves the cache and
 * no request is reading it; one that failed to open is not kept.
 */
export class OpenImages {
  readonly #held = new Map<string, Held>();

  constructor(
    private readonly open: (key: string) => Promise<BackupImage>,
    private readonly max = 4,
  ) {}

  /** Runs `fn` with the image under `key`, opening it if need be; it stays open while `fn` runs. */
  async use<T>(key: string, fn: (image: BackupImage) => Promise<T>): Promise<T> {
    let held = this.#held.get(key);
    if (held) this.#held.delete(key);
    else {
      held = { image: this.open(key), users: 0, dropped: false };
      const opening = held;
      held.image.catch(() => this.#drop(key, opening));
    }
    this.#held.set(key, held);
    this.#trim();
    held.users++;
    try {
      return await fn(await held.image);
    } finally {
      held.users--;
      if (held.dropped) this.#closeIfUnused(held);
    }
  }

  /** Takes an image out of the cache (its backup was deleted, or its store failed). */
  forget(key: string): void {
    const held = this.#held.get(key);
    if (held) this.#drop(key, held);
  }

  async closeAll(): Promise<void> {
    const all = [...this.#held.values()];
    this.#held.clear();
    await Promise.allSettled(all.map(async (held) => (await held.image).close()));
  }

  #drop(key: string, held: Held): void {
    if (this.#held.get(key) === held) this.#held.delete(key);
    held.dropped = true;
    this.#closeIfUnused(held);
  }

  #closeIfUnused(held: Held): void {
    if (held.users === 0) held.image.then((image) => image.close()).catch(() => undefined);
  }

  #trim(): void {
    for (const [key, held] of this.#held) {
      if (this.#held.size <= this.max) break;
      this.#drop(key, held);
    }
  }
}
