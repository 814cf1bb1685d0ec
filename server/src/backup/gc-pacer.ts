import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** A full V8 garbage collection, or null where the runtime does not let us ask for one. */
let fullGc: (() => void) | null | undefined;

function collectGarbage(): boolean {
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
  return fullGc !== null;
}

/** How often (stream bytes) the pacer looks at the process's buffer memory: a cheap, rare check. */
const CHECK_EVERY_BYTES = 1024 * 1024;

/**
 * A pass-through stage that keeps the memory held by dead buffers below `limitBytes`, by having
 * V8 collect garbage once buffer memory has grown that much since the last collection.
 *
 * Why: each chunk of a backup is a new short-lived buffer outside the JS heap (pg_dump's pipe
 * reads, zlib's output, file reads, S3 parts), while the JS heap itself hardly grows. Many of them
 * outlive a young-generation collection (they are in flight on the thread pool when it runs), and
 * V8 runs a full one only once ~64 MB of such memory has piled up. So a backup carried up to
 * ~60 MB of dead buffers, and a small dump that never reached that peaked lower than a large one
 * (measured: 186 MB at a 50 MB dump, 224 MB at 400 MB; with this stage 139 and 143 MB).
 * A collection costs ~10-50 ms of this thread; it runs only when the limit is reached.
 */
export class GcPacer extends Transform {
  readonly #limitBytes: number;
  #sinceCheck = 0;
  #afterLastGc = process.memoryUsage().arrayBuffers;

  constructor(limitBytes: number) {
    super();
    this.#limitBytes = limitBytes;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#sinceCheck += chunk.length;
    if (this.#sinceCheck >= CHECK_EVERY_BYTES) {
      this.#sinceCheck = 0;
      const buffers = process.memoryUsage().arrayBuffers;
      // After a collection the figure can only have dropped; a lower one means V8 collected itself.
      if (buffers < this.#afterLastGc) this.#afterLastGc = buffers;
      else if (buffers - this.#afterLastGc > this.#limitBytes && collectGarbage()) this.#afterLastGc = process.memoryUsage().arrayBuffers;
    }
    callback(null, chunk);
  }
}
