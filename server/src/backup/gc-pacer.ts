import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** A full V8 garbage collection, or null where the runtime does not let us ask for one. */
let fullGc: (() => void) | null | undefined;

function collectGarbage(): void {
  if (fullGc === undefined) {
    try {
      // Affects only contexts created afterwards: this throwaway one hands us `gc`, the service's
      // own global never gets it.
      setFlagsFromString('--expose-gc');
      const gc: unknown = runInNewContext('gc');
      fullGc = typeof gc === 'function' ? () => (gc as () => void)() : null;
    } catch {
      fullGc = null;
    }
  }
  fullGc?.();
}

/**
 * A pass-through stage that has V8 collect garbage after every `intervalBytes` of the stream.
 *
 * Why: each chunk of a backup is a new short-lived buffer outside the JS heap (pg_dump's pipe
 * reads, zlib's output, S3 parts), while the JS heap itself hardly grows, so V8 collects them only
 * once ~64 MB of such memory has piled up since its last full GC (a minor GC does not free them;
 * both measured, see bench/README.md). A backup then carries up to ~60 MB of dead buffers, and a
 * small dump that never reaches the threshold peaks lower than a large one. Collecting every
 * 16 MB of dump bounds that at ~20 MB whatever the size, for ~10-30 ms per collection.
 */
export class GcPacer extends Transform {
  readonly #intervalBytes: number;
  #sinceLast = 0;

  constructor(intervalBytes: number) {
    super();
    this.#intervalBytes = intervalBytes;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#sinceLast += chunk.length;
    if (this.#sinceLast >= this.#intervalBytes) {
      this.#sinceLast = 0;
      collectGarbage();
    }
    callback(null, chunk);
  }
}
