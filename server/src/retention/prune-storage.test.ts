// Retention against real storage (a local directory and the S3 emulator): what it deletes, what
// it must never touch, and that a failed listing deletes nothing (invariant 4).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMPRESSION_FORMATS, type BackupSidecar, type CompressionFormat } from '@db-backup-service/contract';
import { startS3, type S3Harness } from '../../../test/harness/index.js';
import { contentsName, drillName, pinName, sidecarName } from '@db-backup-service/contract';
import { BackupIndex } from '../backup-index.js';
import { captureLogger } from '../ownership.test-helper.js';
import { silentLogger } from '../logger.js';
import { pruneBackups } from './prune.js';
import { policyOf } from './policy.test-helper.js';
import { LocalStorage } from '../storage/local-storage.js';
import { S3Storage } from '../storage/s3-storage.js';
import type { Storage } from '../storage/storage.js';
import { storageWith } from '../storage/storage-with.test-helper.js';

const NOW = new Date('2026-05-20T12:00:00Z');
const DAY = 86_400_000;
const logger = silentLogger();

function idAt(date: Date, prefix = 'backup', format: CompressionFormat = 'gzip'): string {
  return `${prefix}_${date.toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '')}${COMPRESSION_FORMATS[format].extension}`;
}

async function putBackup(storage: Storage, daysAgo: number, prefix = 'backup', format: CompressionFormat = 'gzip'): Promise<string> {
  const createdAt = new Date(NOW.getTime() - daysAgo * DAY);
  const id = idAt(createdAt, prefix, format);
  await storage.putStream(id, Readable.from([Buffer.from(`dump ${id}`)]), { signal: AbortSignal.timeout(10_000) });
  const sidecar: BackupSidecar = {
    id, createdAt: createdAt.toISOString(), sizeBytes: 10, sha256: 'a'.repeat(64), pgVersion: '15.18', durationMs: 5, triggeredBy: 'scheduler',
    pgDumpVersion: '15.18', uncompressedSizeBytes: 10, compression: { format, level: 3 }, database: 'app', serviceVersion: 'test', format: 'plain', contents: null, encryption: null,
  };
  await storage.putSmall(`${id}.meta.json`, Buffer.from(JSON.stringify(sidecar)));
  return id;
}

let s3: S3Harness;
beforeAll(async () => {
  s3 = await startS3({ persist: true });
});
afterAll(() => s3?.destroy());

const BACKENDS: { name: string; create(): Promise<{ storage: Storage; cleanup(): Promise<void> }> }[] = [
  {
    name: 'local',
    async create() {
      const dir = await mkdtemp(join(tmpdir(), 'retention-'));
      return { storage: await LocalStorage.open(dir), cleanup: () => rm(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: 's3',
    async create() {
      const prefix = `retention-${Math.random().toString(36).slice(2)}`;
      const storage = new S3Storage({
        bucket: s3.bucket, prefix, endpoint: s3.endpoint, region: s3.region, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, sessionToken: null }, connectTimeoutMs: 10_000, requestTimeoutMs: 60_000, partSizeBytes: null,
      });
      return { storage, cleanup: async () => undefined };
    },
  },
];

for (const backend of BACKENDS) {
  describe(`${backend.name}: retention`, () => {
    it('prunes expired backups, keeps the newest and everything that is not its own', async () => {
      const { storage, cleanup } = await backend.create();
      const fresh = await putBackup(storage, 1);
      const week = await putBackup(storage, 6);
      const old1 = await putBackup(storage, 8);
      const old2 = await putBackup(storage, 40);
      const foreignPrefix = await putBackup(storage, 50, 'otherdb');
      const foreign = ['notes.txt', 'backup_latest.sql.gz', `${old2}.bak`, 'backup_20200101T000000Z.sql'];
      for (const name of foreign) await storage.putSmall(name, Buffer.from('not a backup of ours'));
      // A dump whose sidecar is missing is not a backup: retention leaves it to the clean-up.
      const orphan = idAt(new Date(NOW.getTime() - 90 * DAY));
      await storage.putSmall(orphan, Buffer.from('orphan'));

      const index = new BackupIndex(storage, { namePrefix: 'backup', database: 'app' }, logger);
      const deleted: string[] = [];
      const result = await pruneBackups({ storage, index, policy: policyOf({ days: 7, minCount: 1 }), logger, now: NOW, onDeleted: (id) => deleted.push(id) });
      expect(result.sort()).toEqual([old1, old2].sort());
      expect(deleted.sort()).toEqual([old1, old2].sort());
      const names = (await storage.list()).map((o) => o.name);
      for (const kept of [fresh, week, foreignPrefix, ...foreign, orphan]) expect(names, kept).toContain(kept);
      for (const gone of [old1, old2]) {
        expect(names).not.toContain(gone);
        expect(names).not.toContain(`${gone}.meta.json`);
      }
      expect(index.list().map((b) => b.id)).toEqual([fresh, week]);
      await cleanup();
    });

    for (const format of ['gzip', 'zstd'] as const) {
      it(`${format}: removes a backup's contents manifest and drill record with it; they never list, count as foreign or hide an orphan`, async () => {
        const { storage, cleanup } = await backend.create();
        const withCompanions = async (id: string) => {
          for (const name of [contentsName(id), drillName(id)]) await storage.putSmall(name, Buffer.from('{}'));
          return id;
        };
        const fresh = await withCompanions(await putBackup(storage, 1, 'backup', format));
        const old = await withCompanions(await putBackup(storage, 30, 'backup', format));
        const otherPrefix = await withCompanions(await putBackup(storage, 40, 'otherdb', format));
        // Companions whose backup is gone (no dump, no sidecar): leftovers for the clean-up.
        const gone = idAt(new Date(NOW.getTime() - 50 * DAY), 'backup', format);
        await withCompanions(gone);
        // A dump without a sidecar is the orphan; its manifest waits until the dump is gone.
        const unfinished = idAt(new Date(NOW.getTime() - 60 * DAY), 'backup', format);
        await storage.putSmall(unfinished, Buffer.from('dump'));
        await storage.putSmall(contentsName(unfinished), Buffer.from('{}'));
        // Companions of a name that is no backup id, and of another prefix: never ours.
        for (const name of ['notes.contents.json', contentsName(idAt(new Date('2020-01-01T00:00:00Z'), 'otherdb', format))]) await storage.putSmall(name, Buffer.from('{}'));

        const index = new BackupIndex(storage, { namePrefix: 'backup', database: 'app' }, logger);
        const snapshot = await index.refresh();
        expect(snapshot.backups.map((b) => b.id).sort()).toEqual([fresh, old].sort());
        expect(snapshot.foreign).toBe(0);
        expect(snapshot.orphans.map((o) => o.name).sort()).toEqual([contentsName(gone), drillName(gone), unfinished].sort());

        expect(await pruneBackups({ storage, index, policy: policyOf({ days: 7, minCount: 1 }), logger, now: NOW })).toEqual([old]);
        const names = (await storage.list()).map((o) => o.name);
        for (const removed of [old, `${old}.meta.json`, contentsName(old), drillName(old)]) expect(names).not.toContain(removed);
        for (const kept of [fresh, `${fresh}.meta.json`, contentsName(fresh), drillName(fresh), contentsName(otherPrefix), contentsName(gone)]) expect(names, kept).toContain(kept);
        await cleanup();
      });
    }

    it('keeps the newest backup even when it is older than RETENTION_DAYS, and RETENTION_MIN_COUNT newest', async () => {
      const { storage, cleanup } = await backend.create();
      const newest = await putBackup(storage, 30);
      const second = await putBackup(storage, 31);
      const third = await putBackup(storage, 32);
      const index = new BackupIndex(storage, { namePrefix: 'backup', database: 'app' }, logger);
      expect(await pruneBackups({ storage, index, policy: policyOf({ days: 7, minCount: 2 }), logger, now: NOW })).toEqual([third]);
      expect(await pruneBackups({ storage, index, policy: policyOf({ days: 0, minCount: 1 }), logger, now: NOW })).toEqual([second]);
      expect((await storage.list()).map((o) => o.name).sort()).toEqual([newest, `${newest}.meta.json`]);
      await cleanup();
    });
  });
}

for (const backend of BACKENDS) {
  describe(`${backend.name}: retention with pins, GFS rules and the dry run`, () => {
    it('never deletes a pinned backup, also one pinned by another instance after the listing; removes the pin with its backup', async () => {
      const { storage, cleanup } = await backend.create();
      const fresh = await putBackup(storage, 0);
      const pinned = await putBackup(storage, 365);
      const pinnedLate = await putBackup(storage, 300);
      const unpinned = await putBackup(storage, 200);
      await storage.putSmall(pinName(pinned), Buffer.from(JSON.stringify({ format: 1, backupId: pinned, at: NOW.toISOString(), reason: 'audit' })));
      // A pin left without its backup's dump and sidecar is a leftover, like the other companions.
      const gone = idAt(new Date(NOW.getTime() - 400 * DAY));
      await storage.putSmall(pinName(gone), Buffer.from('{}'));
      // Another instance pins `pinnedLate` just after this one listed.
      let listed = false;
      const racing = storageWith(storage, {
        list: async () => {
          const objects = await storage.list();
          if (!listed) await storage.putSmall(pinName(pinnedLate), Buffer.from('not even JSON: a pin protects by existing'));
          listed = true;
          return objects;
        },
      });
      const index = new BackupIndex(racing, { namePrefix: 'backup', database: 'app' }, logger);
      expect(await pruneBackups({ storage: racing, index, policy: policyOf({ days: 1 }), logger, now: NOW })).toEqual([unpinned]);
      expect(index.pinOf(pinned)).toEqual({ at: NOW.toISOString(), reason: 'audit' });
      const names = (await storage.list()).map((o) => o.name);
      for (const kept of [fresh, pinned, sidecarName(pinned), pinName(pinned), pinnedLate, sidecarName(pinnedLate)]) expect(names, kept).toContain(kept);
      expect(names).not.toContain(unpinned);
      expect((await index.refresh()).orphans.map((o) => o.name)).toEqual([pinName(gone)]);

      // Unpinned, it goes at the next run, with its pin.
      await storage.delete(pinName(pinned));
      expect(await pruneBackups({ storage, index, policy: policyOf({ days: 1 }), logger, now: NOW })).toEqual([pinned]);
      const after = (await storage.list()).map((o) => o.name);
      for (const removed of [pinned, sidecarName(pinned), pinName(pinned)]) expect(after).not.toContain(removed);
      await cleanup();
    });

    it('GFS rules keep the newest of each period over a year; the dry run deletes nothing and names what a real run then deletes', async () => {
      const { storage, cleanup } = await backend.create();
      const ids: string[] = [];
      for (let days = 0; days < 365; days += 3) ids.push(await putBackup(storage, days));
      const policy = policyOf({ days: 0, keepDaily: 5, keepMonthly: 6, keepYearly: 2 });
      const index = new BackupIndex(storage, { namePrefix: 'backup', database: 'app' }, logger);
      const { logger: dryLogger, lines } = captureLogger();
      const wouldDelete = await pruneBackups({ storage, index, policy: { ...policy, dryRun: true }, logger: dryLogger, now: NOW });
      expect((await storage.list()).length).toBe(ids.length * 2);
      expect(lines.filter((l) => l.message === 'retention dry run: would delete a backup').map((l) => l.wouldDeleteBackupId)).toEqual(wouldDelete);
      const { logger: realLogger, lines: realLines } = captureLogger();
      const deleted = await pruneBackups({ storage, index, policy, logger: realLogger, now: NOW });
      expect(deleted).toEqual(wouldDelete);
      expect(realLines.filter((l) => l.message === 'retention deleted a backup').map((l) => [l.deletedBackupId, l.reasons, l.rule])).toEqual(
        deleted.map((id) => [id, ['expired'], 'RETENTION_DAYS=0, RETENTION_MIN_COUNT=1, RETENTION_KEEP_DAILY=5, RETENTION_KEEP_MONTHLY=6, RETENTION_KEEP_YEARLY=2']),
      );
      // 5 daily + the newest of each of 6 months (the first is today's) + the newest of 2025 (2026's is today's).
      const kept = index.list().map((b) => b.createdAt.slice(0, 10));
      expect(kept).toEqual(['2026-05-20', '2026-05-17', '2026-05-14', '2026-05-11', '2026-05-08', '2026-04-29', '2026-03-30', '2026-02-28', '2026-01-29', '2025-12-30']);
      expect((await storage.list()).length).toBe(kept.length * 2);
      await cleanup();
    });
  });
}

describe('retention when the listing fails', () => {
  it('deletes nothing while S3 is down, and prunes once it is back', async () => {
    const storage = new S3Storage({
      bucket: s3.bucket, prefix: 'retention-down', endpoint: s3.endpoint, region: s3.region, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, sessionToken: null }, connectTimeoutMs: 10_000, requestTimeoutMs: 60_000, partSizeBytes: null,
    });
    const newest = await putBackup(storage, 1);
    const old = await putBackup(storage, 30);
    const index = new BackupIndex(storage, { namePrefix: 'backup', database: 'app' }, logger);
    await index.refresh();
    await s3.stop();
    await expect(pruneBackups({ storage, index, policy: policyOf({ days: 7, minCount: 1 }), logger, now: NOW })).rejects.toThrow();
    await s3.start();
    expect((await storage.list()).map((o) => o.name).sort()).toEqual([newest, `${newest}.meta.json`, old, `${old}.meta.json`].sort());
    expect(await pruneBackups({ storage, index, policy: policyOf({ days: 7, minCount: 1 }), logger, now: NOW })).toEqual([old]);
  });
});
