import { createGzip } from 'node:zlib';
import type { Transform } from 'node:stream';
import { createParallelGzip } from './parallel-gzip.js';

/**
 * The compression stage of the backup pipeline. Single-stream gzip is the pipeline's bottleneck
 * (3-4x slower than pg_dump), so with more than one thread the input is compressed in blocks on a
 * worker pool (same .gz format, one member). With one thread node's own gzip is used: it already
 * runs off the event loop (libuv pool), and a single worker would only add block overhead.
 */
export function createCompressor(opts: { level: number; threads: number }): Transform {
  return opts.threads > 1 ? createParallelGzip({ level: opts.level, threads: opts.threads }) : createGzip({ level: opts.level });
}
