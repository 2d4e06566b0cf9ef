import { concatBytes, decodeUtf8Lossy, decodeUtf8Strict, encodeUtf8 } from '../squashfs/bytes.js';
import type { SourcePath } from './source.js';

const SLASH = new Uint8Array([0x2f]);

/** Joins a directory path and a raw name, staying a string while the bytes are valid UTF-8. */
export function joinPath(parent: SourcePath, name: Uint8Array): SourcePath {
  if (typeof parent === 'string') {
    const text = decodeUtf8Strict(name);
    if (text !== undefined) return parent.endsWith('/') ? parent + text : `${parent}/${text}`;
  }
  const base = typeof parent === 'string' ? encodeUtf8(parent) : parent;
  return base[base.length - 1] === 0x2f ? concatBytes([base, name]) : concatBytes([base, SLASH, name]);
}

/** A path for messages. */
export function displayPath(path: SourcePath): string {
  return typeof path === 'string' ? path : decodeUtf8Lossy(path);
}
