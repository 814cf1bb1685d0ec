import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
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
 * Reads a stored dump back and checks it against what was streamed (invariant 2): it must be
 * valid gzip to the end (zlib checks each member's CRC-32 and length), and its SHA-256, size and
 * uncompressed size must equal what the upload computed. Throws VERIFY_FAILED otherwise.
 */
export async function verifyStoredBackup(
  storage: Storage,
  id: string,
  expected: StreamedDigest,
  signal: AbortSignal,
  gcIntervalBytes = Infinity,
): Promise<void> {
  const compressed = new StreamMeter({ sha256: true });
  const uncompressed = new StreamMeter();
  try {
    const source = await storage.get(id, { signal });
    await pipeline(
      source,
      compressed,
      createGunzip(),
      uncompressed,
      // Reading back makes as much short-lived buffer memory as the dump did: the same pacing.
      new GcPacer(gcIntervalBytes),
      new Writable({
        write(_chunk, _encoding, callback) {
          callback();
        },
      }),
      { signal },
    );
  } catch (error) {
    if (signal.aborted) throw error;
    throw new BackupError('VERIFY_FAILED', `reading backup ${id} back from storage failed: ${describeError(error)}`, { cause: error });
  }
  const actual: StreamedDigest = { sizeBytes: compressed.bytes, sha256: compressed.sha256(), uncompressedSizeBytes: uncompressed.bytes };
  const differences = (Object.keys(expected) as (keyof StreamedDigest)[])
    .filter((key) => actual[key] !== expected[key])
    .map((key) => `${key} ${String(actual[key])} (expected ${String(expected[key])})`);
  if (differences.length > 0) {
    throw new BackupError('VERIFY_FAILED', `backup ${id} reads back differently from what was stored: ${differences.join(', ')}`);
  }
}
