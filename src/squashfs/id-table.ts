import { SquashfsError } from '../errors.js';
import { MAX_IDS } from './constants.js';

/** The id table: the distinct uids and gids, which inodes name by index (u32 each). */
export class IdTable {
  private readonly indexes = new Map<number, number>();
  readonly ids: number[] = [];

  /** The index of an id, adding it on first use. */
  indexOf(id: number): number {
    let index = this.indexes.get(id);
    if (index === undefined) {
      if (this.ids.length >= MAX_IDS) {
        throw new SquashfsError('TOO_LARGE', `more than ${MAX_IDS} distinct uids and gids`);
      }
      index = this.ids.length;
      this.ids.push(id);
      this.indexes.set(id, index);
    }
    return index;
  }

  encode(): Uint8Array {
    const bytes = new Uint8Array(this.ids.length * 4);
    const view = new DataView(bytes.buffer);
    this.ids.forEach((id, i) => view.setUint32(i * 4, id, true));
    return bytes;
  }
}

export function decodeIdTable(payload: Uint8Array, count: number): Uint32Array {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const ids = new Uint32Array(count);
  for (let i = 0; i < count; i++) ids[i] = view.getUint32(i * 4, true);
  return ids;
}
