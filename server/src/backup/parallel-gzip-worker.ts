// Worker side of parallel-gzip.ts: compresses one block at a time into raw deflate.
// It must stay loadable by Node's type stripping (vitest runs the .ts sources and the pool then
// starts this file as .ts): node builtins and `import type` only, no enums or parameter properties.
import { parentPort, workerData } from 'node:worker_threads';
import { constants, deflateRawSync } from 'node:zlib';

export interface BlockJob {
  readonly seq: number;
  /** `dictLength` bytes of dictionary end at `dataOffset`; the block's data follows it. */
  readonly buffer: ArrayBuffer;
  readonly dictLength: number;
  readonly dataOffset: number;
  readonly dataLength: number;
  readonly last: boolean;
  /** Test hook: throw instead of compressing, to exercise the worker-error path. */
  readonly fail?: boolean;
}

export interface BlockResult {
  readonly seq: number;
  readonly output: ArrayBuffer;
  /** The job's buffer, handed back for reuse. */
  readonly input: ArrayBuffer;
}

export interface WorkerConfig {
  readonly level: number;
}

const port = parentPort;
if (port === null) throw new Error('parallel-gzip-worker must run as a worker thread');
const { level } = workerData as WorkerConfig;

port.on('message', (job: BlockJob) => {
  if (job.fail === true) throw new Error(`injected failure compressing block ${job.seq}`);
  const data = new Uint8Array(job.buffer, job.dataOffset, job.dataLength);
  const compressed = deflateRawSync(data, {
    level,
    // The previous block's last 32 KiB: matches may reach back across the block boundary as they
    // would in one stream, which keeps the ratio within a fraction of a percent of plain gzip.
    ...(job.dictLength > 0 ? { dictionary: new Uint8Array(job.buffer, job.dataOffset - job.dictLength, job.dictLength) } : {}),
    // A sync flush ends the block on a byte boundary with BFINAL unset (an empty stored block,
    // 00 00 ff ff), so the blocks concatenate into one deflate stream; only the last one finishes
    // it. pigz does the same.
    finishFlush: job.last ? constants.Z_FINISH : constants.Z_SYNC_FLUSH,
    // One output buffer that holds the whole block even if it does not compress (deflate's worst
    // case adds ~0.03% plus a few bytes), and never from Buffer's shared pool: zlib then writes
    // straight into the buffer we hand over, instead of 16 KiB pieces concatenated afterwards.
    chunkSize: Math.max(job.dataLength + (job.dataLength >> 10) + 1024, Buffer.poolSize),
  });
  const output = exactBuffer(compressed);
  const result: BlockResult = { seq: job.seq, output, input: job.buffer };
  port.postMessage(result, [output, job.buffer]);
});

/**
 * The compressed bytes as an ArrayBuffer of exactly their size, fit to transfer. `transfer(n)`
 * shrinks zlib's buffer (V8 reallocates the backing store) and detaches it at once. Copying out
 * instead would leave a block-sized garbage buffer per block, and V8 lets those pile up to its
 * external-memory GC limit (tens of MB per isolate; measured here: RSS ~300 MB instead of ~175 MB
 * at 2 threads), and would not save the copy zlib's 16 KiB pieces otherwise need.
 */
function exactBuffer(compressed: Buffer): ArrayBuffer {
  // Not expected given chunkSize above, but a view into a shared buffer must never be detached.
  if (compressed.byteOffset !== 0) return new Uint8Array(compressed).buffer;
  // ES2024 (node >= 21); our lib setting is ES2023.
  return (compressed.buffer as ArrayBuffer & { transfer(newLength: number): ArrayBuffer }).transfer(compressed.byteLength);
}
