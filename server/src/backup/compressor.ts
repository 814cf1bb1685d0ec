import { createGzip } from 'node:zlib';
import type { Transform } from 'node:stream';
import { createParallelGzip } from './parallel-gzip.js';

/** Pool threads a backup uses besides compression: GzipCheck's inflate, and file reads/writes. */
export const RESERVED_POOL_THREADS = 2;

/**
 * The compression stage of the backup pipeline. Single-stream gzip is the pipeline's bottleneck
 * (3-4x slower than pg_dump), so with more than one thread the input is compressed in blocks on
 * libuv's thread pool (same .gz format, one member). With one thread node's own gzip is used: it
 * already runs off the event loop (on the same pool), and blocks would only add overhead.
 *
 * `poolSize` is libuv's pool (config.runtime.threadPoolSize: UV_THREADPOOL_SIZE, which bin.ts
 * sizes from the usable CPUs). The backup needs two of its threads besides compression, for the
 * gunzip check and file I/O: more blocks at once would only queue there, ahead of those.
 */
export function createCompressor(opts: { level: number; threads: number; poolSize: number }): Transform {
  const threads = Math.min(opts.threads, Math.max(1, opts.poolSize - RESERVED_POOL_THREADS));
  return threads > 1 ? createParallelGzip({ level: opts.level, threads }) : createGzip({ level: opts.level });
}
