import { createHash } from 'node:crypto';
import { ContentsManifestSchema, type ContentsManifest } from '@db-backup-service/contract';
import { AgeError, decryptBuffer, isAgeEncrypted } from './age.js';
import type { DumpDecryption } from './dump-decoder.js';

/**
 * Why a manifest was refused: `untrusted` (its SHA-256 is not the sidecar's), `invalid` (right
 * bytes, but not a manifest), `identity` (encrypted, and no identity given opens it: the
 * configuration is wrong, not the backup).
 */
export type ManifestProblem = 'untrusted' | 'invalid' | 'identity';

export type ManifestCheck =
  | { readonly ok: true; readonly manifest: ContentsManifest }
  | { readonly ok: false; readonly problem: string; readonly reason: ManifestProblem };

/**
 * A stored `<id>.contents.json` (or, for an encrypted backup, `<id>.contents.json.age`), accepted
 * only when its SHA-256 is the one its sidecar recorded: a drill trusts the manifest written with
 * the backup, not one put there later (design, part 3). The hash is of the bytes as stored (the
 * ciphertext, when encrypted), checked before they are decrypted with `decrypt`'s identities;
 * whether they are encrypted is told by their first bytes (the age intro).
 */
export async function checkManifest(bytes: Buffer, expectedSha256: string, decrypt: DumpDecryption | null): Promise<ManifestCheck> {
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (sha256 !== expectedSha256) return { ok: false, problem: `its SHA-256 is ${sha256}, the sidecar says ${expectedSha256}`, reason: 'untrusted' };
  let plain = bytes;
  if (isAgeEncrypted(bytes)) {
    if (decrypt === null) return { ok: false, problem: 'it is age-encrypted and no identity was given to open it', reason: 'identity' };
    try {
      plain = await decryptBuffer(bytes, decrypt.identities, decrypt.where);
    } catch (err) {
      if (!(err instanceof AgeError)) throw err;
      return { ok: false, problem: err.message, reason: err.kind === 'no-matching-identity' ? 'identity' : 'invalid' };
    }
  }
  let json: unknown;
  try {
    json = JSON.parse(plain.toString('utf8'));
  } catch (err) {
    return { ok: false, problem: `not JSON (${(err as Error).message})`, reason: 'invalid' };
  }
  const parsed = ContentsManifestSchema.safeParse(json);
  if (!parsed.success) {
    return { ok: false, problem: `not a contents manifest (${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')})`, reason: 'invalid' };
  }
  return { ok: true, manifest: parsed.data };
}
