import { createHash } from 'node:crypto';
import type { Hash } from 'node:crypto';
import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';

/** A pass-through stage that counts bytes and, optionally, hashes them with SHA-256. */
export class StreamMeter extends Transform {
  readonly #hash: Hash | null;
  #bytes = 0;
  #digest: string | null = null;

  constructor(opts: { sha256?: boolean } = {}) {
    super();
    this.#hash = opts.sha256 ? createHash('sha256') : null;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#bytes += chunk.length;
    this.#hash?.update(chunk);
    callback(null, chunk);
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Hex SHA-256 of everything seen; call once the stream has ended (finalises the hash). */
  sha256(): string {
    if (this.#hash === null) throw new Error('this StreamMeter does not hash');
    this.#digest ??= this.#hash.digest('hex');
    return this.#digest;
  }
}

/**
 * A pass-through stage whose end is held back until `beforeEnd` resolves; if it rejects, the
 * stream errors instead of ending. The backup pipeline uses it so that the compressed stream only
 * ends (and storage only commits the object) once pg_dump has exited 0 and the trailer is there.
 */
export function createEndGate(beforeEnd: () => Promise<void>): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      callback(null, chunk);
    },
    flush(callback) {
      beforeEnd().then(
        () => callback(),
        (error: unknown) => callback(error instanceof Error ? error : new Error(String(error))),
      );
    },
  });
}
