// The scheduler, retention and the backup index as they run inside the built service.
import { randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backup } from '@db-backup-service/contract';
import { api, freePort, pollUntil, startPostgres, startService, type PostgresCluster, type ServiceProcess } from './harness/index.js';

const TOKEN = randomBytes(32).toString('hex');

let pg: PostgresCluster;
beforeAll(async () => {
  pg = await startPostgres({ database: 'app' });
  await pg.query('CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000) g', [], 'app');
});
afterAll(() => pg?.destroy());

async function service(dir: string, env: Record<string, string> = {}): Promise<ServiceProcess> {
  return startService(
    {
      DB_HOST: pg.host, DB_PORT: String(pg.port), DB_NAME: 'app', DB_USER: pg.user, DB_PASSWORD: pg.password,
      STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: dir, API_TOKEN: TOKEN, HTTP_PORT: String(await freePort()), ...env,
    },
    { waitFor: 'healthy' },
  );
}

const info = async (svc: ServiceProcess) => (await (await fetch(`${svc.baseUrl}/info`)).json()) as { schedule: { nextRunAt: string | null; cron: string | null } };

describe('scheduled backups', () => {
  it('fire every BACKUP_INTERVAL, and a restart keeps the clock of the newest backup', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'schedule-'));
    const svc = await service(dir, { BACKUP_INTERVAL: '2s' });
    const A = api(svc.baseUrl, TOKEN);
    const list = await pollUntil(
      async () => {
        const backups = await A.json<Backup[]>('/api/v1/backups');
        return backups.filter((b) => b.triggeredBy === 'scheduler').length >= 2 ? backups : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 200, what: 'two scheduled backups' },
    );
    expect(list.every((b) => b.triggeredBy === 'scheduler')).toBe(true);
    await svc.stop();

    // Restarted with a long interval: the next run is the newest backup's time plus the interval.
    const again = await service(dir, { BACKUP_INTERVAL: '1h' });
    const newest = (await api(again.baseUrl, TOKEN).json<Backup[]>('/api/v1/backups'))[0]!;
    const schedule = (await info(again)).schedule;
    expect(schedule.nextRunAt, JSON.stringify(schedule)).not.toBeNull();
    expect(Date.parse(schedule.nextRunAt!)).toBe(Date.parse(newest.createdAt) + 3_600_000);
    await again.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('follow BACKUP_CRON instead of the interval', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cron-'));
    const svc = await service(dir, { BACKUP_CRON: '*/2 * * * * *', BACKUP_INTERVAL: '24h' });
    expect((await info(svc)).schedule.cron).toBe('*/2 * * * * *');
    const A = api(svc.baseUrl, TOKEN);
    await pollUntil(async () => ((await A.json<Backup[]>('/api/v1/backups')).filter((b) => b.triggeredBy === 'scheduler').length >= 2 ? true : undefined), {
      timeoutMs: 60_000, intervalMs: 200, what: 'two cron backups',
    });
    await svc.stop();
    await rm(dir, { recursive: true, force: true });
  });
});

describe('retention and the index inside the service', () => {
  let dir: string;
  let svc: ServiceProcess;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'index-'));
    svc = await service(dir, { RETENTION_DAYS: '0', RETENTION_MIN_COUNT: '2', INDEX_REFRESH_INTERVAL: '1s' });
  });
  afterAll(async () => {
    await svc?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('prunes after each backup down to RETENTION_MIN_COUNT and counts deletions in /metrics', async () => {
    const A = api(svc.baseUrl, TOKEN);
    for (let i = 0; i < 3; i++) expect((await A.backup()).status).toBe('succeeded');
    const list = await pollUntil(async () => {
      const backups = await A.json<Backup[]>('/api/v1/backups');
      return backups.length === 2 ? backups : undefined;
    }, { timeoutMs: 20_000, what: 'retention to leave two backups' });
    expect(list).toHaveLength(2);
    // Retention drops a backup from the index before it deletes the file, counts and logs it: the
    // list can show two backups before the counter moves and the log line is written.
    await svc.waitForLog('retention deleted a backup', 30_000);
    const metrics = await (await fetch(`${svc.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/dbbackup_retention_deleted_total [1-9]/);
    // Each deletion line names the backup it deleted, and carries no job's fields: retention runs
    // outside the finished job's log context (M2).
    const deletions = svc.logs.filter((l) => l.includes('retention deleted a backup')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(deletions.length).toBeGreaterThan(0);
    for (const line of deletions) {
      expect(line.deletedBackupId).toMatch(/^backup_\d{8}T\d{6}Z/);
      expect(list.map((b) => b.id)).not.toContain(line.deletedBackupId);
      expect(line).not.toHaveProperty('jobId');
      expect(line).not.toHaveProperty('backupId');
    }
  });

  it('picks up backups added and removed by others on its periodic refresh', async () => {
    const A = api(svc.baseUrl, TOKEN);
    const source = (await A.backup()).backupId!;
    // Another instance's backup: a copy under a different (valid) id, sidecar written last.
    const copy = 'backup_20991231T235959Z.sql.gz';
    await copyFile(join(dir, source), join(dir, copy));
    const sidecar = JSON.parse(await readFile(join(dir, `${source}.meta.json`), 'utf8')) as Backup;
    await writeFile(join(dir, `${copy}.meta.json`), JSON.stringify({ ...sidecar, id: copy, createdAt: '2099-12-31T23:59:59.000Z' }));
    await pollUntil(async () => ((await A.json<Backup[]>('/api/v1/backups'))[0]?.id === copy ? true : undefined), { timeoutMs: 20_000, what: 'the copy to list' });
    await unlink(join(dir, `${copy}.meta.json`));
    await pollUntil(async () => ((await A.json<Backup[]>('/api/v1/backups')).some((b) => b.id === copy) ? undefined : true), { timeoutMs: 20_000, what: 'the copy to disappear' });
  });

  it('attaches jobId, backupId and triggeredBy to every log line of a job', async () => {
    const job = await api(svc.baseUrl, TOKEN).backup();
    const lines = svc.logs.filter((l) => l.includes(job.jobId)).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.length).toBeGreaterThanOrEqual(3);
    for (const line of lines) expect(line).toMatchObject({ jobId: job.jobId, triggeredBy: 'api' });
    const stored = lines.find((l) => l.message === 'backup succeeded');
    expect(stored).toMatchObject({ backupId: job.backupId, durationMs: expect.any(Number) });
  });
});
