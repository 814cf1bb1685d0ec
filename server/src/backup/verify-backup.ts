import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AGE_INTRO, isAgeEncrypted } from '@db-backup-service/restore';
import type { Storage } from '../storage/storage.js';
import { BackupError } from './backup-error.js';
import { describeError } from './describe-error.js';
import { GcPacer } from './gc-pacer.js';
import { StreamMeter } from './stream-meter.js';

export interface StreamedDigest {
  readonly sizeBytes: number;
  readonly sha256: string;
  readonly uncompressedSizeBytes: number;
}

/**
 * Reads a stored dump back and checks it against what was streamed (invariant 2): its SHA-256
 * and size must equal what the upload computed. Throws VERIFY_FAILED otherwise.
 *
 * That the streamed bytes are valid gzip or zstd to the end (gzip's CRC-32 and length, zstd's
 * checksum and single frame) and decompress to the whole dump was checked while they streamed
 * (CompressedStreamCheck), so equal bytes read back are a stored object that decompresses to the
 * dump: no second decompression of the whole backup here.
 */
export async function verifyStoredBackup(
  storage: Storage,
  id: string,
  expected: StreamedDigest,
  signal: AbortSignal,
  opts: { readonly gcLimitBytes?: number; readonly encrypted?: boolean } = {},
): Promise<void> {
  const { gcLimitBytes = Infinity, encrypted = false } = opts;
  const compressed = new StreamMeter({ sha256: true });
  // An encrypted backup must read back as age from its first byte: with the hash check, proof
  // that what storage holds is the ciphertext, whatever happened on the way (invariant 10).
  let head = Buffer.alloc(0);
  try {
    const source = await storage.get(id, { signal });
    await pipeline(
      source,
      compressed,
      // Every chunk read is a new buffer: the same pacing as while dumping.
      new GcPacer(gcLimitBytes),
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          if (encrypted && head.length < AGE_INTRO.length) head = Buffer.concat([head, chunk.subarray(0, AGE_INTRO.length - head.length)]);
          callback();
        },
      }),
      { signal },
    );
  } catch (error) {
    if (signal.aborted) throw error;
    throw new BackupError('VERIFY_FAILED', `reading backup ${id} back from storage failed: ${describeError(error)}`, { cause: error });
  }
  if (encrypted && !isAgeEncrypted(head)) {
    throw new BackupError('VERIFY_FAILED', `backup ${id} should be age-encrypted, but what storage holds does not begin with the age header`);
  }
  const actual = { sizeBytes: compressed.bytes, sha256: compressed.sha256() };
  const differences = (Object.keys(actual) as (keyof typeof actual)[])
    .filter((key) => actual[key] !== expected[key])
    .map((key) => `${key} ${String(actual[key])} (expected ${String(expected[key])})`);
  if (differences.length > 0) {
    throw new BackupError('VERIFY_FAILED', `backup ${id} reads back differently from what was stored: ${differences.join(', ')}`);
  }
}
