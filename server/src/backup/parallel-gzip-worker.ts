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
  });
  // zlib hands back either an exact-size Buffer of its own (transfer it as is) or a view into a
  // larger or shared buffer (a pool slice for small outputs); transferring that would pin the
  // slack downstream, so copy those few bytes instead.
  const owned = compressed.byteOffset === 0 && compressed.byteLength === compressed.buffer.byteLength;
  const output = owned ? (compressed.buffer as ArrayBuffer) : new Uint8Array(compressed).buffer;
  const result: BlockResult = { seq: job.seq, output, input: job.buffer };
  port.postMessage(result, [output, job.buffer]);
});
