import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { checkDumpEnding, DUMP_ENDS_KEEP_BYTES } from '@db-backup-service/sdk';
import { CliError, ExitCode } from './exit-codes.js';

/** What the dump must match; null where nothing is known (a --file without sidecar). */
export interface VerifyExpectations {
  readonly sha256: string | null;
  readonly sizeBytes: number | null;
}

export interface VerifiedDump {
  readonly sha256: string;
  readonly sizeBytes: number;
  readonly uncompressedBytes: number;
}


/**
 * Reads the whole dump once: SHA-256 of the compressed bytes, and a full gunzip (zlib checks the
 * CRC-32 and length at the end of each member). Both run to the end even when one fails, so the
 * message names every problem. Nothing is dropped before this has passed (invariant 8).
 */
export async function verifyDump(
  fh: FileHandle,
  expected: VerifyExpectations,
  opts: { signal?: AbortSignal; onProgress?: (bytesRead: number) => void; label: string },
): Promise<VerifiedDump> {
  const { size } = await fh.stat();
  const hash = createHash('sha256');
  const gunzip = createGunzip();
  let gzipError: Error | null = null;
  let uncompressed = 0;
  // The dump's first and last few KB, for the same trailer check the service makes (L5).
  let head = Buffer.alloc(0);
  let tail = Buffer.alloc(0);
  let read = 0;

  gunzip.on('error', (err) => {
    gzipError ??= err;
  });
  gunzip.on('data', (chunk: Buffer) => {
    uncompressed += chunk.length;
    if (head.length < DUMP_ENDS_KEEP_BYTES) head = Buffer.concat([head, chunk.subarray(0, DUMP_ENDS_KEEP_BYTES - head.length)]);
    tail = Buffer.concat([tail, chunk]);
    if (tail.length > DUMP_ENDS_KEEP_BYTES) tail = tail.subarray(tail.length - DUMP_ENDS_KEEP_BYTES);
  });
  const gunzipSettled = new Promise<void>((resolve) => {
    gunzip.once('end', resolve);
    gunzip.once('error', () => resolve());
    gunzip.once('close', resolve);
  });

  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      read += chunk.length;
      opts.onProgress?.(read);
      if (gzipError !== null) {
        callback();
        return;
      }
      if (gunzip.write(chunk)) {
        callback();
        return;
      }
      // Wait for gunzip to drain, or for it to fail (then keep hashing without it).
      const onDrain = (): void => {
        gunzip.off('error', onDrain);
        gunzip.off('drain', onDrain);
        callback();
      };
      gunzip.once('drain', onDrain);
      gunzip.once('error', onDrain);
    },
    final(callback) {
      if (gzipError === null) gunzip.end();
      gunzipSettled.then(() => callback(), callback);
    },
  });

  try {
    await pipeline(fh.createReadStream({ start: 0, autoClose: false }), sink, opts.signal ? { signal: opts.signal } : {});
  } catch (err) {
    if (opts.signal?.aborted) throw opts.signal.reason;
    throw new CliError(ExitCode.VERIFICATION_FAILED, `cannot read ${opts.label}: ${(err as Error).message}`, { cause: err, databaseState: 'untouched' });
  } finally {
    gunzip.destroy();
  }

  const sha256 = hash.digest('hex');
  const problems: string[] = [];
  if (expected.sizeBytes !== null && size !== expected.sizeBytes) problems.push(`size is ${size} bytes, the sidecar says ${expected.sizeBytes}`);
  if (expected.sha256 !== null && sha256 !== expected.sha256) problems.push(`SHA-256 is ${sha256}, the sidecar says ${expected.sha256}`);
  const gzError = gzipError as Error | null;
  if (gzError !== null) {
    problems.push(`not a valid gzip file (${gzError.message})`);
  } else {
    // A gzip that is intact but holds a dump that stops early (pg_dump killed, disk full upstream).
    // latin1: the trailer is ASCII, and a multi-byte character cut at the 4 KB edge must not matter.
    const ending = checkDumpEnding(head.toString('latin1'), tail.toString('latin1'));
    if (!ending.ok) problems.push(ending.reason);
  }
  if (problems.length > 0) {
    throw new CliError(ExitCode.VERIFICATION_FAILED, `verification of ${opts.label} failed: ${problems.join('; ')}. Nothing was changed in the database.`, {
      databaseState: 'untouched',
    });
  }
  return { sha256, sizeBytes: read, uncompressedBytes: uncompressed };
}
