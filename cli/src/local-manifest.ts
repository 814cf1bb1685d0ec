import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { checkManifest, contentsName } from '@db-backup-service/restore';
import type { ManifestLookup, ResolvedBackup } from './backup-source.js';

/** `<dump>.contents.json` beside a dump on disk (the local directory, or a --file), checked against the sidecar's contents.sha256. */
export async function readLocalManifest(dumpPath: string, backup: ResolvedBackup): Promise<ManifestLookup> {
  const contents = backup.contents ?? null;
  if (contents === null) return { manifest: null, problem: null, note: 'the backup has no contents manifest (a backup of the reference service, an older version, or a --file without sidecar)' };
  const path = contentsName(dumpPath);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    return { manifest: null, problem: `${basename(path)} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'unreadable'}), though the sidecar records one`, note: null };
  }
  const checked = await checkManifest(bytes, contents.sha256, null);
  if (!checked.ok) return { manifest: null, problem: `${basename(path)} does not belong to this backup: ${checked.problem}`, note: null };
  return { manifest: checked.manifest, problem: null, note: null };
}
