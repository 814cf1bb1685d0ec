import { createHash } from 'node:crypto';
import { ContentsManifestSchema, type ContentsManifest } from '@db-backup-service/contract';

export type ManifestCheck = { readonly ok: true; readonly manifest: ContentsManifest } | { readonly ok: false; readonly problem: string };

/**
 * A stored `<id>.contents.json`, accepted only when its SHA-256 is the one its sidecar recorded: a
 * drill trusts the manifest written with the backup, not one put there later (design, part 3).
 */
export function checkManifest(bytes: Buffer, expectedSha256: string): ManifestCheck {
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (sha256 !== expectedSha256) return { ok: false, problem: `its SHA-256 is ${sha256}, the sidecar says ${expectedSha256}` };
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    return { ok: false, problem: `not JSON (${(err as Error).message})` };
  }
  const parsed = ContentsManifestSchema.safeParse(json);
  if (!parsed.success) return { ok: false, problem: `not a contents manifest (${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')})` };
  return { ok: true, manifest: parsed.data };
}
