/**
 * Throws (through `fail`) unless a WebAssembly module has exactly the
 * imports given ("module.name:kind") and every export named in `exports`
 * (by meaning: 'memory' a memory, anything else a function). `what` names
 * the build expected, for the message.
 */
export function checkModuleShape(
  module: WebAssembly.Module, imports: readonly string[], exports: Readonly<Record<string, string>>, what: string, fail: (message: string) => never,
): void {
  const found = WebAssembly.Module.imports(module).map((i) => `${i.module}.${i.name}:${i.kind}`).sort();
  if (found.join(',') !== [...imports].sort().join(',')) fail(`the WebAssembly module is not ${what} (imports ${found.join(', ') || 'none'})`);
  const kinds = new Map(WebAssembly.Module.exports(module).map((e) => [e.name, e.kind]));
  for (const [meaning, name] of Object.entries(exports)) {
    const kind = kinds.get(name);
    const want = meaning === 'memory' ? 'memory' : 'function';
    if (kind !== want) fail(`the WebAssembly module is not ${what} (export "${name}" for ${meaning} is ${kind ?? 'missing'})`);
  }
}
