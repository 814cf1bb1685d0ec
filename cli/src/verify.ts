import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createDumpDecoder, DumpEnds, dumpProblems, formatMismatch, wrongIdentityOnly, type DumpDecryption, type DumpExpectations, type VerifiedDump } from '@db-backup-service/restore';
import type { CompressionFormat } from '@db-backup-service/sdk';
import { CliError, ExitCode } from './exit-codes.js';

/**
 * Reads the whole dump once: SHA-256 of the stored bytes, and a full decompression (gzip:
 * zlib checks the CRC-32 and length at the end of each member; zstd: exactly one frame, its
 * content checksum, nothing after it), behind age decryption when `decrypt` is given (every
 * chunk authenticated; a wrong identity fails at the header). Both run to the end even when one
 * fails, so the message names every problem. Nothing is dropped before this has passed (invariant 8).
 */
export async function verifyDump(
  fh: FileHandle,
  expected: DumpExpectations,
  opts: { format: CompressionFormat; decrypt: DumpDecryption | null; signal?: AbortSignal; onProgress?: (bytesRead: number) => void; label: string },
): Promise<VerifiedDump> {
  const { size } = await fh.stat();
  const hash = createHash('sha256');
  const decompressor = createDumpDecoder(opts.format, opts.decrypt);
  let decompressError: Error | null = null;
  // Bytes of another format (or none at all) are named as such, not by the decompressor's complaint.
  let mismatch: string | null = null;
  let uncompressed = 0;
  // The dump's first and last few KB, for the same trailer check the service makes (L5).
  const ends = new DumpEnds();
  let read = 0;

  decompressor.on('error', (err) => {
    decompressError ??= err;
  });
  decompressor.on('data', (chunk: Buffer) => {
    uncompressed += chunk.length;
    ends.push(chunk);
  });
  const decompressorSettled = new Promise<void>((resolve) => {
    decompressor.once('end', resolve);
    decompressor.once('error', () => resolve());
    decompressor.once('close', resolve);
  });

  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      // The ciphertext's first bytes say nothing of the compression: the decompressor judges them then.
      if (read === 0 && opts.decrypt === null) {
        mismatch = formatMismatch(chunk, opts.format);
        if (mismatch !== null) decompressor.destroy();
      }
      hash.update(chunk);
      read += chunk.length;
      opts.onProgress?.(read);
      if (mismatch !== null || decompressError !== null) {
        callback();
        return;
      }
      if (decompressor.write(chunk)) {
        callback();
        return;
      }
      // Wait for the decompressor to drain, or for it to fail (then keep hashing without it).
      const onDrain = (): void => {
        decompressor.off('error', onDrain);
        decompressor.off('drain', onDrain);
        callback();
      };
      decompressor.once('drain', onDrain);
      decompressor.once('error', onDrain);
    },
    final(callback) {
      // An empty file: no chunk ever came to be checked.
      if (read === 0 && opts.decrypt === null) mismatch = formatMismatch(Buffer.alloc(0), opts.format);
      if (mismatch !== null) {
        callback();
        return;
      }
      if (decompressError === null) decompressor.end();
      decompressorSettled.then(() => callback(), callback);
    },
  });

  try {
    await pipeline(fh.createReadStream({ start: 0, autoClose: false }), sink, opts.signal ? { signal: opts.signal } : {});
  } catch (err) {
    if (opts.signal?.aborted) throw opts.signal.reason;
    throw new CliError(ExitCode.VERIFICATION_FAILED, `cannot read ${opts.label}: ${(err as Error).message}`, { cause: err, databaseState: 'untouched' });
  } finally {
    decompressor.destroy();
  }

  const sha256 = hash.digest('hex');
  const problems =
    mismatch === null
      ? dumpProblems({ sizeBytes: size, sha256, format: opts.format, decompressError: decompressError, ends, expected })
      : [...dumpProblems({ sizeBytes: size, sha256, format: opts.format, decompressError: null, ends: null, expected }), mismatch];
  // The right bytes and the wrong key: the configuration is at fault, not the backup.
  const wrongKey = wrongIdentityOnly(decompressError, problems);
  if (wrongKey !== null) {
    throw new CliError(ExitCode.USAGE, `${wrongKey.message}. Nothing was changed in the database.`, { cause: wrongKey, databaseState: 'untouched' });
  }
  if (problems.length > 0) {
    throw new CliError(ExitCode.VERIFICATION_FAILED, `verification of ${opts.label} failed: ${problems.join('; ')}. Nothing was changed in the database.`, {
      databaseState: 'untouched',
    });
  }
  return { sha256, sizeBytes: read, uncompressedBytes: uncompressed };
}
