/**
 * The install holds what the code uses, and only that: package.json's
 * `dependencies` name exactly the packages some file in src/ imports
 * (statically, dynamically or for types), Node's built-ins aside. A
 * package only tests, examples, benchmarks or the build use is a dev
 * dependency (e.g. @foxglove/wasm-zstd: the build copies its zstd.wasm into
 * dist/). Imports are read with TypeScript's own scanner, so a name in a
 * comment or a string is not one.
 */
import { promises as fsp, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..');

/** The package a bare specifier names (`@scope/name` or `name`), or undefined for a relative path or a built-in. */
export function packageOf(specifier: string): string | undefined {
  if (specifier.startsWith('.') || specifier.startsWith('/') || specifier.startsWith('node:')) return undefined;
  const parts = specifier.split('/');
  const name = specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
  return builtinModules.includes(name) ? undefined : name;
}

/** The packages each file imports. */
function importsOf(files: ReadonlyMap<string, string>): Map<string, Set<string>> {
  const users = new Map<string, Set<string>>();
  for (const [file, text] of files) {
    for (const { fileName } of ts.preProcessFile(text, true, true).importedFiles) {
      const name = packageOf(fileName);
      if (!name) continue;
      if (!users.has(name)) users.set(name, new Set());
      users.get(name)!.add(file);
    }
  }
  return users;
}

/** What is wrong with `dependencies` for these source files: names none imports, and imports it lacks. */
export function dependencyProblems(dependencies: Record<string, string>, files: ReadonlyMap<string, string>): string[] {
  const users = importsOf(files);
  const problems: string[] = [];
  for (const name of Object.keys(dependencies).sort()) {
    if (!users.has(name)) problems.push(`dependencies names ${name}, which no file in src/ imports (a dev dependency, or none)`);
  }
  for (const [name, where] of [...users].sort(([a], [b]) => a.localeCompare(b))) {
    if (!(name in dependencies)) problems.push(`${[...where].sort().join(', ')} import ${name}, which dependencies lacks`);
  }
  return problems;
}

async function sourceFiles(dir: string, into = new Map<string, string>()): Promise<Map<string, string>> {
  for (const entry of await fsp.readdir(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) await sourceFiles(file, into);
    else if (/\.(ts|mts|cts|js|mjs|cjs)$/.test(entry.name)) into.set(path.relative(root, file), await fsp.readFile(file, 'utf8'));
  }
  return into;
}

describe('dependencies', () => {
  it('are exactly the packages src/ imports', async () => {
    const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    const files = await sourceFiles(path.join(root, 'src'));
    expect(files.size).toBeGreaterThan(50);
    expect(dependencyProblems(pkg.dependencies ?? {}, files)).toEqual([]);
  });

  it('the check finds a stray dependency and a missing one, and nothing in comments, strings or built-ins', () => {
    const files = new Map([
      ['src/a.ts', "import { x } from 'used';\nimport type { Y } from '@scope/typed/sub.js';\nimport fs from 'node:fs';\nimport path from 'path';\n"],
      ['src/b.ts', "// from 'in-a-comment'\nconst s = \"import('in-a-string')\";\nexport const load = () => import('dynamic');\n"],
    ]);
    expect(dependencyProblems({ used: '1', '@scope/typed': '1', dynamic: '1' }, files)).toEqual([]);
    expect(dependencyProblems({ used: '1', '@scope/typed': '1', dynamic: '1', stray: '1' }, files)).toEqual([
      'dependencies names stray, which no file in src/ imports (a dev dependency, or none)',
    ]);
    expect(dependencyProblems({ used: '1', dynamic: '1' }, files)).toEqual(['src/a.ts import @scope/typed, which dependencies lacks']);
  });
});
