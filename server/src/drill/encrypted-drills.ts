// Drills of age-encrypted backups: whether one can run, and what an operator is told when not.
import { isEncryptedId, type BackupSidecar } from '@db-backup-service/contract';
import type { Config } from '../config/config.js';

/** Encrypted by its sidecar or by its name (parseSidecar refuses a sidecar where they disagree). */
export function isEncryptedBackup(backup: Pick<BackupSidecar, 'id' | 'encryption'>): boolean {
  return backup.encryption !== null || isEncryptedId(backup.id);
}

/**
 * Why a drill of `backup` cannot run, or null when it can: an encrypted backup needs an identity
 * to decrypt it, and without RESTORE_DRILL_IDENTITY_FILE there is none. The drill is then
 * 'skipped', never 'passed': nothing was restored, so nothing is proven (invariant 9).
 */
export function skippedDrillReason(config: Config, backup: Pick<BackupSidecar, 'id' | 'encryption'>): string | null {
  if (!isEncryptedBackup(backup) || config.drill.identities !== null) return null;
  return `backup ${backup.id} is encrypted (age); set RESTORE_DRILL_IDENTITY_FILE to an identity file holding the key of one of its recipients to drill it`;
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
