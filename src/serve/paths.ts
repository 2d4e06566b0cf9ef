/**
 * Paths inside an image as they travel in URLs: each name percent-encoded
 * byte by byte (names are raw bytes, not always UTF-8), "/" between names.
 *
 * Decoding is where traversal is stopped: a name that decodes to "." or
 * "..", or holds "/" or NUL (written as %2f or %00), or a malformed escape,
 * is refused (undefined: the server answers 400). Lookups then happen in
 * the image only, name by name, never following symlinks; nothing on the
 * server's own file system is ever named by a URL.
 */
import { encodeUtf8 } from '../squashfs/bytes.js';

/** Characters a name may keep as they are in a URL path segment. */
const PLAIN = /^[A-Za-z0-9\-._~!$&'()*+,;=:@]$/;

/** One name as a URL path segment. */
export function encodeName(name: Uint8Array): string {
  let out = '';
  for (const byte of name) {
    const char = String.fromCharCode(byte);
    out += byte < 0x80 && PLAIN.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Names as a URL path ("a/b/c"), no leading or trailing "/". */
export function encodeNames(names: readonly Uint8Array[]): string {
  return names.map(encodeName).join('/');
}

const hexValue = (code: number) => (code >= 0x30 && code <= 0x39 ? code - 0x30 : code >= 0x41 && code <= 0x46 ? code - 0x37 : code >= 0x61 && code <= 0x66 ? code - 0x57 : -1);

/** One URL path segment as a name's bytes; undefined for a malformed escape. */
function decodeSegment(segment: string): Uint8Array | undefined {
  const raw = encodeUtf8(segment);
  const out: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] !== 0x25) {
      out.push(raw[i]!);
      continue;
    }
    const high = hexValue(raw[i + 1] ?? -1);
    const low = hexValue(raw[i + 2] ?? -1);
    if (high < 0 || low < 0) return undefined;
    out.push(high * 16 + low);
    i += 2;
  }
  return new Uint8Array(out);
}

/**
 * The names a URL path (after the route's prefix, still percent-encoded)
 * names, or undefined when it tries to leave the image's tree or is
 * malformed. Empty segments ("a//b", a trailing "/") are passed over.
 */
export function decodeNames(path: string): Uint8Array[] | undefined {
  const names: Uint8Array[] = [];
  for (const segment of path.split('/')) {
    if (segment === '') continue;
    const name = decodeSegment(segment);
    if (!name || name.length > 255) return undefined;
    if (name.includes(0x2f) || name.includes(0)) return undefined;
    if ((name.length === 1 && name[0] === 0x2e) || (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e)) return undefined;
    names.push(name);
  }
  return names;
}
