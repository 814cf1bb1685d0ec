// Failures before the restore: they make a failed drill record, with the fix, and touch no server.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupSidecarSchema } from '@db-backup-service/contract';
import { loadConfig } from '../config/config.js';
import { silentLogger } from '../logger.js';
import { idAt, ownSidecar, putBackup } from '../ownership.test-helper.js';
import { LocalStorage } from '../storage/local-storage.js';
import { drillBackup } from './drill-backup.js';
import { findLocalServer } from './local-server.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'drill-backup-test-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function backupOf(fields: Record<string, unknown>, target: 'local' | 'server') {
  const own = await mkdtemp(path.join(dir, 'storage-'));
  const storage = await LocalStorage.open(own);
  const at = new Date(Date.UTC(2026, 4, 10));
  const id = idAt(at);
  let sidecar: Record<string, unknown> = {};
  await putBackup(storage, id, (dump) => (sidecar = { ...ownSidecar(id, at, dump, 'app'), ...fields }));
  const config = loadConfig({
    // Port 1: nothing listens; a drill that tried to connect would fail differently.
    DB_HOST: '127.0.0.1', DB_PORT: '1', DB_NAME: 'app', DB_USER: 'app', DB_PASSWORD: 'pw', STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: own,
    API_TOKEN: randomBytes(24).toString('hex'), RESTORE_DRILL_TARGET: target, PATH: process.env.PATH ?? '',
  });
  return { deps: { config, storage, logger: silentLogger() }, sidecar: BackupSidecarSchema.parse(sidecar) };
}

describe('drillBackup before the restore', () => {
  it.skipIf(findLocalServer('/usr/lib/postgresql') === null)('a local server older than the backup\'s fails the drill with the fix', async () => {
    const { deps, sidecar } = await backupOf({ pgVersion: '99.1' }, 'local');
    const record = await drillBackup(deps, sidecar, AbortSignal.timeout(30_000));
    expect(record).toMatchObject({ status: 'failed', target: 'local', backupId: sidecar.id, tablesChecked: 0, serverVersion: null });
    expect(record.detail).toMatch(/the local drill server \(PostgreSQL \d+, .*\) is older than the backup's server \(PostgreSQL 99\): install PostgreSQL 99 or newer under PG_CLIENTS_DIR, or set RESTORE_DRILL_TARGET=server/);
  });

  it('a sidecar that records a manifest which is missing fails the drill saying so', async () => {
    const contents = { sha256: 'a'.repeat(64), tables: 1, rows: 1, largeObjects: 0 };
    const { deps, sidecar } = await backupOf({ contents }, 'server');
    const record = await drillBackup(deps, sidecar, AbortSignal.timeout(30_000));
    expect(record).toMatchObject({ status: 'failed', detail: `the contents manifest ${sidecar.id}.contents.json is missing, but the sidecar records one` });
  });
});
