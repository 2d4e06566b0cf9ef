import ignore, { type Ignore } from 'ignore';
import { concatBytes, decodeUtf8Lossy } from '../squashfs/bytes.js';
import type { ExcludeFilter } from '../source/exclude.js';
import { S_IFDIR, S_IFMT, type TreeSource } from '../source/source.js';

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
 * library. A directory that is left out is not looked into, as git does
 * not (so nothing under it can be taken back in). `base` filters first
 * (the caller's own patterns).
 */
export async function gitignoreFilter(source: TreeSource, root: string, base: ExcludeFilter | undefined): Promise<ExcludeFilter> {
  const rules = new Map<string, Ignore>(); // directory relative to root ('' for root) -> its .gitignore
  const filter: ExcludeFilter = (relativePath, isDirectory) => {
    if (base?.(relativePath, isDirectory)) return true;
    const parts = relativePath.split('/');
    if (parts.includes('.git')) return true;
    let ignored = false;
    for (let depth = 0; depth < parts.length; depth++) {
      const dir = parts.slice(0, depth).join('/');
      const matcher = rules.get(dir);
      if (!matcher) continue;
      const rest = parts.slice(depth).join('/');
      const result = matcher.test(isDirectory ? `${rest}/` : rest);
      if (result.ignored) ignored = true;
      else if (result.unignored) ignored = false;
    }
    return ignored;
  };
  // Breadth first, so each directory's rules are known before its children are judged.
  const queue: string[] = [''];
  while (queue.length > 0) {
    const rel = queue.shift()!;
    const dir = rel === '' ? root : join(root, rel);
    const text = await readText(source, join(dir, '.gitignore'));
    if (text !== undefined) rules.set(rel, ignore({ allowRelativePaths: true }).add(text));
    const names = await source.readdir(dir).catch(() => [] as Uint8Array[]);
    for (const raw of names) {
      const name = decodeUtf8Lossy(raw);
      const child = rel === '' ? name : `${rel}/${name}`;
      const stat = await source.lstat(join(dir, name)).catch(() => undefined);
      if (stat && (stat.mode & S_IFMT) === S_IFDIR && !filter(child, true)) queue.push(child);
    }
  }
  return filter;
}
