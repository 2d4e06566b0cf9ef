import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * A worker script built beside the package's modules (`dist/<name>.js`):
 * found next to this module when running from dist/, or in dist/ when
 * running from the sources; undefined when absent (e.g. bundled elsewhere).
 */
export function workerScript(name: string): URL | undefined {
  for (const candidate of [new URL(`./${name}.js`, import.meta.url), new URL(`../../dist/${name}.js`, import.meta.url)]) {
    if (existsSync(fileURLToPath(candidate))) return candidate;
  }
  return undefined;
}
