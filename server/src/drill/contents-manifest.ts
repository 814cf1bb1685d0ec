import { contentsName, type BackupSidecar, type ContentsManifest } from '@db-backup-service/contract';
import { checkManifest, type DumpDecryption } from '@db-backup-service/restore';
import { StorageNotFoundError, type Storage } from '../storage/storage.js';

/** The manifest cannot be trusted or read: the drill fails with this message. */
export class ManifestError extends Error {
  readonly code = 'MANIFEST_INVALID';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ManifestError';
  }
}

/**
 * A backup's contents manifest, trusted only when its SHA-256 is the one its sidecar recorded:
 * the sidecar is written last, after the dump was verified, so a manifest changed or replaced
 * since would make the drill check the wrong counts. An encrypted backup's (`<id>.contents.json.age`)
 * is hashed as stored, then decrypted with `decrypt`'s identities. null when the sidecar records
 * none (the reference service's backups, older ones): the drill then compares with the counts of
 * the stream itself.
 */
export async function readContentsManifest(storage: Storage, sidecar: BackupSidecar, decrypt: DumpDecryption | null, signal: AbortSignal): Promise<ContentsManifest | null> {
  if (sidecar.contents === null) return null;
  const name = contentsName(sidecar.id);
  let data: Buffer;
  try {
    data = await storage.getSmall(name, { signal });
  } catch (error) {
    if (error instanceof StorageNotFoundError) throw new ManifestError(`the contents manifest ${name} is missing, but the sidecar records one`);
    throw error;
  }
  const checked = await checkManifest(data, sidecar.contents.sha256, decrypt === null ? null : { ...decrypt, where: `the contents manifest ${name}` });
  if (checked.ok) return checked.manifest;
  if (checked.reason === 'untrusted') {
    throw new ManifestError(`the contents manifest ${name} cannot be trusted: ${checked.problem} (it was changed after the backup)`);
  }
  if (checked.reason === 'identity' && decrypt !== null) {
    // age's own words, as a wrong identity for the dump reads: encrypted to other keys than the drill's.
    throw new ManifestError(checked.problem);
  }
  // The bytes the backup wrote, yet not a manifest (or encrypted where its backup is not).
  throw new ManifestError(`the contents manifest ${name} cannot be read: ${checked.problem}`);
}
