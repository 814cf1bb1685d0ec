import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { DumpEnds, dumpProblems, type DumpExpectations, type VerifiedDump } from '@db-backup-service/restore';
import { CliError, ExitCode } from './exit-codes.js';

/**
 * Reads the whole dump once: SHA-256 of the compressed bytes, and a full gunzip (zlib checks the
 * CRC-32 and length at the end of each member). Both run to the end even when one fails, so the
 * message names every problem. Nothing is dropped before this has passed (invariant 8).
 */
export async function verifyDump(
  fh: FileHandle,
  expected: DumpExpectations,
  opts: { signal?: AbortSignal; onProgress?: (bytesRead: number) => void; label: string },
): Promise<VerifiedDump> {
  const { size } = await fh.stat();
  const hash = createHash('sha256');
  const gunzip = createGunzip();
  let gzipError: Error | null = null;
  let uncompressed = 0;
  // The dump's first and last few KB, for the same trailer check the service makes (L5).
  const ends = new DumpEnds();
  let read = 0;

  gunzip.on('error', (err) => {
    gzipError ??= err;
  });
  gunzip.on('data', (chunk: Buffer) => {
    uncompressed += chunk.length;
    ends.push(chunk);
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
  const problems = dumpProblems({ sizeBytes: size, sha256, gzipError, ends, expected });
  if (problems.length > 0) {
    throw new CliError(ExitCode.VERIFICATION_FAILED, `verification of ${opts.label} failed: ${problems.join('; ')}. Nothing was changed in the database.`, {
      databaseState: 'untouched',
    });
  }
  return { sha256, sizeBytes: read, uncompressedBytes: uncompressed };
}
