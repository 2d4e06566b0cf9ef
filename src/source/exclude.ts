import ignore from 'ignore';

/** Decides whether an entry (path relative to the root, "/"-separated) is left out. */
export type ExcludeFilter = (relativePath: string, isDirectory: boolean) => boolean;

/**
 * A filter from gitignore-style patterns: "*.log" anywhere, "/build" at the
 * root only, "cache/" directories only, "!keep.log" to take one back.
 */
export function excludePatterns(patterns: readonly string[]): ExcludeFilter | undefined {
  if (patterns.length === 0) return undefined;
  const matcher = ignore({ allowRelativePaths: true }).add([...patterns]);
  return (relativePath, isDirectory) => matcher.ignores(isDirectory ? `${relativePath}/` : relativePath);
}
