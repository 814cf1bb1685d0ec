import { pinName, sidecarName, type RetentionPolicy } from '@db-backup-service/contract';
import { companionNames, type BackupIndex } from '../backup-index.js';
import type { Logger } from '../logger.js';
import type { Storage } from '../storage/storage.js';
import { describePolicy, planRetention, type PlannedBackup } from './plan.js';

/** The plan over what the index lists now: what a run does, and the API's GET /api/v1/retention. */
export function currentPlan(index: BackupIndex, policy: RetentionPolicy, now: Date): PlannedBackup[] {
  const candidates = index.list().map((backup) => ({
    id: backup.id,
    createdAt: backup.createdAt,
    pinned: index.isPinned(backup.id),
    verified: index.drillOf(backup.id)?.status === 'passed',
  }));
  return planRetention(candidates, policy, now);
}

/**
 * Applies retention. Acts only on a fresh, complete listing (the index refresh throws on a failed
 * or truncated listing, and then nothing is deleted) and only on this service's own backups: its
 * name prefix and its database (invariant 11; the index holds nothing else). Before each deletion
 * a fresh look for a pin: one set by another instance since the listing still protects it. The
 * sidecar goes first, so a backup stops listing before its dump disappears; its contents
 * manifest, drill record and pin go after the dump. A dry run logs each deletion it would make
 * and deletes nothing. Returns the ids deleted (would be deleted, in a dry run).
 */
export async function pruneBackups(deps: {
  storage: Storage;
  index: BackupIndex;
  policy: RetentionPolicy;
  logger: Logger;
  now?: Date;
  onDeleted?: (id: string) => void;
}): Promise<string[]> {
  const { storage, index, policy, logger } = deps;
  await index.refresh();
  const expired = currentPlan(index, policy, deps.now ?? new Date()).filter((b) => b.action === 'delete');
  const rule = describePolicy(policy);
  if (policy.dryRun) {
    for (const backup of expired) {
      logger.info('retention dry run: would delete a backup', { wouldDeleteBackupId: backup.id, createdAt: backup.createdAt, reasons: backup.reasons, rule });
    }
    return expired.map((b) => b.id);
  }
  const deleted: string[] = [];
  for (const backup of expired) {
    try {
      if ((await storage.stat(pinName(backup.id))) !== null) {
        logger.info('retention keeps a backup pinned since the listing', { pinnedBackupId: backup.id });
        continue;
      }
      await storage.delete(sidecarName(backup.id));
      index.remove(backup.id);
      await storage.delete(backup.id);
      await deleteCompanions(storage, backup.id, logger);
      deleted.push(backup.id);
      deps.onDeleted?.(backup.id);
      // Not `backupId`: the line names what it acts on, whatever job context it runs in (M2).
      logger.info('retention deleted a backup', { deletedBackupId: backup.id, createdAt: backup.createdAt, reasons: backup.reasons, rule });
    } catch (error) {
      logger.error('retention could not delete a backup', { expiredBackupId: backup.id, error: (error as Error).message });
    }
  }
  return deleted;
}

/**
 * Last, once the backup is gone: without its dump and sidecar a companion is inert (never listed),
 * so a failure here only leaves a leftover that the clean-up removes later.
 */
async function deleteCompanions(storage: Storage, id: string, logger: Logger): Promise<void> {
  for (const name of companionNames(id)) {
    try {
      await storage.delete(name);
    } catch (error) {
      logger.warn('retention could not delete a file of a deleted backup; the clean-up of leftovers removes it later', { object: name, error: (error as Error).message });
    }
  }
}
