import { createGzip } from 'node:zlib';
import type { Transform } from 'node:stream';

/**
 * The compression stage of the backup pipeline, behind a factory because single-stream gzip is
 * the pipeline's bottleneck and a parallel gzip (same .gz output format) is meant to replace it.
 */
export function createCompressor(level: number): Transform {
  return createGzip({ level });
}
