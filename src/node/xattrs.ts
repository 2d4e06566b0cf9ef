import { spawn } from 'node:child_process';
import type { SourcePath, XattrLookup } from '../source/source.js';
import type { Xattr } from '../squashfs/xattr-table.js';

/** A key for a path, equal for the string and byte forms of the same bytes. */
export const pathKey = (path: SourcePath): string => Buffer.from(path as string).toString('latin1');

/** Undoes getfattr's quoting of file names: \ooo octal escapes and \\. */
export function unquoteGetfattrName(quoted: string): Buffer {
  const bytes: number[] = [];
  const raw = Buffer.from(quoted, 'latin1');
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x5c && raw[i + 1] === 0x5c) {
      bytes.push(0x5c);
      i++;
    } else if (raw[i] === 0x5c && i + 3 < raw.length + 0 && /^[0-7]{3}$/.test(raw.subarray(i + 1, i + 4).toString('latin1'))) {
      bytes.push(parseInt(raw.subarray(i + 1, i + 4).toString('latin1'), 8));
      i += 3;
    } else {
      bytes.push(raw[i]!);
    }
  }
  return Buffer.from(bytes);
}

/** Parses `getfattr -d -e base64` output into xattrs per path key. */
export function parseGetfattr(output: Buffer): Map<string, Xattr[]> {
  const result = new Map<string, Xattr[]>();
  let current: Xattr[] | undefined;
  for (const line of output.toString('latin1').split('\n')) {
    if (line.startsWith('# file: ')) {
      current = [];
      result.set(unquoteGetfattrName(line.slice(8)).toString('latin1'), current);
    } else if (current && line.length > 0 && !line.startsWith('#')) {
      const eq = line.indexOf('=');
      const name = Buffer.from(eq < 0 ? line : line.slice(0, eq), 'latin1').toString('utf8');
      const encoded = eq < 0 ? '' : line.slice(eq + 1);
      const value = encoded.startsWith('0s') ? Buffer.from(encoded.slice(2), 'base64') : Buffer.alloc(0);
      current.push({ name, value: new Uint8Array(value) });
    }
  }
  return result;
}

/**
 * Node's fs has no xattr API: read the whole tree's xattrs with one
 * `getfattr -R` run. Resolves undefined when getfattr is not installed.
 */
export async function readTreeXattrs(root: string): Promise<Map<string, Xattr[]> | undefined> {
  return new Promise((resolve, reject) => {
    const child = spawn('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'base64', '--absolute-names', root], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? resolve(undefined) : reject(error)));
    child.on('close', () => resolve(parseGetfattr(Buffer.concat(chunks))));
  });
}

/**
 * The tree's xattrs as the writer's lookup. The getfattr run starts now and
 * is awaited at the first lookup, so it overlaps the start of packing
 * (walking the tree, starting the compression workers) instead of holding
 * it up. `onMissing` is told once when getfattr is not installed; every
 * lookup then finds nothing.
 */
export function treeXattrs(root: string, onMissing?: () => void): XattrLookup {
  const table = readTreeXattrs(root);
  table.catch(() => undefined); // rethrown by the first lookup
  let told = false;
  // Once the table is read, lookups answer at once (a tree with none, without a key).
  let loaded: { found: Map<string, Xattr[]> | undefined } | undefined;
  const lookup = (found: Map<string, Xattr[]> | undefined, path: SourcePath) => {
    if (!found && !told) {
      told = true;
      onMissing?.();
    }
    return found && found.size > 0 ? found.get(pathKey(path)) : undefined;
  };
  return (path) => {
    if (loaded) return lookup(loaded.found, path);
    return table.then((found) => {
      loaded = { found };
      return lookup(found, path);
    });
  };
}

