import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { constants, createGzip, createZstdCompress } from 'node:zlib';
import type { ZstdCompress } from 'node:zlib';
import type { CompressionFormat } from '@db-backup-service/contract';
import { createParallelGzip } from './parallel-gzip.js';

/** Pool threads a backup uses besides compression: CompressedStreamCheck's decompression, and file reads/writes. */
export const RESERVED_POOL_THREADS = 2;

/**
 * zstd's output chunks. It emits what each write completes (~30 KiB per 64 KiB of dump at level 3),
 * so this only bounds a chunk: on 115 MB of bench dump 256 KiB gave 994 chunks, 64 KiB 1345,
 * 16 KiB 2751 (more trips back from the pool, each a chunk for the check, hash and storage).
 */
const ZSTD_CHUNK_BYTES = 256 * 1024;

/**
 * The compression stage of the backup pipeline.
 *
 * zstd is one single-threaded stream on libuv's pool: zstd's own workers (ZSTD_c_nbWorkers) truncate
 * output in Node (nodejs/node#59899), and at level 3 one thread needs under half of gzip 5's CPU for
 * the same size (115 MB of bench dump: 0.85 s for 30.71 MB, gzip 5 1.96 s for 30.66 MB). The frame carries the
 * XXH64 content checksum, which CompressedStreamCheck and every restore require.
 *
 * Single-stream gzip is the pipeline's bottleneck
 * (3-4x slower than pg_dump), so with more than one thread the input is compressed in blocks on
 * libuv's thread pool (same .gz format, one member). With one thread node's own gzip is used: it
 * already runs off the event loop (on the same pool), and blocks would only add overhead.
 *
 * `poolSize` is libuv's pool (config.runtime.threadPoolSize: UV_THREADPOOL_SIZE, which bin.ts
 * sizes from the usable CPUs). The backup needs two of its threads besides compression, for the
 * decompression check and file I/O: more blocks at once would only queue there, ahead of those.
 */
export function createCompressor(opts: { format: CompressionFormat; level: number; threads: number; poolSize: number }): Transform {
  if (opts.format === 'zstd') return new OneFrameZstdCompress(opts.level);
  const threads = Math.min(opts.threads, Math.max(1, opts.poolSize - RESERVED_POOL_THREADS));
  return threads > 1 ? createParallelGzip({ level: opts.level, threads }) : createGzip({ level: opts.level });
}

/**
 * Input handed to the zstd encoder per call: pg_dump's pipe delivers 64 KiB chunks, and each call
 * is a trip to libuv's pool and back. Batching them costs one copy and gave, on a 200 MB dump
 * (2 cores): 3.23-3.28 s -> 2.85-2.90 s per backup, peak RSS +6 MB. (Parallel gzip already works
 * in 512 KiB blocks; the same batching in front of it only added the copy: 3.9 -> 4.0 s.)
 */
const ZSTD_BATCH_BYTES = 1024 * 1024;

/**
 * Node's zstd compressor as one frame. Node ends the frame on the last chunk when end() came while
 * that chunk was still queued, and then once more on flush: the second end writes a second, empty
 * frame (seen under storage backpressure, which CompressedStreamCheck then rightly refused). Here
 * each batch is compressed before the next is taken, so the inner stream's end() comes with
 * nothing queued and only its flush ends the frame.
 */
class OneFrameZstdCompress extends Transform {
  readonly #encoder: ZstdCompress;
  #batch: Buffer[] = [];
  #batchBytes = 0;

  constructor(level: number) {
    super();
    this.#encoder = createZstdCompress({
      chunkSize: ZSTD_CHUNK_BYTES,
      params: { [constants.ZSTD_c_compressionLevel]: level, [constants.ZSTD_c_checksumFlag]: 1 },
    });
    this.#encoder.on('data', (chunk: Buffer) => this.push(chunk));
    this.#encoder.once('error', (error: Error) => this.destroy(error));
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#batch.push(chunk);
    this.#batchBytes += chunk.length;
    if (this.#batchBytes < ZSTD_BATCH_BYTES) return callback();
    this.#compressBatch(callback);
  }

  override _flush(callback: TransformCallback): void {
    const end = () => {
      this.#encoder.once('end', () => callback());
      this.#encoder.end();
    };
    if (this.#batchBytes === 0) return end();
    this.#compressBatch(end);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#batch = [];
    this.#encoder.destroy();
    callback(error);
  }

  /** Compresses the batch; `done` once the encoder has (errors go to 'error'). */
  #compressBatch(done: () => void): void {
    const input = this.#batch.length === 1 ? this.#batch[0]! : Buffer.concat(this.#batch, this.#batchBytes);
    this.#batch = [];
    this.#batchBytes = 0;
    this.#encoder.write(input, (error) => {
      if (error == null) done();
    });
  }
}
