import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { checkManifest, contentsName, type DumpDecryption } from '@db-backup-service/restore';
import type { ManifestLookup, ResolvedBackup } from './backup-source.js';

/**
 * `<dump>.contents.json` beside a dump on disk (the local directory, or a --file), checked against
 * the sidecar's contents.sha256; an encrypted backup's (`<dump>.contents.json.age`, as contentsName
 * names it) is decrypted with the same identities as the dump.
 */
export async function readLocalManifest(dumpPath: string, backup: ResolvedBackup, decrypt: DumpDecryption | null): Promise<ManifestLookup> {
  const contents = backup.contents ?? null;
  if (contents === null) return { manifest: null, problem: null, note: 'the backup has no contents manifest (a backup of the reference service, an older version, or a --file without sidecar)' };
  const path = contentsName(dumpPath);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    return { manifest: null, problem: `${basename(path)} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'unreadable'}), though the sidecar records one`, reason: 'unreadable', note: null };
  }
  const checked = await checkManifest(bytes, contents.sha256, decrypt === null ? null : { identities: decrypt.identities, where: basename(path) });
  if (!checked.ok) {
    const problem = checked.reason === 'identity' ? checked.problem : `${basename(path)} does not belong to this backup: ${checked.problem}`;
    return { manifest: null, problem, reason: checked.reason, note: null };
  }
  return { manifest: checked.manifest, problem: null, note: null };
}
