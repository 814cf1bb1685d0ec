// The job log context (M2): a line's own fields win, and work run outside the job carries none of it.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BackupIndex } from './backup-index.js';
import { withLogContext, withoutLogContext } from './logger.js';
import { captureLogger, idAt, ownSidecar, putBackup } from './ownership.test-helper.js';
import { pruneBackups } from './retention/prune.js';
import { policyOf } from './retention/policy.test-helper.js';
import { LocalStorage } from './storage/local-storage.js';

describe('log context', () => {
  it("a line's own fields win over the job's context; outside it, none of the job's fields appear", async () => {
    const { logger, lines } = captureLogger();
    await withLogContext({ jobId: 'job-1', backupId: 'backup_20260520T120000Z.sql.gz' }, async () => {
      logger.info('inside', { backupId: 'backup_20260101T000000Z.sql.gz' });
      await withoutLogContext(async () => {
        await Promise.resolve();
        logger.info('outside');
      });
    });
    expect(lines[0]).toMatchObject({ message: 'inside', jobId: 'job-1', backupId: 'backup_20260101T000000Z.sql.gz' });
    expect(lines[1]).toMatchObject({ message: 'outside' });
    expect(lines[1]).not.toHaveProperty('jobId');
    expect(lines[1]).not.toHaveProperty('backupId');
  });

  it('a retention line names the backup it deleted, also when run inside a job that made another', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'log-context-'));
    const storage = await LocalStorage.open(dir);
    const now = new Date('2026-05-20T12:00:00Z');
    const newest = idAt(now);
    const old = idAt(new Date(now.getTime() - 30 * 86_400_000));
    await putBackup(storage, newest, (dump) => ownSidecar(newest, now, dump, 'app'));
    await putBackup(storage, old, (dump) => ownSidecar(old, new Date(now.getTime() - 30 * 86_400_000), dump, 'app'));
    const { logger, lines } = captureLogger();
    const index = new BackupIndex(storage, { namePrefix: 'backup', database: 'app' }, logger);
    await withLogContext({ jobId: 'job-2', backupId: newest }, () => pruneBackups({ storage, index, policy: policyOf({ days: 7, minCount: 1 }), logger, now }));
    expect(lines.find((l) => l.message === 'retention deleted a backup')).toMatchObject({ deletedBackupId: old });
    await rm(dir, { recursive: true, force: true });
  });
});
