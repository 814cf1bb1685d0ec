import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import type { CompressionFormat } from '@db-backup-service/contract';
import { createDecompressor } from '@db-backup-service/restore';
import { BackupError } from './backup-error.js';
import { describeError } from './describe-error.js';

/**
 * A pass-through stage for the compressed stream that decompresses it on the side, as it flows (on
 * libuv's pool, next to the compression), and before passing on the end checks that it was one
 * valid stream of `format` to its end that decompresses to exactly `expectedBytes()` bytes: for
 * gzip zlib checks the CRC-32 and length in the trailer; for zstd restore's decompressor checks
 * the frame's XXH64 content checksum and that the stream is exactly one frame (ZstdFrameCheck).
 * Fails with VERIFY_FAILED otherwise, so nothing is committed.
 *
 * Together with the read-back (verify-backup.ts: the stored object's SHA-256 and size equal those
 * of this stream) this proves the stored object decompresses to the whole dump, as decompressing
 * the stored object again would, without a second pass over the backup after the upload: the
 * read-back then only hashes (measured: verify went from ~15% of the backup's time to ~3%).
 */
export class CompressedStreamCheck extends Transform {
  readonly #expectedBytes: () => number;
  readonly #onFailure: (error: BackupError) => void;
  readonly #decompressor: Transform;
  #decompressedBytes = 0;

  /** `onFailure` hears of this stage's own failures first (not of errors it is destroyed with). */
  constructor(format: CompressionFormat, expectedBytes: () => number, onFailure: (error: BackupError) => void = () => undefined) {
    super();
    this.#expectedBytes = expectedBytes;
    this.#onFailure = onFailure;
    this.#decompressor = createDecompressor(format);
    this.#decompressor.on('data', (chunk: Buffer) => {
      this.#decompressedBytes += chunk.length;
    });
    this.#decompressor.once('error', (error: Error) => {
      this.destroy(this.#failure(`the compressed stream is not valid ${format}: ${describeError(error)}`, error));
    });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.push(chunk);
    // The decompressor's own backpressure holds the compressor back if checking falls behind.
    if (this.#decompressor.write(chunk)) callback();
    else this.#decompressor.once('drain', () => callback());
  }

  override _flush(callback: TransformCallback): void {
    this.#decompressor.end(() => {
      // end()'s callback runs once everything was written; the output may still be draining.
      const check = () => {
        if (this.destroyed) return; // by the decompressor's error, which was reported
        const expected = this.#expectedBytes();
        if (this.#decompressedBytes !== expected) {
          return callback(this.#failure(`the compressed stream decompresses to ${this.#decompressedBytes} bytes, but ${expected} were dumped`));
        }
        callback();
      };
      if (this.#decompressor.readableEnded) check();
      else this.#decompressor.once('end', check);
    });
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#decompressor.destroy();
    callback(error);
  }

  #failure(message: string, cause?: unknown): BackupError {
    const error = new BackupError('VERIFY_FAILED', message, cause === undefined ? undefined : { cause });
    this.#onFailure(error);
    return error;
  }
}
