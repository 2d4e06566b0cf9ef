/**
 * Entry point bundled (by test/helpers/child.ts) into a standalone .mjs and
 * run in a separate node process, so a test can run the writer as another
 * user (setpriv) or watch its open file descriptors from outside.
 *
 *   node pack-child.mjs api '{"dir":..., "image":..., "options":{...}}'
 *   node pack-child.mjs cli '{"argv":["pack", ...]}'
 *
 * Prints one JSON object (ChildOutcome) on stdout.
 */
import { main } from '../../src/cli/main.js';
import { SquashfsError } from '../../src/errors.js';
import { packDirectory } from '../../src/node/index.js';

function describeError(e: unknown) {
  const err = e as { name?: unknown; code?: unknown; path?: unknown; message?: unknown; stack?: unknown };
  return {
    isSquashfsError: e instanceof SquashfsError,
    name: String(err?.name),
    code: typeof err?.code === 'string' ? err.code : undefined,
    path: typeof err?.path === 'string' ? err.path : undefined,
    message: String(err?.message),
    stack: String(err?.stack),
  };
}

const [mode, json] = process.argv.slice(2);
const req = JSON.parse(json ?? '{}');
let outcome: unknown;
if (mode === 'api') {
  try {
    const result = await packDirectory(req.dir, req.image, req.options);
    outcome = { ok: true, result };
  } catch (e) {
    outcome = { ok: false, error: describeError(e) };
  }
} else if (mode === 'cli') {
  let stdout = '';
  let stderr = '';
  try {
    const code = await main(req.argv, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) });
    outcome = { code, stdout, stderr };
  } catch (e) {
    outcome = { threw: describeError(e), stdout, stderr };
  }
} else {
  outcome = { usage: 'pack-child.mjs api|cli <json>' };
}
process.stdout.write(JSON.stringify(outcome));
