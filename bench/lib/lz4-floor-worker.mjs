// bench/lib/lz4-floor.mjs's worker: reads a block from a descriptor and lz4s it with liblz4 (dist/lz4.wasm,
// called directly: LZ4_compress_fast_extState at acceleration 1, what the pack's plain lz4 does).
import { readSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';

const { module, blockSize } = workerData;
const x = new WebAssembly.Instance(module, {}).exports;
x._initialize();
const state = x.malloc(x.LZ4_sizeofState());
const src = x.malloc(blockSize);
const dst = x.malloc(blockSize);
const block = new Uint8Array(blockSize);

parentPort.on('message', ({ id, fd, position, length }) => {
  const data = block.subarray(0, length);
  for (let filled = 0; filled < length;) filled += readSync(fd, data, filled, length - filled, position + filled);
  new Uint8Array(x.memory.buffer, src, length).set(data);
  const packed = x.LZ4_compress_fast_extState(state, src, dst, length, length - 1, 1);
  const bytes = packed > 0 ? new Uint8Array(x.memory.buffer, dst, packed).slice() : data.slice();
  parentPort.postMessage({ id, bytes }, [bytes.buffer]);
});
