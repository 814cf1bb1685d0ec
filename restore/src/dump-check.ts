import { checkDumpEnding, DUMP_ENDS_KEEP_BYTES, type CompressionFormat } from '@db-backup-service/contract';
import { AgeError } from './age.js';

/** What a stored dump must match; null where nothing is known (a --file without sidecar). */
export interface DumpExpectations {
  readonly sha256: string | null;
  readonly sizeBytes: number | null;
}

/** What the dump turned out to be, read to its end. */
export interface VerifiedDump {
  readonly sha256: string;
  readonly sizeBytes: number;
  readonly uncompressedBytes: number;
}

/** Keeps the first and last few KB of the uncompressed dump, for pg_dump's completion trailer. */
export class DumpEnds {
  #head = Buffer.alloc(0);
  #tail = Buffer.alloc(0);

  push(chunk: Buffer): void {
    if (this.#head.length < DUMP_ENDS_KEEP_BYTES) this.#head = Buffer.concat([this.#head, chunk.subarray(0, DUMP_ENDS_KEEP_BYTES - this.#head.length)]);
    this.#tail = Buffer.concat([this.#tail, chunk]);
    if (this.#tail.length > DUMP_ENDS_KEEP_BYTES) this.#tail = this.#tail.subarray(this.#tail.length - DUMP_ENDS_KEEP_BYTES);
  }

  /** latin1: the trailer is ASCII, and a multi-byte character cut at the edge must not matter. */
  check(): ReturnType<typeof checkDumpEnding> {
    return checkDumpEnding(this.#head.toString('latin1'), this.#tail.toString('latin1'));
  }
}

/**
 * Everything wrong with a dump read to its end, each in words for the message: size and SHA-256
 * against the sidecar (of the stored bytes: the ciphertext when encrypted), the decryption, the compressed stream's integrity (gzip, or zstd: one frame, its checksum),
 * and (when decompression reached the end) pg_dump's trailer: a stream that is intact but holds a
 * dump that stops early (pg_dump killed, disk full upstream). One list for the streaming restore
 * and db-restore's verify-first (--in-place), so both say the same.
 */
export function dumpProblems(read: {
  readonly sizeBytes: number;
  readonly sha256: string;
  readonly format: CompressionFormat;
  /**
   * Why decompressing failed (corrupt, truncated, a second zstd frame), or why the bytes are not of
   * `format` at all; for an encrypted dump also why decrypting failed (an AgeError, named in its own words).
   */
  readonly decompressError: Error | null;
  /** null: decompression did not reach the end (it was stopped), so there is no trailer to check. */
  readonly ends: DumpEnds | null;
  readonly expected: DumpExpectations;
}): string[] {
  const found: string[] = [];
  const { expected } = read;
  if (expected.sizeBytes !== null && read.sizeBytes !== expected.sizeBytes) found.push(`size is ${read.sizeBytes} bytes, the sidecar says ${expected.sizeBytes}`);
  if (expected.sha256 !== null && read.sha256 !== expected.sha256) found.push(`SHA-256 is ${read.sha256}, the sidecar says ${expected.sha256}`);
  if (read.decompressError instanceof AgeError) {
    // Damaged ciphertext (or the wrong key) says nothing about the compression behind it.
    found.push(read.decompressError.message);
  } else if (read.decompressError !== null) {
    found.push(`not a valid ${read.format} file (${read.decompressError.message})`);
  } else if (read.ends !== null) {
    const ending = read.ends.check();
    if (!ending.ok) found.push(ending.reason);
  }
  return found;
}
