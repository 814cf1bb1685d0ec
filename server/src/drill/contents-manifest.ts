import { createHash } from 'node:crypto';
import { contentsName, ContentsManifestSchema, type BackupSidecar, type ContentsManifest } from '@db-backup-service/contract';
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
 * since would make the drill check the wrong counts. null when the sidecar records none (the
 * reference service's backups, older ones): the drill then counts from the stream itself.
 */
export async function readContentsManifest(storage: Storage, sidecar: BackupSidecar, signal: AbortSignal): Promise<ContentsManifest | null> {
  if (sidecar.contents === null) return null;
  const name = contentsName(sidecar.id);
  let data: Buffer;
  try {
    data = await storage.getSmall(name, { signal });
  } catch (error) {
    if (error instanceof StorageNotFoundError) throw new ManifestError(`the contents manifest ${name} is missing, but the sidecar records one`);
    throw error;
  }
  const sha256 = createHash('sha256').update(data).digest('hex');
  if (sha256 !== sidecar.contents.sha256) {
    throw new ManifestError(`the contents manifest ${name} does not match its sidecar (SHA-256 ${sha256}, the sidecar records ${sidecar.contents.sha256}): it was changed after the backup`);
  }
  let json: unknown;
  try {
    json = JSON.parse(data.toString('utf8'));
  } catch {
    throw new ManifestError(`the contents manifest ${name} is not valid JSON`);
  }
  const parsed = ContentsManifestSchema.safeParse(json);
  if (!parsed.success) throw new ManifestError(`the contents manifest ${name} is not a contents manifest (${parsed.error.issues[0]?.message ?? 'invalid'})`);
  return parsed.data;
}
