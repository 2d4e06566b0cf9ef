import ignore, { type Ignore } from 'ignore';
import { concatBytes } from '../squashfs/bytes.js';
import type { ExcludeFilter } from '../source/exclude.js';
import type { TreeSource } from '../source/source.js';

const join = (dir: string, name: string) => (dir === '/' ? `/${name}` : `${dir}/${name}`);

async function readText(source: TreeSource, path: string): Promise<string | undefined> {
  const file = await source.open(path).catch(() => undefined);
  if (!file) return undefined;
  try {
    const chunks: Uint8Array[] = [];
    for (let position = 0; ; ) {
      const buffer = new Uint8Array(65536);
      const n = await file.read(buffer, position);
      if (n === 0) break;
      chunks.push(buffer.subarray(0, n));
      position += n;
    }
    return new TextDecoder().decode(concatBytes(chunks));
  } finally {
    await file.close();
  }
}

/**
 * What git would leave out of `root`: `.git`, and every `.gitignore` in the
 * tree, each applying to its own directory and below, a deeper file's rules
 * overriding a shallower one's (negations included), through the `ignore`
 * library. A directory's .gitignore is read the first time one of its
 * entries is judged, so during the writer's own walk (which judges parents
 * before children and never looks into a directory left out, as git does
 * not): no walk of its own. `base` filters first (the caller's own patterns).
 */
export function gitignoreFilter(source: TreeSource, root: string, base: ExcludeFilter | undefined): ExcludeFilter {
  const rules = new Map<string, Promise<Ignore | undefined>>(); // directory relative to root ('' for root) -> its .gitignore
  const rulesOf = (dir: string) => {
    let found = rules.get(dir);
    if (!found) {
      const path = join(dir === '' ? root : join(root, dir), '.gitignore');
      found = readText(source, path).then((text) => (text === undefined ? undefined : ignore({ allowRelativePaths: true }).add(text)));
      rules.set(dir, found);
    }
    return found;
  };
  return async (relativePath, isDirectory) => {
    if (await base?.(relativePath, isDirectory)) return true;
    const parts = relativePath.split('/');
    if (parts.includes('.git')) return true;
    let ignored = false;
    for (let depth = 0; depth < parts.length; depth++) {
      const matcher = await rulesOf(parts.slice(0, depth).join('/'));
      if (!matcher) continue;
      const rest = parts.slice(depth).join('/');
      const result = matcher.test(isDirectory ? `${rest}/` : rest);
      if (result.ignored) ignored = true;
      else if (result.unignored) ignored = false;
    }
    return ignored;
  };
}
