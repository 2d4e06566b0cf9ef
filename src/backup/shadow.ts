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

/** What the deltas hold at a path: the highest layer whose entry there hides what is below, the highest with a plain directory there (-1: none), and the names under it. */
interface Node {
  hide: number;
  directory: number;
  children: Map<string, Node> | undefined;
}

/** Where `hides` is in the tree: the deltas' node at a directory (none: no delta holds anything there or under it), and whether a layer above hides it. */
interface Walked {
  node: Node | undefined;
  hidden: boolean;
}

const UNTOUCHED: Walked = { node: undefined, hidden: false };
const HIDDEN: Walked = { node: undefined, hidden: true };

const newNode = (): Node => ({ hide: -1, directory: -1, children: undefined });

function childOf(node: Node, name: Uint8Array): Node {
  node.children ??= new Map();
  const key = nameText(name);
  let child = node.children.get(key);
  if (!child) node.children.set(key, (child = newNode()));
  return child;
}

/**
 * What the deltas of a chain hide of the layers below them, as overlayfs
 * shows the chain: a restore that writes each layer in turn leaves out
 * what a layer above would replace or remove, so nothing is written twice.
 * At a path, a layer's plain directory merges with the directories below
 * it (and hides their non-directories); anything else (a file, a symlink,
 * a device, a whiteout, an opaque directory) hides everything below it at
 * that path and under it. Kept as a tree of the paths the deltas hold, so
 * a lower layer's entries where no delta holds anything cost a lookup of
 * their directory alone.
 */
export class Shadows {
  private readonly root = newNode();
  private readonly top: Walked = { node: this.root, hidden: false };
  /** Directories met by `hides`, by their name's bytes object. */
  private readonly walked = new WeakMap<Uint8Array, Walked>();

  /** Reads the deltas' metadata: `deltas[k]` is layer k + 1 of the chain (layer 0, the full backup, hides nothing). */
  static async of(deltas: readonly SquashfsImage[], signal?: AbortSignal): Promise<Shadows> {
    const shadows = new Shadows();
    for (const [k, image] of deltas.entries()) {
      const layer = k + 1;
      // A directory's node by its name's bytes object (the walk hands a directory's children its names array's elements).
      const nodes = new WeakMap<Uint8Array, Node>();
      for await (const entry of image.walk({ signal })) {
        const { names, stat } = entry;
        if (names.length === 0) continue; // the root always merges
        const parent = names.length === 1 ? shadows.root : nodes.get(names[names.length - 2]!)!;
        const node = childOf(parent, names[names.length - 1]!);
        const plain = stat.type === 'directory' && !(stat.hasXattrs && isOpaque(await image.xattrs(entry)));
        if (plain) node.directory = Math.max(node.directory, layer);
        else node.hide = Math.max(node.hide, layer);
        if (stat.type === 'directory') nodes.set(names[names.length - 1]!, node);
      }
    }
    return shadows;
  }

  /**
   * Whether a layer above `layer` replaces or removes its entry at `names`
   * (a directory when `isDirectory`). Meant for a walk's entries, parents
   * before children: where a directory is in the deltas' tree is kept by
   * its name's bytes object, which the walk hands its children too.
   */
  hides(layer: number, names: readonly Uint8Array[], isDirectory: boolean): boolean {
    if (names.length === 0 || !this.root.children) return false;
    const last = names[names.length - 1]!;
    const parent = names.length === 1 ? this.top : this.walked.get(names[names.length - 2]!) ?? this.fromScratch(layer, names.slice(0, -1));
    const node = parent.hidden ? undefined : parent.node?.children?.get(nameText(last));
    const walked = parent.hidden ? HIDDEN : node ? { node, hidden: node.hide > layer } : UNTOUCHED;
    if (isDirectory) this.walked.set(last, walked);
    return walked.hidden || (!isDirectory && node !== undefined && node.directory > layer);
  }

  /** Where a directory is in the deltas' tree, from its names alone. */
  private fromScratch(layer: number, names: readonly Uint8Array[]): Walked {
    let walked = this.top;
    for (const name of names) {
      if (walked.hidden || !walked.node) return walked;
      const node = walked.node.children?.get(nameText(name));
      walked = node ? { node, hidden: node.hide > layer } : UNTOUCHED;
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
