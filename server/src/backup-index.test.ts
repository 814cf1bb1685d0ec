// The index against real storage (a local directory and the S3 emulator): whose backups it lists
// (invariant 11), the reference service's sidecars, invalid sidecars, and refreshes racing writes (L1).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupSidecarSchema, pinName, sidecarName, type DrillRecord } from '@db-backup-service/contract';
import { startS3, type S3Harness } from '../../test/harness/index.js';
import { BackupIndex } from './backup-index.js';
import { storeDrillRecord } from './drill/drill-backup.js';
import { captureLogger, idAt, ownSidecar, putBackup, referenceSidecar } from './ownership.test-helper.js';
import { pruneBackups } from './retention/prune.js';
import { policyOf } from './retention/policy.test-helper.js';
import { LocalStorage } from './storage/local-storage.js';
import { S3Storage } from './storage/s3-storage.js';
import type { Storage } from './storage/storage.js';
import { storageWith } from './storage/storage-with.test-helper.js';

const DAY = 86_400_000;
const NOW = new Date('2026-05-20T12:00:00Z');
const daysAgo = (n: number) => new Date(NOW.getTime() - n * DAY);
const OWNER = { namePrefix: 'backup', database: 'app' };

let s3: S3Harness;
beforeAll(async () => {
  s3 = await startS3();
});
afterAll(() => s3?.destroy());

const BACKENDS: { name: string; create(): Promise<{ storage: Storage; cleanup(): Promise<void> }> }[] = [
  {
    name: 'local',
    async create() {
      const dir = await mkdtemp(join(tmpdir(), 'index-'));
      return { storage: await LocalStorage.open(dir), cleanup: () => rm(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: 's3',
    async create() {
      const prefix = `index-${Math.random().toString(36).slice(2)}`;
      const storage = new S3Storage({
        bucket: s3.bucket, prefix, endpoint: s3.endpoint, region: s3.region, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, sessionToken: null }, connectTimeoutMs: 10_000, requestTimeoutMs: 60_000, partSizeBytes: null,
      });
      return { storage, cleanup: async () => undefined };
    },
  },
];

for (const backend of BACKENDS) {
  describe(`${backend.name}: the index`, () => {
    it("lists the reference service's backups and ours, not another database's (counted instead), and prunes only its own", async () => {
      const { storage, cleanup } = await backend.create();
      const reference = idAt(daysAgo(30));
      const ours = idAt(daysAgo(1));
      const oursOld = idAt(daysAgo(20));
      const foreignNewest = idAt(daysAgo(0.5));
      const foreignOld = idAt(daysAgo(25));
      await putBackup(storage, reference, (dump) => referenceSidecar(reference, daysAgo(30), dump));
      await putBackup(storage, ours, (dump) => ownSidecar(ours, daysAgo(1), dump, 'app'));
      await putBackup(storage, oursOld, (dump) => ownSidecar(oursOld, daysAgo(20), dump, 'app'));
      await putBackup(storage, foreignNewest, (dump) => ownSidecar(foreignNewest, daysAgo(0.5), dump, 'billing'));
      await putBackup(storage, foreignOld, (dump) => ownSidecar(foreignOld, daysAgo(25), dump, 'billing'));

      const { logger, lines } = captureLogger();
      const index = new BackupIndex(storage, OWNER, logger);
      const snapshot = await index.refresh();
      expect(index.list().map((b) => b.id)).toEqual([ours, oursOld, reference]);
      expect(index.get(reference)).toMatchObject({ database: 'unknown', pgDumpVersion: 'unknown', compression: { format: 'gzip', level: null }, format: 'plain' });
      expect(index.foreignCount).toBe(2);
      expect(snapshot.orphans).toEqual([]);
      await index.refresh();
      // One warning about the foreign backups, not one per refresh.
      expect(lines.filter((l) => String(l.message).includes('another database'))).toEqual([expect.objectContaining({ level: 'warn', foreignBackups: 2, database: 'app' })]);

      // Retention: the newest (foreign) backup does not count as our latest; another database's expired ones stay.
      const deleted = await pruneBackups({ storage, index, policy: policyOf({ days: 7, minCount: 1 }), logger, now: NOW });
      expect(deleted.sort()).toEqual([oursOld, reference].sort());
      const names = (await storage.list()).map((o) => o.name);
      for (const kept of [ours, foreignNewest, foreignOld]) expect(names).toEqual(expect.arrayContaining([kept, sidecarName(kept)]));
      for (const gone of [oursOld, reference]) expect(names).not.toContain(sidecarName(gone));
      await cleanup();
    });

    it('reports an invalid sidecar once (name and reason), and never treats it or its dump as garbage', async () => {
      const { storage, cleanup } = await backend.create();
      const notJson = idAt(daysAgo(40));
      const incomplete = idAt(daysAgo(41));
      const good = idAt(daysAgo(2));
      await putBackup(storage, notJson, () => '{"id": "truncated');
      await putBackup(storage, incomplete, (dump) => {
        const { sha256: _, ...rest } = referenceSidecar(incomplete, daysAgo(41), dump);
        return rest;
      });
      await putBackup(storage, good, (dump) => ownSidecar(good, daysAgo(2), dump, 'app'));
      const { logger, lines } = captureLogger();
      const index = new BackupIndex(storage, OWNER, logger);
      for (let i = 0; i < 3; i++) {
        const snapshot = await index.refresh();
        expect(snapshot.orphans).toEqual([]);
      }
      expect(index.list().map((b) => b.id)).toEqual([good]);
      const warnings = lines.filter((l) => String(l.message).includes('sidecar is not valid')).sort((a, b) => String(b.sidecar).localeCompare(String(a.sidecar)));
      expect(warnings).toEqual([
        expect.objectContaining({ sidecar: sidecarName(notJson), reason: 'not valid JSON' }),
        expect.objectContaining({ sidecar: sidecarName(incomplete), reason: expect.stringMatching(/sha256/) }),
      ]);
      await pruneBackups({ storage, index, policy: policyOf({ days: 0, minCount: 1 }), logger, now: NOW });
      const names = (await storage.list()).map((o) => o.name);
      for (const kept of [notJson, incomplete]) expect(names).toEqual(expect.arrayContaining([kept, sidecarName(kept)]));
      await cleanup();
    });
  });
}

describe('local: refreshes racing writes (L1)', () => {
  it('a backup added while a refresh reads storage stays listed, also when refreshes queue up', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'index-race-'));
    const storage = await LocalStorage.open(dir);
    const existing = idAt(daysAgo(3));
    await putBackup(storage, existing, (dump) => ownSidecar(existing, daysAgo(3), dump, 'app'));
    const index = new BackupIndex(storage, OWNER, captureLogger().logger);
    // The job's backup is added after the refresh began listing (here: before its files even exist,
    // the extreme case of a listing that predates the sidecar).
    const added = BackupSidecarSchema.parse(ownSidecar(idAt(daysAgo(0)), daysAgo(0), Buffer.from('x'), 'app'));
    const first = index.refresh();
    const second = index.refresh();
    index.add(added);
    await Promise.all([first, second]);
    expect(index.list().map((b) => b.id)).toEqual([added.id, existing]);
    // Removed while a refresh is under way (retention): stays removed although that listing still has it.
    const third = index.refresh();
    index.remove(existing);
    await third;
    expect(index.has(existing)).toBe(false);
    await rm(dir, { recursive: true, force: true });
  });

  it('a sidecar read that fails for a moment keeps the backup it describes listed', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'index-flaky-'));
    const real = await LocalStorage.open(dir);
    const id = idAt(daysAgo(1));
    const dump = await putBackup(real, id, (d) => ownSidecar(id, daysAgo(1), d, 'app'));
    // Injection point over the real directory: the next read of this sidecar fails once, as a
    // network blip would on S3.
    let failNext = true;
    const getSmall: Storage['getSmall'] = async (name) => {
      if (name === sidecarName(id) && failNext) {
        failNext = false;
        throw new Error('connection reset');
      }
      return real.getSmall(name);
    };
    const storage = storageWith(real, { getSmall });
    const { logger, lines } = captureLogger();
    const index = new BackupIndex(storage, OWNER, logger);
    // The job wrote it and added it: the index has it without having read its sidecar yet.
    index.add(BackupSidecarSchema.parse(ownSidecar(id, daysAgo(1), dump, 'app')));
    await index.refresh();
    expect(index.has(id)).toBe(true);
    expect(lines).toContainEqual(expect.objectContaining({ message: expect.stringMatching(/could not read a sidecar/), sidecar: sidecarName(id) }));
    await index.refresh();
    expect(index.has(id)).toBe(true);
    await rm(dir, { recursive: true, force: true });
  });
});

describe('local: drills in the index', () => {
  function record(backupId: string, status: DrillRecord['status'], at: Date): DrillRecord {
    return {
      format: 1, backupId, target: 'server', status, at: at.toISOString(), durationMs: 5, tablesChecked: status === 'passed' ? 2 : 0, rowsChecked: status === 'passed' ? 10 : 0,
      detail: status === 'passed' ? null : `${status}: why`, serverVersion: null, mismatches: [], query: null,
    };
  }

  it('only a passed drill verifies a backup: a skipped one (an encrypted backup, no identity) never counts, here or read back from storage', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'index-drills-'));
    const storage = await LocalStorage.open(dir);
    const [oldest, middle, newest] = [3, 2, 1].map((n) => idAt(daysAgo(n))) as [string, string, string];
    for (const [i, id] of [oldest, middle, newest].entries()) await putBackup(storage, id, (dump) => ownSidecar(id, daysAgo(3 - i), dump, 'app'));
    const { logger } = captureLogger();
    const index = new BackupIndex(storage, OWNER, logger);
    await index.refresh();
    const drills = [record(oldest, 'passed', daysAgo(0.3)), record(middle, 'failed', daysAgo(0.2)), record(newest, 'skipped', daysAgo(0.1))];
    for (const r of drills) {
      index.setDrill(r);
      await storeDrillRecord({ storage, logger }, r);
    }
    const check = (i: BackupIndex) => {
      expect(i.lastVerified()?.id).toBe(oldest);
      expect(i.drillOf(newest)).toMatchObject({ status: 'skipped', detail: 'skipped: why' });
      // /info's drill.last: the newest drill, skipped or not, so that a skip is seen.
      expect(i.lastDrill()).toMatchObject({ backupId: newest, status: 'skipped' });
    };
    check(index);
    const restarted = new BackupIndex(storage, OWNER, logger);
    await restarted.refresh();
    check(restarted);

    // The newest drill of a backup is what counts: a skip after a pass leaves it unproven.
    const skippedLater = record(oldest, 'skipped', daysAgo(0.05));
    restarted.setDrill(skippedLater);
    await storeDrillRecord({ storage, logger }, skippedLater);
    expect(restarted.lastVerified()).toBeNull();
    const again = new BackupIndex(storage, OWNER, logger);
    await again.refresh();
    expect(again.lastVerified()).toBeNull();
    expect(again.lastDrill()).toMatchObject({ backupId: oldest, status: 'skipped' });
    await rm(dir, { recursive: true, force: true });
  });
});

describe('local: pins in the index', () => {
  const pinJson = (backupId: string, reason: string | null) => Buffer.from(JSON.stringify({ format: 1, backupId, at: NOW.toISOString(), reason }));

  it("follows pins set and removed behind its back, and a refresh that began before this service's own pin does not undo it", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'index-pins-'));
    const storage = await LocalStorage.open(dir);
    const [older, newer] = [idAt(daysAgo(2)), idAt(daysAgo(1))];
    await putBackup(storage, older, (dump) => ownSidecar(older, daysAgo(2), dump, 'app'));
    await putBackup(storage, newer, (dump) => ownSidecar(newer, daysAgo(1), dump, 'app'));
    const { logger, lines } = captureLogger();
    const index = new BackupIndex(storage, OWNER, logger);
    await storage.putSmall(pinName(older), pinJson(older, 'set by another instance'));
    await index.refresh();
    expect(index.pinOf(older)).toEqual({ at: NOW.toISOString(), reason: 'set by another instance' });
    expect(index.listJson().toString()).toContain('"reason":"set by another instance"');
    // Removed by another instance: gone at the next refresh.
    await storage.delete(pinName(older));
    await index.refresh();
    expect(index.pinOf(older)).toBeNull();

    // This service pins while a refresh (listed before the pin file existed) is under way.
    const refreshing = index.refresh();
    await storage.putSmall(pinName(newer), pinJson(newer, 'mine'));
    index.setPin(newer, { at: NOW.toISOString(), reason: 'mine' });
    await refreshing;
    expect(index.pinOf(newer)).toMatchObject({ reason: 'mine' });

    // An invalid pin file (written by hand, not JSON) still pins, since it was written; reported once, not on every refresh.
    await storage.putSmall(pinName(older), Buffer.from('keep this one'));
    await index.refresh();
    await index.refresh();
    expect(lines.filter((l) => l.message === 'a pin that is not valid still counts')).toHaveLength(1);
    const stat = await storage.stat(pinName(older));
    expect(index.pinOf(older)).toEqual({ at: stat!.lastModified.toISOString(), reason: null });

    // A pin that cannot be read at all (storage fails on it) is unknown but still pins for retention, until this service unpins.
    const failing = storageWith(storage, { getSmall: (name) => (name.endsWith('.pin.json') ? Promise.reject(new Error('EIO')) : storage.getSmall(name)) });
    const unreadable = new BackupIndex(failing, OWNER, logger);
    await unreadable.refresh();
    expect([unreadable.pinOf(older), unreadable.isPinned(older), unreadable.isPinned(idAt(daysAgo(30)))]).toEqual([null, true, false]);
    unreadable.setPin(older, null);
    expect(unreadable.isPinned(older)).toBe(false);
    await rm(dir, { recursive: true, force: true });
  });
});
