import { compareNewestFirst, sidecarName, type BackupSidecar } from '@db-backup-service/contract';
import { companionNames, type BackupIndex } from './backup-index.js';
import type { Logger } from './logger.js';
import type { Storage } from './storage/storage.js';

export interface RetentionPolicy {
  readonly days: number;
  /** The newest `minCount` backups are always kept (at least 1: the latest success, invariant 4). */
  readonly minCount: number;
}

/**
 * Which backups to delete. Pure: newest first by createdAt; the newest `minCount` are kept
 * whatever their age; of the rest, those older than `days` go.
 */
export function selectExpired(backups: readonly BackupSidecar[], policy: RetentionPolicy, now: Date): BackupSidecar[] {
  const cutoff = now.getTime() - policy.days * 86_400_000;
  const newestFirst = [...backups].sort(compareNewestFirst);
  return newestFirst.slice(Math.max(1, policy.minCount)).filter((b) => Date.parse(b.createdAt) < cutoff);
}

/**
 * Prunes expired backups. Acts only on a fresh, complete listing (the index refresh throws on a
 * failed or truncated listing, and then nothing is deleted) and only on this service's own
 * backups: its name prefix and its database (invariant 11; the index holds nothing else). The
 * sidecar goes first, so a backup stops listing before its dump disappears; its contents manifest
 * and drill record go after the dump.
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
  const snapshot = await index.refresh();
  const expired = selectExpired(snapshot.backups, policy, deps.now ?? new Date());
  const deleted: string[] = [];
  for (const backup of expired) {
    try {
      await storage.delete(sidecarName(backup.id));
      index.remove(backup.id);
      await storage.delete(backup.id);
      await deleteCompanions(storage, backup.id, logger);
      deleted.push(backup.id);
      deps.onDeleted?.(backup.id);
      // Not `backupId`: the line names what it acts on, whatever job context it runs in (M2).
      logger.info('retention deleted a backup', { deletedBackupId: backup.id, createdAt: backup.createdAt, retentionDays: policy.days });
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
