/**
 * A Worker that writes lz4 and xz images with the BUILT package
 * (dist/index.js) in real workerd, for test/lz4-xz.workerd.test.ts:
 *
 *   GET /write?comp=lz4|xz[&level=N][&filters=x86,arm]   sampleSource() as an image (4 KiB blocks)
 *
 * lz4 is pure JS and writes from defaultCodecs(); xz needs liblzma's
 * WebAssembly module, which workerd takes only as a module of the Worker
 * (`import m from 'squashfs-ts/xz.wasm'`; here the test hands Miniflare a
 * CompiledWasm module at ./xz.wasm), never compiled from bytes.
 */
import { createRegistry, createXzCodec, defaultCodecs, writeImage, type CodecRegistry } from '../../dist/index.js';
import { memorySink } from '../helpers/memory-sink.js';
import { sampleSource, TREE_MTIME } from './tree.js';
import { loadWasmModule } from './wasm-module.js';

export default {
  async fetch(request: Request): Promise<Response> {
    try {
      const url = new URL(request.url);
      const comp = url.searchParams.get('comp') ?? 'lz4';
      const level = url.searchParams.get('level');
      const filters = url.searchParams.get('filters');
      let codecs: CodecRegistry = defaultCodecs();
      if (comp === 'xz') {
        const module = await loadWasmModule('./xz.wasm');
        if (!module) return new Response('no ./xz.wasm module', { status: 501 });
        codecs = createRegistry([...codecs.values(), await createXzCodec({ module })]);
      }
      const sink = memorySink();
      await writeImage(sampleSource(), '/', sink, {
        codecs,
        compression: comp,
        level: level === null ? undefined : Number(level),
        compressorOptions: filters ? { filters: filters.split(',') } : undefined,
        blockSize: 4096,
        mtime: TREE_MTIME,
      });
      return new Response(sink.image() as Uint8Array<ArrayBuffer>);
    } catch (error) {
      return new Response(`${(error as Error).stack}`, { status: 500 });
    }
  },
};
