import * as stream from 'node:stream';
import type { Duplex } from 'node:stream';
import type { CompressionFormat } from '@db-backup-service/contract';
import { AgeDecryptStream, AgeError } from './age.js';
import { createDecompressor } from './compression.js';
import { RestoreError } from './errors.js';

/**
 * How to open an age-encrypted dump: the identities (secret keys, never in a message) and the
 * name the dump goes by in messages (`backup <id>`, a file path). null everywhere means the dump
 * is not encrypted.
 */
export interface DumpDecryption {
  readonly identities: readonly string[];
  readonly where: string;
}

// node:stream's compose (Node 16.9+; stable enough to be used by pipeline itself), which
// @types/node declares only as a method: the module-level function chains streams into one Duplex.
const compose = (stream as unknown as { compose: (...streams: Duplex[]) => Duplex }).compose;

/**
 * What turns a stored dump's bytes into the plain SQL: the decompressor for its format, behind an
 * age decryption when it is encrypted. One Duplex either way, so the stored (hashed) side writes to
 * it with the same back-pressure; an AgeError comes out of it as it is (compose keeps the error of
 * the stage that failed), so a wrong key is named as such rather than as a corrupt gzip.
 */
export function createDumpDecoder(format: CompressionFormat, decrypt: DumpDecryption | null): Duplex {
  const decompressor = createDecompressor(format);
  return decrypt === null ? decompressor : compose(new AgeDecryptStream(decrypt.identities, decrypt.where), decompressor);
}

/** None of the identities opens the file: the configuration is wrong, not the backup. */
function isWrongIdentity(err: unknown): err is AgeError {
  return err instanceof AgeError && err.kind === 'no-matching-identity';
}

/**
 * The wrong key and nothing else: the decoder failed because no identity opens the age header,
 * and that is the one problem the dump check found (size and checksum of the stored bytes fine).
 * Then the configuration is at fault, not the backup: callers report it as such.
 */
export function wrongIdentityOnly(decodeError: unknown, problems: readonly string[]): AgeError | null {
  return isWrongIdentity(decodeError) && problems.length === 1 ? decodeError : null;
}

/**
 * A decryption failure as the restore reports it: a wrong identity is configuration ('usage');
 * a file that is not age or whose ciphertext is damaged is the backup's fault ('verification').
 * Nothing was created or changed when this is thrown.
 */
export function decryptionFailure(err: AgeError): RestoreError {
  return new RestoreError(err.kind === 'no-matching-identity' ? 'usage' : 'verification', err.message, { cause: err, databaseState: 'untouched' });
}
