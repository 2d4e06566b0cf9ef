/**
 * An ES module Worker that uses the BUILT package (dist/index.js, the
 * runtime-agnostic main entry) in real workerd. test/workerd.test.ts bundles
 * it with esbuild into one file and runs it through Miniflare, without
 * nodejs_compat.
 *
 * Routes:
 *   GET  /probe                  what the runtime offers and refuses (JSON)
 *   POST /deflate                the body through CompressionStream('deflate')
 *   POST /write?codec=C[&level=N] packs sampleSource() into an image, returns its bytes;
 *                                C = gzip-fflate | gzip-native (CompressionStream) | zstd;
 *                                header x-write-result: the WriteResult as JSON
 *   POST /read?path=P[&stream=1] opens the posted image, returns P's bytes
 *                                (stream=1: through createReadStream)
 *   POST /readlink?path=P        a symlink's target
 *   POST /list                   the posted image's entries (JSON)
 */
import {
  bytesSource, compressionStreamGzipCodec, createRegistry, createZstdCodec, defaultCodecs, deflateWithCompressionStream, gzipCodec, hasCompressionStream,
  SquashfsImage, writeImage, type Codec, type CodecRegistry,
} from '../../dist/index.js';
import { sampleSource, TREE_MTIME } from './tree.js';
import { loadWasmModule, ZSTD_WASM_MODULE } from './wasm-module.js';
import { memorySink } from '../helpers/memory-sink.js';

/** No bindings are needed: everything the Worker uses is in its bundle. */
type Env = Record<string, unknown>;

// ---------------------------------------------------------------------------
// zstd: the place to plug the WASM codec in
// ---------------------------------------------------------------------------

/**
 * The zstd codec's precompiled WebAssembly module comes in as a module of
 * the Worker, never as bytes: workerd refuses to compile WebAssembly at run
 * time ("Wasm code generation disallowed by embedder"), and refuses Wasm
 * *bindings* for module Workers ("Wasm bindings are not allowed in
 * modules-based scripts. Use Wasm modules instead."). A real Worker writes
 * `import zstdModule from './zstd.wasm'` (Wrangler's CompiledWasm rule);
 * here it is imported dynamically, so the route is wired when the test (or
 * a later engineer) hands Miniflare a CompiledWasm module at this path, and
 * answers 501 while there is none.
 */
// ZSTD_WASM_MODULE and loadWasmModule are in wasm-module.ts (imported, not
// re-exported: workerd takes every named export of the main module for a handler).

/** The zstd codec (compressor id 6) from the precompiled module: workerd instantiates a Module, never bytes. */
function zstdCodecFromModule(module: WebAssembly.Module): Promise<Codec> {
  return createZstdCodec({ module });
}

// ---------------------------------------------------------------------------


const json = (value: unknown, status = 200): Response =>
  new Response(JSON.stringify(value, null, 2), { status, headers: { 'content-type': 'application/json' } });

const bytesResponse = (bytes: Uint8Array, headers: Record<string, string> = {}): Response =>
  new Response(bytes as Uint8Array<ArrayBuffer>, { headers: { 'content-type': 'application/octet-stream', ...headers } });

/** What a runtime feature does when tried: "ok" or the exact error. */
async function attempt(fn: () => unknown): Promise<string> {
  try {
    await fn();
    return 'ok';
  } catch (error) {
    return `${(error as Error).name}: ${(error as Error).message}`;
  }
}

/** The smallest valid WebAssembly module: magic and version. */
const EMPTY_WASM = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);

async function probe(): Promise<Response> {
  const g = globalThis as Record<string, unknown>;
  // A computed specifier keeps esbuild from resolving (or bundling) it.
  const nodeZlib = ['node', 'zlib'].join(':');
  return json({
    userAgent: typeof navigator === 'undefined' ? undefined : navigator.userAgent,
    compressionStream: hasCompressionStream(),
    decompressionStream: typeof DecompressionStream !== 'undefined',
    process: typeof g['process'],
    Buffer: typeof g['Buffer'],
    wasmModuleFromBytes: await attempt(() => new WebAssembly.Module(EMPTY_WASM)),
    wasmCompileFromBytes: await attempt(() => WebAssembly.compile(EMPTY_WASM)),
    wasmInstantiateFromBytes: await attempt(() => WebAssembly.instantiate(EMPTY_WASM)),
    importNodeZlib: await attempt(() => import(/* @vite-ignore */ nodeZlib)),
    wasmInstantiateImportedModule: await attempt(async () => {
      const module = await loadWasmModule('./probe.wasm');
      if (!module) throw new Error('no probe.wasm module');
      await WebAssembly.instantiate(module, {});
    }),
    zstdModule: (await loadWasmModule(ZSTD_WASM_MODULE)) !== undefined,
  });
}

async function registryFor(codec: string): Promise<{ codecs: CodecRegistry; compression: string } | Response> {
  switch (codec) {
    case 'gzip-fflate':
      return { codecs: createRegistry([gzipCodec()]), compression: 'gzip' };
    case 'gzip-native': {
      const gzip = compressionStreamGzipCodec();
      if (!gzip.compressAsync) return json({ error: 'CompressionStream is missing in this runtime' }, 500);
      return { codecs: createRegistry([gzip]), compression: 'gzip' };
    }
    case 'zstd': {
      const module = await loadWasmModule(ZSTD_WASM_MODULE);
      if (!module) return json({ error: `zstd needs the ${ZSTD_WASM_MODULE} module (a precompiled WebAssembly.Module)` }, 501);
      const zstd = await zstdCodecFromModule(module);
      return { codecs: createRegistry([zstd]), compression: 'zstd' };
    }
    default:
      return json({ error: `unknown codec ${codec}` }, 400);
  }
}

async function write(url: URL): Promise<Response> {
  const chosen = await registryFor(url.searchParams.get('codec') ?? 'gzip-fflate');
  if (chosen instanceof Response) return chosen;
  const level = url.searchParams.get('level');
  const sink = memorySink();
  const result = await writeImage(sampleSource(), '/', sink, {
    ...chosen,
    level: level === null ? undefined : Number(level),
    mtime: TREE_MTIME,
  });
  return bytesResponse(sink.image(), { 'x-write-result': JSON.stringify(result) });
}

async function openPosted(request: Request): Promise<SquashfsImage> {
  // Every compressor reads (pure JS), gzip through the runtime's own inflate where it has one.
  const codecs = createRegistry([...defaultCodecs().values(), compressionStreamGzipCodec()]);
  return SquashfsImage.open(bytesSource(new Uint8Array(await request.arrayBuffer())), { codecs });
}

async function route(request: Request): Promise<Response> {
  const url = new URL(request.url);
  const path = url.searchParams.get('path') ?? '';
  switch (`${request.method} ${url.pathname}`) {
    case 'GET /probe':
      return probe();
    case 'POST /deflate':
      return bytesResponse(await deflateWithCompressionStream(new Uint8Array(await request.arrayBuffer())));
    case 'POST /write':
      return write(url);
    case 'POST /read': {
      const image = await openPosted(request);
      if (url.searchParams.get('stream') === '1') return new Response(image.createReadStream(path));
      return bytesResponse(await image.readFile(path));
    }
    case 'POST /readlink': {
      const image = await openPosted(request);
      return bytesResponse(await image.readlink(path));
    }
    case 'POST /list': {
      const image = await openPosted(request);
      const entries = [];
      for await (const entry of image.walk()) {
        const { type, mode, uid, gid, mtime, size } = entry.stat;
        entries.push({ path: entry.path, type, mode, uid, gid, mtime, size });
      }
      return json({ info: image.info(), entries });
    }
    default:
      return json({ error: `no route ${request.method} ${url.pathname}` }, 404);
  }
}

export default {
  async fetch(request: Request, _env: Env): Promise<Response> {
    try {
      return await route(request);
    } catch (error) {
      const e = error as Error & { code?: string };
      // By name: the package's SquashfsError and the source modules' are two classes here.
      const status = e.name === 'SquashfsError' && e.code === 'NOT_FOUND' ? 404 : 500;
      return json({ name: e.name, code: e.code, message: e.message, stack: e.stack }, status);
    }
  },
};
