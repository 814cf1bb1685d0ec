// Drills of age-encrypted backups: whether one can run, with what to decrypt it, and what an
// operator is told when it cannot.
import { isEncryptedId, type BackupSidecar } from '@db-backup-service/contract';
import type { DumpDecryption } from '@db-backup-service/restore';
import type { Config } from '../config/config.js';

/** Encrypted by its sidecar or by its name (parseSidecar refuses a sidecar where they disagree). */
export function isEncryptedBackup(backup: Pick<BackupSidecar, 'id' | 'encryption'>): boolean {
  return backup.encryption !== null || isEncryptedId(backup.id);
}

/** How a drill of a backup goes: skipped (with why), or run, decrypting with the drill's identities when encrypted. */
export type DrillAccess = { readonly kind: 'skip'; readonly reason: string } | { readonly kind: 'run'; readonly decrypt: DumpDecryption | null };

/**
 * An encrypted backup needs an identity to decrypt it, and without RESTORE_DRILL_IDENTITY_FILE
 * there is none: its drill is then 'skipped', never 'passed' (nothing was restored, so nothing is
 * proven, invariant 9). With identities it streams through age's decryption; a plain backup does not.
 */
export function drillAccess(config: Config, backup: Pick<BackupSidecar, 'id' | 'encryption'>): DrillAccess {
  if (!isEncryptedBackup(backup)) return { kind: 'run', decrypt: null };
  const identities = config.drill.identities;
  if (identities === null) {
    return {
      kind: 'skip',
      reason: `backup ${backup.id} is encrypted (age); set RESTORE_DRILL_IDENTITY_FILE to an identity file holding the key of one of its recipients to drill it`,
    };
  }
  return { kind: 'run', decrypt: { identities, where: `backup ${backup.id}` } };
}

/**
 * At start: drills that will run only to be skipped. The service may hold no identity on purpose
 * (it writes backups it cannot read), but then RESTORE_DRILL proves nothing, and an operator who
 * switched it on should hear so once at start, not only in each drill's record.
 */
export function encryptedDrillWarning(config: Config): string | null {
  if (config.drill.mode === 'off' || config.backup.encryption === null || config.drill.identities !== null) return null;
  return 'RESTORE_DRILL is on but backups are encrypted and RESTORE_DRILL_IDENTITY_FILE is unset: drills will be skipped';
}
