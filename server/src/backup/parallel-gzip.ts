import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { constants, crc32, createDeflateRaw } from 'node:zlib';
import type { DeflateRaw } from 'node:zlib';

export interface ParallelGzipOptions {
  /** zlib compression level, 1 (fastest) to 9 (smallest). */
  readonly level: number;
  /**
   * Blocks compressed at the same time, each on a thread of libuv's pool (so at most
   * UV_THREADPOOL_SIZE at once); 1 still works (same output format).
   */
  readonly threads: number;
  /** Bytes of input per independently compressed block; at least 32 KiB. Default 512 KiB. */
  readonly blockSize?: number;
  /** Test hook: compressing this block (0-based) fails instead. */
  readonly __test__failBlock?: number;
}

/**
 * 512 KiB. Larger blocks spend less per byte on the per-block zlib handle and dictionary priming
 * (measured, 200 MB dump, 2 threads: 4.53 s at 512 KiB, 4.37 s at 1 MiB), but with 1 MiB blocks
 * (and V8 collecting less often) the fault suite's load left 30 MB more native memory resident
 * after a full GC (RSS +21%, over its 20% leak bound), so the smaller blocks stay. pigz uses 128 KiB.
 */
export const DEFAULT_BLOCK_SIZE = 512 * 1024;
/** Deflate's window: all the history a match can reach, hence all a block needs from before it. */
const DICT_SIZE = 32 * 1024;
/**
 * Blocks dispatched and not yet pushed, per thread: one compressing, one done or waiting. More
 * only costs memory (measured: no faster at 4); a block waits for its predecessor at most one
 * block's time: ~2 MB in flight at 2 threads.
 */
const BLOCKS_PER_THREAD = 2;
/**
 * zlib's output buffer size. Each time it fills, the pool thread stops and waits for this thread
 * to hand it a new one: with 64 KiB (three trips per 512 KiB block of dump text, which
 * compresses to ~140 KiB) the 2 threads were idle for 10-15% of the time (measured: 3.1-3.3 s vs pigz's
 * 2.7 s for 200 MB; with 256 KiB 2.7-2.8 s). Chunks are pushed as is, never concatenated.
 */
const OUTPUT_CHUNK = 256 * 1024;

/** Compressing a block failed (a zlib error, or the test hook); `cause` holds what was reported. */
export class ParallelGzipError extends Error {
  readonly code = 'PARALLEL_GZIP_FAILED';

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ParallelGzipError';
  }
}

let liveCompressions = 0;

/** zlib handles of any parallel gzip stream not yet closed (tests check for leaks). */
export function liveParallelGzipCompressions(): number {
  return liveCompressions;
}

/**
 * A pigz-style gzip compressor: input is cut into blocks compressed as raw deflate, `threads` at a
 * time, on libuv's thread pool (node's async zlib), each block primed with the previous block's
 * last 32 KiB, and the results are written in order as ONE gzip member (RFC 1952) that gunzip,
 * zcat and node's zlib read like any other.
 *
 * Why the pool and not worker threads (the first version): a worker is a whole V8 isolate and
 * node environment, ~15 MB of RSS each (measured; 30 of a 2-thread backup's ~75 MB above idle),
 * and its results reached this thread as new buffers anyway. A zlib handle costs ~300 KB, for
 * exactly as long as its block compresses, and CPU time per byte is the same (bench/README.md).
 *
 * At most `threads * 2` blocks are in flight; a write's callback waits for a slot, so memory stays
 * flat whatever the input size.
 */
export function createParallelGzip(options: ParallelGzipOptions): Transform {
  return new ParallelGzip(options);
}

interface PendingBlock {
  readonly seq: number;
  readonly block: Buffer;
  readonly dictLength: number;
  readonly dataLength: number;
  readonly last: boolean;
}

class ParallelGzip extends Transform {
  readonly #level: number;
  readonly #threads: number;
  readonly #blockSize: number;
  readonly #window: number;
  readonly #failBlock: number | undefined;
  /** Block buffers whose compression finished, reused rather than allocating one per block. */
  readonly #spare: Buffer[] = [];
  /** Blocks dispatched but waiting for a free thread, oldest first. */
  readonly #queued: PendingBlock[] = [];
  /** Compressions started whose zlib handle is not closed yet. */
  readonly #running = new Set<DeflateRaw>();
  /** Output of blocks that finished ahead of an earlier block, by sequence number. */
  readonly #done = new Map<number, Buffer[]>();
  /** The block being filled: DICT_SIZE bytes of room for the dictionary, then the data. */
  #block: Buffer | null = null;
  #fill = 0;
  #dictLength = 0;
  #nextSeq = 0;
  #nextOut = 0;
  #crc = 0;
  #length = 0;
  /** Set when a write or the flush is waiting for the window to make progress; called once. */
  #waiter: (() => void) | null = null;

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
      callback();
    };
    dispatchLast();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#waiter = null;
    this.#queued.length = 0;
    this.#done.clear();
    this.#spare.length = 0;
    this.#block = null;
    // A block being compressed on a pool thread cannot be interrupted: zlib closes its handle
    // (and frees its memory) when the thread returns. Report the stream closed only then, so
    // that a closed stream has nothing left running (and nothing of it reaches us afterwards).
    const running = [...this.#running];
    let left = running.length;
    if (left === 0) return callback(error);
    for (const deflate of running) {
      deflate.once('close', () => {
        if (--left === 0) callback(error);
      });
      deflate.destroy();
    }
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
    const block = this.#block ?? this.#newBlock();
    const pending: PendingBlock = { seq: this.#nextSeq++, block, dictLength: this.#dictLength, dataLength: this.#fill, last };
    if (!last) {
      // The next block's dictionary is this one's last 32 KiB (it is full, and blockSize >=
      // DICT_SIZE): copied now, since this buffer goes back to the spares once compressed.
      const next = this.#newBlock();
      block.copy(next, 0, this.#fill, DICT_SIZE + this.#fill);
      this.#block = next;
      this.#dictLength = DICT_SIZE;
    } else {
      this.#block = null;
    }
    this.#fill = 0;
    this.#queued.push(pending);
    this.#startQueued();
  }

  /** Starts queued blocks, oldest first, while fewer than `threads` compress. */
  #startQueued(): void {
    while (this.#running.size < this.#threads && this.#queued.length > 0) this.#compress(this.#queued.shift()!);
  }

  #compress({ seq, block, dictLength, dataLength, last }: PendingBlock): void {
    const deflate = createDeflateRaw({
      level: this.#level,
      chunkSize: Math.min(OUTPUT_CHUNK, this.#blockSize),
      // The previous block's last 32 KiB: matches may reach back across the block boundary as they
      // would in one stream, which keeps the ratio within a fraction of a percent of plain gzip.
      ...(dictLength > 0 ? { dictionary: block.subarray(DICT_SIZE - dictLength, DICT_SIZE) } : {}),
      // A sync flush ends the block on a byte boundary with BFINAL unset (an empty stored block,
      // 00 00 ff ff), so the blocks concatenate into one deflate stream; only the last one
      // finishes it. pigz does the same.
      finishFlush: last ? constants.Z_FINISH : constants.Z_SYNC_FLUSH,
    });
    liveCompressions++;
    this.#running.add(deflate);
    const output: Buffer[] = [];
    deflate.on('data', (chunk: Buffer) => output.push(chunk));
    deflate.once('close', () => {
      liveCompressions--;
      this.#running.delete(deflate);
      // The next block starts once this handle is gone, so at most `threads` exist at a time.
      if (!this.destroyed) this.#startQueued();
    });
    deflate.once('error', (error: Error) => {
      if (!this.destroyed) this.destroy(new ParallelGzipError(`parallel gzip: compressing block ${seq} failed: ${error.message}`, { cause: error }));
    });
    deflate.once('end', () => {
      if (this.destroyed) return;
      // The last block's buffer may be short; the window bounds how many spares there can be.
      if (block.length === DICT_SIZE + this.#blockSize) this.#spare.push(block);
      this.#done.set(seq, output);
      this.#pushReady();
    });
    if (seq === this.#failBlock) {
      deflate.destroy(new Error(`injected failure compressing block ${seq}`));
      return;
    }
    // zlib reads the block on a pool thread: it stays untouched (not a spare) until 'end'.
    deflate.end(block.subarray(DICT_SIZE, DICT_SIZE + dataLength));
  }

  #newBlock(): Buffer {
    return this.#spare.pop() ?? Buffer.allocUnsafeSlow(DICT_SIZE + this.#blockSize);
  }

  /** Pushes every result that is next in order, then lets a waiting write or flush go on. */
  #pushReady(): void {
    let output = this.#done.get(this.#nextOut);
    if (output === undefined) return;
    while (output !== undefined) {
      this.#done.delete(this.#nextOut);
      if (this.#nextOut === 0) this.push(header(this.#level));
      this.#nextOut++;
      for (const chunk of output) this.push(chunk);
      output = this.#done.get(this.#nextOut);
    }
    const waiter = this.#waiter;
    this.#waiter = null;
    waiter?.();
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
