import { existsSync } from 'node:fs';
import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { crc32 } from 'node:zlib';
import type { BlockJob, BlockResult, WorkerConfig } from './parallel-gzip-worker.js';

export interface ParallelGzipOptions {
  /** zlib compression level, 1 (fastest) to 9 (smallest). */
  readonly level: number;
  /** Worker threads compressing blocks; 1 still works (one worker, same output format). */
  readonly threads: number;
  /** Bytes of input per independently compressed block; at least 32 KiB. Default 128 KiB, as pigz. */
  readonly blockSize?: number;
  /** Test hook: the worker given this block (0-based) throws instead of compressing it. */
  readonly __test__failBlock?: number;
}

export const DEFAULT_BLOCK_SIZE = 128 * 1024;
/** Deflate's window: all the history a match can reach, hence all a block needs from before it. */
const DICT_SIZE = 32 * 1024;
/** Blocks handed to the pool and not yet pushed, per thread: one compressing, one queued behind it. */
const BLOCKS_PER_THREAD = 2;

/** A worker of the pool failed (threw or exited on its own); `cause` holds what it reported. */
export class ParallelGzipError extends Error {
  readonly code = 'PARALLEL_GZIP_WORKER_FAILED';

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ParallelGzipError';
  }
}

let liveWorkers = 0;

/** Worker threads started by any parallel gzip stream and not yet exited (tests check for leaks). */
export function liveParallelGzipWorkers(): number {
  return liveWorkers;
}

/**
 * A pigz-style gzip compressor: input is cut into blocks compressed as raw deflate on a pool of
 * `threads` worker threads, each block primed with the previous block's last 32 KiB, and the
 * results are written in order as ONE gzip member (RFC 1952) that gunzip, zcat and node's zlib read
 * like any other. At most `threads * 2` blocks are in flight; a write's callback waits for a slot,
 * so memory stays flat whatever the input size. The workers end with the stream.
 */
export function createParallelGzip(options: ParallelGzipOptions): Transform {
  return new ParallelGzip(options);
}

// The worker is compiled next to this file; vitest runs the .ts sources, where only the .ts
// sibling exists, and Node 24 runs that one directly (type stripping).
const WORKER_URL = ((): URL => {
  const js = new URL('./parallel-gzip-worker.js', import.meta.url);
  return existsSync(js) ? js : new URL('./parallel-gzip-worker.ts', import.meta.url);
})();

class ParallelGzip extends Transform {
  readonly #level: number;
  readonly #threads: number;
  readonly #blockSize: number;
  readonly #window: number;
  readonly #failBlock: number | undefined;
  readonly #workers: Worker[] = [];
  /** Jobs outstanding per worker: a worker is ref'd only while it has work (see #post). */
  readonly #outstanding: number[] = [];
  /** Block buffers the workers handed back, reused rather than allocating one per block. */
  readonly #spare: ArrayBuffer[] = [];
  /** Results that arrived ahead of an earlier block, by sequence number. */
  readonly #done = new Map<number, ArrayBuffer>();
  /** The block being filled: DICT_SIZE bytes of room for the dictionary, then the data. */
  #block: Buffer | null = null;
  #fill = 0;
  #dictLength = 0;
  #nextSeq = 0;
  #nextOut = 0;
  #crc = 0;
  #length = 0;
  /** Set when a write or the flush is waiting for the pool to make progress; called once. */
  #waiter: (() => void) | null = null;
  /** Set once we terminate the workers ourselves, so their exit is not taken for a failure. */
  #closing = false;

  constructor(options: ParallelGzipOptions) {
    super();
    const { level, threads, blockSize = DEFAULT_BLOCK_SIZE } = options;
    if (!Number.isInteger(level) || level < 1 || level > 9) throw new RangeError(`parallel gzip: level must be an integer 1-9, got ${level}`);
    if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`parallel gzip: threads must be a positive integer, got ${threads}`);
    // Smaller blocks would need a dictionary spanning several earlier blocks; pigz has the same floor.
    if (!Number.isInteger(blockSize) || blockSize < DICT_SIZE) throw new RangeError(`parallel gzip: blockSize must be an integer >= ${DICT_SIZE}, got ${blockSize}`);
    this.#level = level;
    this.#threads = threads;
    this.#blockSize = blockSize;
    this.#window = threads * BLOCKS_PER_THREAD;
    this.#failBlock = options.__test__failBlock;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    // Input arrives in order, so the CRC is simply carried along; no crc32_combine needed.
    this.#crc = crc32(chunk, this.#crc);
    this.#length += chunk.length;
    this.#consume(chunk, 0, callback);
  }

  override _flush(callback: TransformCallback): void {
    const dispatchLast = () => {
      if (this.#inFlight() >= this.#window) {
        this.#waiter = dispatchLast;
        return;
      }
      this.#dispatch(true);
      finish();
    };
    const finish = () => {
      if (this.#inFlight() > 0) {
        this.#waiter = finish;
        return;
      }
      this.push(trailer(this.#crc, this.#length));
      void this.#terminate().then(() => callback());
    };
    dispatchLast();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#waiter = null;
    this.#done.clear();
    this.#spare.length = 0;
    this.#block = null;
    // Report the stream closed only once no worker is left running.
    void this.#terminate().then(() => callback(error));
  }

  #inFlight(): number {
    return this.#nextSeq - this.#nextOut;
  }

  /** Copies `chunk` from `offset` into blocks, dispatching full ones; pauses while the window is full. */
  #consume(chunk: Buffer, offset: number, callback: TransformCallback): void {
    while (offset < chunk.length) {
      // A full block is dispatched only once more input exists, so that at the end the last
      // block (the one compressed with Z_FINISH) is never an empty block after a full one.
      if (this.#fill === this.#blockSize) {
        if (this.#inFlight() >= this.#window) {
          // Backpressure: this write's callback waits until the oldest block has been pushed.
          this.#waiter = () => this.#consume(chunk, offset, callback);
          return;
        }
        this.#dispatch(false);
      }
      const block = (this.#block ??= this.#newBlock());
      const n = Math.min(chunk.length - offset, this.#blockSize - this.#fill);
      chunk.copy(block, DICT_SIZE + this.#fill, offset, offset + n);
      this.#fill += n;
      offset += n;
    }
    callback();
  }

  #dispatch(last: boolean): void {
    const block = this.#block ?? Buffer.allocUnsafeSlow(DICT_SIZE);
    const job: BlockJob = {
      seq: this.#nextSeq++,
      buffer: block.buffer as ArrayBuffer,
      dictLength: this.#dictLength,
      dataOffset: DICT_SIZE,
      dataLength: this.#fill,
      last,
      ...(this.#failBlock !== undefined && this.#failBlock === this.#nextSeq - 1 ? { fail: true } : {}),
    };
    if (!last) {
      // The next block's dictionary is this one's last 32 KiB (it is full, and blockSize >=
      // DICT_SIZE): copy it before the buffer is transferred away.
      const next = this.#newBlock();
      block.copy(next, 0, this.#fill, DICT_SIZE + this.#fill);
      this.#block = next;
      this.#dictLength = DICT_SIZE;
    } else {
      this.#block = null;
    }
    this.#fill = 0;
    // Blocks are all the same size but the last, so plain rotation spreads the load evenly.
    this.#post(job.seq % this.#threads, job);
  }

  #newBlock(): Buffer {
    const spare = this.#spare.pop();
    return spare !== undefined ? Buffer.from(spare) : Buffer.allocUnsafeSlow(DICT_SIZE + this.#blockSize);
  }

  #post(index: number, job: BlockJob): void {
    const worker = this.#workers[index] ?? this.#spawn(index);
    // An idle worker does not keep the process alive (a stream dropped without end() or destroy()
    // must not hang exit); one with work does, or the process could exit under a pending block.
    if (this.#outstanding[index]!++ === 0) worker.ref();
    // Transfer, not copy: the main thread never touches a dispatched block again.
    worker.postMessage(job, [job.buffer]);
  }

  #spawn(index: number): Worker {
    const config: WorkerConfig = { level: this.#level };
    const worker = new Worker(WORKER_URL, { workerData: config });
    liveWorkers++;
    this.#workers[index] = worker;
    this.#outstanding[index] = 0;
    worker.on('message', (result: BlockResult) => {
      if (--this.#outstanding[index]! === 0) worker.unref();
      if (this.destroyed) return;
      // The last block's buffer may be short; the window bounds how many spares there can be.
      if (result.input.byteLength === DICT_SIZE + this.#blockSize) this.#spare.push(result.input);
      this.#done.set(result.seq, result.output);
      this.#pushReady();
    });
    worker.on('error', (error) => {
      this.destroy(new ParallelGzipError(`parallel gzip: worker failed: ${error.message}`, { cause: error }));
    });
    worker.on('exit', (code) => {
      liveWorkers--;
      if (!this.#closing && !this.destroyed) this.destroy(new ParallelGzipError(`parallel gzip: worker exited unexpectedly (code ${code})`));
    });
    return worker;
  }

  /** Pushes every result that is next in order, then lets a waiting write or flush go on. */
  #pushReady(): void {
    let output = this.#done.get(this.#nextOut);
    if (output === undefined) return;
    while (output !== undefined) {
      this.#done.delete(this.#nextOut);
      if (this.#nextOut === 0) this.push(header(this.#level));
      this.#nextOut++;
      this.push(Buffer.from(output));
      output = this.#done.get(this.#nextOut);
    }
    const waiter = this.#waiter;
    this.#waiter = null;
    waiter?.();
  }

  /** Never rejects: a worker that fails to stop has nothing left to tell us. */
  #terminate(): Promise<unknown> {
    this.#closing = true;
    return Promise.allSettled(this.#workers.map((worker) => worker.terminate()));
  }
}

/** RFC 1952 member header: no name, no mtime (as node's zlib), XFL and OS as zlib writes them. */
function header(level: number): Buffer {
  const xfl = level === 9 ? 2 : level === 1 ? 4 : 0;
  return Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3]);
}

/** CRC32 of the input and its length mod 2^32, both little-endian. */
function trailer(crc: number, length: number): Buffer {
  const buffer = Buffer.allocUnsafe(8);
  buffer.writeUInt32LE(crc >>> 0, 0);
  buffer.writeUInt32LE(length % 2 ** 32, 4);
  return buffer;
}
