import ignore from 'ignore';

/**
 * Decides whether an entry (path relative to the root, "/"-separated) is
 * left out. The walk asks for each entry before looking into it, parents
 * before children; the answer may come asynchronously (e.g. once a
 * directory's .gitignore is read).
 */
export type ExcludeFilter = (relativePath: string, isDirectory: boolean) => boolean | Promise<boolean>;

/**
 * A filter from gitignore-style patterns: "*.log" anywhere, "/build" at the
 * root only, "cache/" directories only, "!keep.log" to take one back.
 */
export function excludePatterns(patterns: readonly string[]): ((relativePath: string, isDirectory: boolean) => boolean) | undefined {
  if (patterns.length === 0) return undefined;
  const matcher = ignore({ allowRelativePaths: true }).add([...patterns]);
  return (relativePath, isDirectory) => matcher.ignores(isDirectory ? `${relativePath}/` : relativePath);
}
