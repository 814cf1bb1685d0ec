// pin, unpin and retentionPlan against the built service (a child process, real PostgreSQL and
// pg_dump, local storage): what the SDK returns is what the service stored and will act on.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startPostgres, startService, type PostgresCluster, type ServiceProcess } from '../../test/harness/index.js';
import { createClient, type BackupServiceClient } from './client.js';
import { PinRecordSchema, type Backup } from './generated/contract/index.js';

const TOKEN = randomBytes(32).toString('hex');
/** A backup from long before the retention window, written beside the service's own before it starts. */
const OLD_ID = 'backup_20200101T000000Z.sql.gz';
const OLD_CREATED_AT = '2020-01-01T00:00:05Z';

let pg: PostgresCluster | undefined;
let svc: ServiceProcess | undefined;
let dir: string;
let client: BackupServiceClient;
let requests = 0;
/** The backup the service took. */
let fresh: Backup;

beforeAll(async () => {
  pg = await startPostgres({ database: 'app' });
  dir = await mkdtemp(join(tmpdir(), 'sdk-pins-'));
  await writeFile(join(dir, OLD_ID), 'old dump');
  await writeFile(
    join(dir, `${OLD_ID}.meta.json`),
    JSON.stringify({
      id: OLD_ID, createdAt: OLD_CREATED_AT, sizeBytes: 8, sha256: 'a'.repeat(64), pgVersion: '15.18', durationMs: 10, triggeredBy: 'scheduler',
      pgDumpVersion: '15.18', uncompressedSizeBytes: 10, compression: { format: 'gzip', level: 6 }, database: 'app', serviceVersion: '0.1.0', format: 'plain',
    }),
  );
  svc = await startService(
    {
      DB_HOST: pg.host, DB_PORT: String(pg.port), DB_NAME: 'app', DB_USER: pg.user, DB_PASSWORD: pg.password,
      API_TOKEN: TOKEN, HTTP_PORT: String(await freePort()), STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: dir,
      // A dry run, so the backup below leaves OLD_ID in place for the plan to judge.
      RETENTION_DAYS: '3', RETENTION_KEEP_DAILY: '1', RETENTION_DRY_RUN: 'true',
    },
    { waitFor: 'healthy' },
  );
  const counting: typeof fetch = (input, init) => {
    requests++;
    return fetch(input, init);
  };
  client = createClient({ baseUrl: svc.baseUrl, token: TOKEN, fetch: counting });
  const started = await client.triggerBackup();
  if (started.kind !== 'started') throw new Error('a backup was already running');
  const job = await client.waitForJob(started.job.jobId, { intervalMs: 100, timeoutMs: 60_000 });
  if (job.status !== 'succeeded' || job.backupId === null) throw new Error(`backup failed: ${job.errorMessage}`);
  const listed = (await client.listBackups()).find((b) => b.id === job.backupId);
  if (!listed) throw new Error(`${job.backupId} is not listed`);
  fresh = listed;
});

afterAll(async () => {
  await svc?.stop('SIGTERM', 30_000).catch(() => svc?.kill());
  await pg?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function pinRecord(id: string) {
  return PinRecordSchema.parse(JSON.parse(await readFile(join(dir, `${id}.pin.json`), 'utf8')));
}

describe('pin, unpin, retentionPlan (built service, local storage)', () => {
  it('the plan: the policy from RETENTION_*, the new backup kept by every rule that keeps it, the old one expired', async () => {
    const before = Date.now();
    const plan = await client.retentionPlan();
    expect(plan.policy).toEqual({ days: 3, minCount: 1, keepDaily: 1, keepWeekly: 0, keepMonthly: 0, keepYearly: 0, keepNewestVerified: false, dryRun: true });
    expect(plan.policy).toEqual((await client.info()).retention);
    expect(Math.abs(Date.parse(plan.evaluatedAt) - before)).toBeLessThan(10_000);
    expect(plan.backups).toEqual([
      { id: fresh.id, createdAt: fresh.createdAt, action: 'keep', reasons: ['newest success', 'younger than 3 days', `daily ${fresh.createdAt.slice(0, 10)}`] },
      { id: OLD_ID, createdAt: OLD_CREATED_AT, action: 'delete', reasons: ['expired'] },
    ]);
  });

  it('pins without a reason, then with one (re-pinning replaces it), stores <id>.pin.json, lists it, and the plan keeps the backup as pinned', async () => {
    expect(fresh.pinned).toBeNull();
    const plain = await client.pin(OLD_ID);
    expect(plain).toMatchObject({ id: OLD_ID, createdAt: OLD_CREATED_AT, pinned: { at: expect.any(String), reason: null } });
    expect(await pinRecord(OLD_ID)).toEqual({ format: 1, backupId: OLD_ID, at: plain.pinned?.at, reason: null });

    const first = await client.pin(OLD_ID, { reason: 'before the 2.0 migration' });
    expect(first.pinned?.reason).toBe('before the 2.0 migration');
    const again = await client.pin(OLD_ID, { reason: 'audit 2026' });
    expect(again.pinned?.reason).toBe('audit 2026');
    expect(Date.parse(again.pinned?.at ?? '')).toBeGreaterThanOrEqual(Date.parse(first.pinned?.at ?? ''));
    expect(await pinRecord(OLD_ID)).toEqual({ format: 1, backupId: OLD_ID, ...again.pinned });

    const listed = await client.listBackups();
    expect(listed.map((b) => [b.id, b.pinned])).toEqual([
      [fresh.id, null],
      [OLD_ID, again.pinned],
    ]);
    expect((await client.retentionPlan()).backups.find((b) => b.id === OLD_ID)).toMatchObject({ action: 'keep', reasons: ['pinned'] });
  });

  it('unpins: pinned null, the pin file gone, the plan expires the backup again; unpinning an unpinned backup is no error', async () => {
    await client.pin(OLD_ID, { reason: 'for a moment' });
    const unpinned = await client.unpin(OLD_ID);
    expect(unpinned).toMatchObject({ id: OLD_ID, pinned: null });
    expect(existsSync(join(dir, `${OLD_ID}.pin.json`))).toBe(false);
    expect((await client.listBackups()).find((b) => b.id === OLD_ID)?.pinned).toBeNull();
    expect((await client.retentionPlan()).backups.find((b) => b.id === OLD_ID)).toMatchObject({ action: 'delete', reasons: ['expired'] });
    expect(await client.unpin(fresh.id)).toMatchObject({ id: fresh.id, pinned: null });
  });

  it('throws NOT_FOUND (404) for a well-formed id the service does not list, and writes no pin for it', async () => {
    const unknown = 'backup_20210101T000000Z.sql.gz';
    for (const call of [() => client.pin(unknown, { reason: 'x' }), () => client.unpin(unknown)]) {
      const err = await call().catch((e: unknown) => e);
      expect(err).toMatchObject({ name: 'BackupServiceError', code: 'NOT_FOUND', status: 404, problem: { status: 404 } });
    }
    expect(existsSync(join(dir, `${unknown}.pin.json`))).toBe(false);
  });

  it('refuses what is not a backup id before any request (invariant 7)', async () => {
    const sent = requests;
    for (const id of ['../../etc/passwd', `${fresh.id}.meta.json`, 'latest']) {
      await expect(client.pin(id, { reason: 'x' }), id).rejects.toMatchObject({ code: 'NOT_FOUND', status: null });
      await expect(client.unpin(id), id).rejects.toMatchObject({ code: 'NOT_FOUND', status: null });
    }
    expect(requests).toBe(sent);
  });
});
