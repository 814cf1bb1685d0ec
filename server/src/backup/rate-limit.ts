import { performance } from 'node:perf_hooks';
import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';

/** Tokens saved up while idle are capped at this much time's worth: the largest burst after a pause. */
const BURST_MS = 100;
/** Chunks are passed on in pieces of at most 100 ms worth, but never below this (no tiny writes at low rates). */
const MIN_PIECE_BYTES = 16 * 1024;

/**
 * A token-bucket pass-through stage (BACKUP_MAX_UPLOAD_RATE): what leaves it averages at most
 * `bytesPerSecond`. A chunk is passed on in pieces of 100 ms worth (a compressed block can be
 * 0.5 MB: seconds at a low rate), each as soon as the bucket is not in debt; its size is then taken
 * from the bucket, which may go into debt by one piece, and the next piece waits on a timer (no busy
 * wait) until the debt is paid. Bursts are thus at most one piece plus 100 ms of tokens saved up
 * while the stream was idle. Backpressure is the Transform's own: while a piece waits, nothing more
 * is taken from upstream. Pieces are views of the chunk, not copies.
 */
export class RateLimit extends Transform {
  readonly #perMs: number;
  readonly #capacity: number;
  readonly #pieceBytes: number;
  /** Starts empty: the first burst is one piece, not 100 ms worth on top. */
  #tokens = 0;
  #refilledAt = performance.now();
  #timer: NodeJS.Timeout | null = null;

  constructor(bytesPerSecond: number) {
    super();
    if (!(bytesPerSecond > 0) || !Number.isFinite(bytesPerSecond)) throw new RangeError(`RateLimit: bytesPerSecond must be a positive number (got ${bytesPerSecond})`);
    this.#perMs = bytesPerSecond / 1000;
    this.#capacity = this.#perMs * BURST_MS;
    this.#pieceBytes = Math.max(MIN_PIECE_BYTES, Math.floor(this.#capacity));
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#send(chunk, callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // A destroyed stage must not keep the process alive nor push after its end.
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    callback(error);
  }

  /** Passes `rest` on piece by piece as the bucket allows; `callback` once the last piece is out. */
  #send(rest: Buffer, callback: TransformCallback): void {
    for (;;) {
      this.#refill();
      if (this.#tokens < 0) {
        // A timer that fires early or late only shifts the debt: the refill measures the real time.
        this.#timer = setTimeout(() => {
          this.#timer = null;
          this.#send(rest, callback);
        }, Math.ceil(-this.#tokens / this.#perMs));
        return;
      }
      if (rest.length <= this.#pieceBytes) {
        this.#tokens -= rest.length;
        callback(null, rest);
        return;
      }
      this.#tokens -= this.#pieceBytes;
      this.push(rest.subarray(0, this.#pieceBytes));
      rest = rest.subarray(this.#pieceBytes);
    }
  }

  #refill(): void {
    const now = performance.now();
    this.#tokens = Math.min(this.#capacity, this.#tokens + (now - this.#refilledAt) * this.#perMs);
    this.#refilledAt = now;
  }
}
