/**
 * A `.wasm` import, as Workers bundlers make one (Wrangler's CompiledWasm
 * module rule, the Cloudflare Vite plugin): a compiled WebAssembly.Module.
 */
declare module '*.wasm' {
  const module: WebAssembly.Module;
  export default module;
}
