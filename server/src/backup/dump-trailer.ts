import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { checkDumpEnding, DUMP_ENDS_KEEP_BYTES, type DumpEndingCheck } from '@db-backup-service/contract';
import type { DumpContentsCounter } from '@db-backup-service/restore';
import { BackupError } from './backup-error.js';

/**
 * A pass-through stage for pg_dump's UNCOMPRESSED output that remembers only its first and last
 * few KB, so the completion trailer can be checked without buffering the dump. It also feeds the
 * contents counter, when given one: the one stage that sees the uncompressed bytes already.
 */
export class DumpTrailerObserver extends Transform {
  readonly #keepBytes: number;
  #head: Buffer = Buffer.alloc(0);
  /** The last `#tailLength` bytes seen, at its start: one buffer for the whole dump. */
  readonly #tail: Buffer;
  #tailLength = 0;
  #bytes = 0;
  readonly #counter: DumpContentsCounter | null;

  constructor(opts: { keepBytes?: number; counter?: DumpContentsCounter } = {}) {
    super();
    this.#keepBytes = opts.keepBytes ?? DUMP_ENDS_KEEP_BYTES;
    this.#tail = Buffer.alloc(this.#keepBytes);
    this.#counter = opts.counter ?? null;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#bytes += chunk.length;
    this.#counter?.push(chunk);
    if (this.#head.length < this.#keepBytes) {
      this.#head = Buffer.concat([this.#head, chunk.subarray(0, this.#keepBytes - this.#head.length)]);
    }
    // Copied into one fixed buffer: a view would pin the whole (up to 64 KB) chunk, and a new
    // buffer per chunk is ~4 KB of garbage per pg_dump write (tens of MB per GB of dump).
    const keep = this.#keepBytes;
    if (chunk.length >= keep) {
      chunk.copy(this.#tail, 0, chunk.length - keep);
      this.#tailLength = keep;
    } else {
      const old = Math.min(this.#tailLength, keep - chunk.length);
      this.#tail.copyWithin(0, this.#tailLength - old, this.#tailLength);
      chunk.copy(this.#tail, old);
      this.#tailLength = old + chunk.length;
    }
    callback(null, chunk);
  }

  /** Bytes seen so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** The last bytes seen (latin1: the trailer is ASCII and a cut multi-byte character must not throw). */
  get tail(): string {
    return this.#tail.toString('latin1', 0, this.#tailLength);
  }

  checkDumpEnding(): DumpEndingCheck {
    if (this.#bytes === 0) return { ok: false, reason: 'pg_dump output is incomplete: no completion trailer (the output was empty)' };
    return checkDumpEnding(this.#head.toString('latin1'), this.tail);
  }

  /** Throws BackupError DUMP_INCOMPLETE unless the stream seen so far is a complete plain dump. */
  assertCompleteDump(): void {
    const result = this.checkDumpEnding();
    if (!result.ok) throw new BackupError('DUMP_INCOMPLETE', result.reason);
  }
}
