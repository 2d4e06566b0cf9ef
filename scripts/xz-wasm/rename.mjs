// Gives emcc's liblzma build plain names (-O3 minifies them; the JS glue
// emcc writes beside it says which is which), as src/codecs/xz-wasm.ts
// expects: the import env.emscripten_resize_heap; the exports memory,
// __wasm_call_ctors, lzma_version_string, lzma_stream_buffer_encode, malloc
// and free. Other exports are dropped.
// usage: node rename.mjs in.wasm in.js out.wasm
import { readFileSync, writeFileSync } from 'node:fs';
const [wasmPath, jsPath, outPath] = process.argv.slice(2);
const js = readFileSync(jsPath, 'utf8');
const bytes = readFileSync(wasmPath);

// emcc's JS glue names what each minified import/export is.
const importOf = new Map(); // minified import name -> JS symbol
const lib = /asmLibraryArg\s*=\s*\{([^}]*)\}/.exec(js);
if (lib) for (const m of lib[1].matchAll(/"?(\w+)"?\s*:\s*(\w+)/g)) importOf.set(m[1], m[2]);
const exportOf = new Map(); // minified export name -> symbol
for (const m of js.matchAll(/(\w+)\s*=\s*Module\["\w+"\]\s*=\s*function\(\)\s*\{\s*return\s*\(\s*\w+\s*=\s*Module\["\w+"\]\s*=\s*Module\["asm"\]\["(\w+)"\]/g)) exportOf.set(m[2], m[1]);
const mem = /wasmMemory\s*=\s*Module\["asm"\]\["(\w+)"\]/.exec(js);
if (mem) exportOf.set(mem[1], 'memory');
// Without minification the names are the symbols themselves.
const wantedExports = {
  memory: 'memory', ___wasm_call_ctors: '__wasm_call_ctors', _lzma_version_string: 'lzma_version_string',
  _lzma_stream_buffer_encode: 'lzma_stream_buffer_encode', _malloc: 'malloc', _free: 'free',
};
const wantedImports = { _emscripten_resize_heap: ['env', 'emscripten_resize_heap'] };

let p = 0;
const u32 = () => { let r = 0, s = 0, b; do { b = bytes[p++]; r |= (b & 0x7f) << s; s += 7; } while (b & 0x80); return r >>> 0; };
const str = () => { const n = u32(); const s = bytes.subarray(p, p + n).toString('utf8'); p += n; return s; };
const leb = (n) => { const out = []; do { let b = n & 0x7f; n >>>= 7; if (n) b |= 0x80; out.push(b); } while (n); return Buffer.from(out); };
const name = (s) => Buffer.concat([leb(Buffer.byteLength(s)), Buffer.from(s)]);
const section = (id, body) => Buffer.concat([Buffer.from([id]), leb(body.length), body]);

if (bytes.readUInt32LE(0) !== 0x6d736100) throw new Error('not wasm');
const out = [bytes.subarray(0, 8)];
p = 8;
const seen = new Set();
while (p < bytes.length) {
  const id = bytes[p++];
  const size = u32();
  const start = p, end = p + size;
  if (id === 2) {
    const n = u32();
    const entries = [];
    for (let i = 0; i < n; i++) {
      const mod = str(), field = str();
      const descStart = p;
      const kind = bytes[p++];
      if (kind === 0) u32(); else throw new Error(`import ${mod}.${field} of kind ${kind}: only functions expected`);
      const symbol = importOf.get(field) ?? `_${field}`;
      const to = wantedImports[symbol];
      if (!to) throw new Error(`unexpected import ${mod}.${field} (${symbol})`);
      entries.push(Buffer.concat([name(to[0]), name(to[1]), bytes.subarray(descStart, p)]));
    }
    out.push(section(2, Buffer.concat([leb(entries.length), ...entries])));
  } else if (id === 7) {
    const n = u32();
    const entries = [];
    for (let i = 0; i < n; i++) {
      const field = str();
      const descStart = p;
      p++; u32();
      const symbol = exportOf.get(field) ?? (field === 'memory' ? 'memory' : `_${field}`.replace(/^___?wasm_call_ctors$/, '___wasm_call_ctors'));
      const to = wantedExports[symbol];
      if (!to) continue;
      seen.add(symbol);
      entries.push(Buffer.concat([name(to), bytes.subarray(descStart, p)]));
    }
    out.push(section(7, Buffer.concat([leb(entries.length), ...entries])));
  } else {
    out.push(bytes.subarray(start - 1 - leb(size).length, end));
  }
  p = end;
}
const missing = Object.keys(wantedExports).filter((s) => !seen.has(s));
if (missing.length) throw new Error(`exports not found: ${missing.join(', ')}`);
const result = Buffer.concat(out);
const module = new WebAssembly.Module(result);
console.log(JSON.stringify({ imports: WebAssembly.Module.imports(module), exports: WebAssembly.Module.exports(module).map((e) => `${e.name}:${e.kind}`) }));
writeFileSync(outPath, result);
