import type { CodecRegistry } from '../codecs/codec.js';
import type { SquashfsImage } from '../squashfs/reader/image.js';
import type { ObjectStore } from '../uploader/store.js';
import type { DirectoryBackup } from './handle.js';
import { openLayer } from './manage.js';
import { isOpaque } from './chain.js';

/** A name as part of a map key (one char per byte). */
function nameText(name: Uint8Array): string {
  let text = '';
  for (let at = 0; at < name.length; at += 4096) text += String.fromCharCode.apply(null, name.subarray(at, at + 4096) as unknown as number[]);
  return text;
}

/** A path's names as a map key ("/" between names: no name holds one). */
function pathKey(names: readonly Uint8Array[]): string {
  return names.map(nameText).join('/');
}

interface Walked {
  key: string;
  hidden: boolean;
}

const ROOT: Walked = { key: '', hidden: false };

/**
 * What the deltas of a chain hide of the layers below them, as overlayfs
 * shows the chain: a restore that writes each layer in turn leaves out
 * what a layer above would replace or remove, so nothing is written twice.
 * At a path, a layer's plain directory merges with the directories below
 * it (and hides their non-directories); anything else (a file, a symlink,
 * a device, a whiteout, an opaque directory) hides everything below it at
 * that path and under it.
 */
export class Shadows {
  /** By path: the highest layer whose entry there hides what is below, and the highest with a plain directory there. */
  private readonly hide = new Map<string, number>();
  private readonly directory = new Map<string, number>();
  /** Directories met by `hides`, by their name's bytes object. */
  private readonly walked = new WeakMap<Uint8Array, Walked>();

  /** Reads the deltas' metadata: `deltas[k]` is layer k + 1 of the chain (layer 0, the full backup, hides nothing). */
  static async of(deltas: readonly SquashfsImage[], signal?: AbortSignal): Promise<Shadows> {
    const shadows = new Shadows();
    for (const [k, image] of deltas.entries()) {
      const layer = k + 1;
      for await (const entry of image.walk({ signal })) {
        if (entry.names.length === 0) continue; // the root always merges
        const key = pathKey(entry.names);
        const { stat } = entry;
        const plain = stat.type === 'directory' && !(stat.hasXattrs && isOpaque(await image.xattrs(entry)));
        shadows.raise(plain ? shadows.directory : shadows.hide, key, layer);
      }
    }
    return shadows;
  }

  private raise(map: Map<string, number>, key: string, layer: number): void {
    if ((map.get(key) ?? -1) < layer) map.set(key, layer);
  }

  /**
   * Whether a layer above `layer` replaces or removes its entry at `names`
   * (a directory when `isDirectory`). Meant for a walk's entries, parents
   * before children: a directory's key and whether it is hidden are kept by
   * its name's bytes object, which the walk hands its children too.
   */
  hides(layer: number, names: readonly Uint8Array[], isDirectory: boolean): boolean {
    if (names.length === 0 || (this.hide.size === 0 && this.directory.size === 0)) return false;
    const parent = names.length === 1 ? ROOT : this.walked.get(names[names.length - 2]!) ?? this.fromScratch(layer, names.slice(0, -1));
    const key = parent.key === '' ? nameText(names[names.length - 1]!) : `${parent.key}/${nameText(names[names.length - 1]!)}`;
    const hidden = parent.hidden || (this.hide.get(key) ?? -1) > layer;
    if (isDirectory) this.walked.set(names[names.length - 1]!, { key, hidden });
    return hidden || (!isDirectory && (this.directory.get(key) ?? -1) > layer);
  }

  /** A directory's key and whether it is hidden, from its names alone. */
  private fromScratch(layer: number, names: readonly Uint8Array[]): Walked {
    let walked = ROOT;
    for (const name of names) {
      const key = walked.key === '' ? nameText(name) : `${walked.key}/${nameText(name)}`;
      walked = { key, hidden: walked.hidden || (this.hide.get(key) ?? -1) > layer };
    }
    return walked;
  }
}

/**
 * The shadows of a chain's deltas, read from their tables by range
 * (openLayer with wholeTables): a round trip or two, while the full
 * backup's download starts.
 */
export async function chainShadows(deltas: readonly DirectoryBackup[], store: ObjectStore, codecs: CodecRegistry | undefined, signal?: AbortSignal): Promise<Shadows> {
  // Their sizes were checked by the restore: each is the superblock's read and the tables' beside it.
  const opened = await Promise.allSettled(deltas.map((delta) => openLayer(delta, { store, codecs, signal, wholeTables: true, sizeChecked: true })));
  try {
    const failure = opened.find((settled): settled is PromiseRejectedResult => settled.status === 'rejected');
    if (failure) throw failure.reason;
    return await Shadows.of(opened.map((settled) => (settled as PromiseFulfilledResult<SquashfsImage>).value), signal);
  } finally {
    await Promise.allSettled(opened.map((settled) => settled.status === 'fulfilled' && settled.value.close()));
  }
}
