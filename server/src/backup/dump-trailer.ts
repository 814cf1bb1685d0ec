import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { BackupError } from './backup-error.js';

/** The comment line pg_dump writes only after everything else of a plain dump was written. */
export const DUMP_COMPLETE_LINE = '-- PostgreSQL database dump complete';

// The trailer is ~150 bytes (with pg_dump 15.14+/16.10+/17.6+'s `\unrestrict <64 chars>` line);
// a few KB leave room for trailing blank lines while keeping memory fixed (invariant 5).
const DEFAULT_KEEP_BYTES = 4096;

const RESTRICT_LINE = /^\\restrict ([A-Za-z0-9]+)$/m;
const UNRESTRICT_LINE = /^\\unrestrict ([A-Za-z0-9]+)$/;

export type DumpEndingCheck = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/**
 * Checks the ends of a plain-format dump (invariant 2). `tail` must end with the completion
 * comment, followed only by blank lines, `--` lines and at most one `\unrestrict <key>` line.
 * When `head` opened the dump with `\restrict <key>`, the same key must close it: a dump cut
 * between the completion comment and `\unrestrict` would otherwise pass, and psql would leave
 * the restoring session restricted.
 */
export function checkDumpEnding(head: string, tail: string): DumpEndingCheck {
  const lines = tail.split('\n');
  let i = lines.length - 1;
  let unrestrictKey: string | null = null;
  for (; i >= 0; i--) {
    const line = lines[i] ?? '';
    if (line === '' || line === '--') continue;
    const match = UNRESTRICT_LINE.exec(line);
    if (match && unrestrictKey === null) {
      unrestrictKey = match[1] ?? null;
      continue;
    }
    break;
  }
  if (i < 0 || lines[i] !== DUMP_COMPLETE_LINE) {
    return { ok: false, reason: 'pg_dump output is incomplete: no completion trailer' };
  }
  const restrictKey = RESTRICT_LINE.exec(head)?.[1] ?? null;
  if (restrictKey !== null && restrictKey !== unrestrictKey) {
    return {
      ok: false,
      reason: 'pg_dump output is incomplete: it opened with \\restrict but the matching \\unrestrict line is missing',
    };
  }
  return { ok: true };
}

/**
 * A pass-through stage for pg_dump's UNCOMPRESSED output that remembers only its first and last
 * few KB, so the completion trailer can be checked without buffering the dump.
 */
export class DumpTrailerObserver extends Transform {
  readonly #keepBytes: number;
  #head: Buffer = Buffer.alloc(0);
  /** The last `#tailLength` bytes seen, at its start: one buffer for the whole dump. */
  readonly #tail: Buffer;
  #tailLength = 0;
  #bytes = 0;

  constructor(opts: { keepBytes?: number } = {}) {
    super();
    this.#keepBytes = opts.keepBytes ?? DEFAULT_KEEP_BYTES;
    this.#tail = Buffer.alloc(this.#keepBytes);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#bytes += chunk.length;
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
