// Deadlines and shutdown of the built service (a child process) against a real PostgreSQL: a
// backup held up by a table lock is aborted at BACKUP_TIMEOUT, fails when its lock connection is
// killed, and a second SIGTERM waits for the same drain (invariant 12, review M3, L3, L6, section 3).
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Job } from '@db-backup-service/contract';
import { api, freePort, pollUntil, startPostgres, startService, type PostgresCluster, type ServiceProcess } from './harness/index.js';

const TOKEN = randomBytes(32).toString('hex');

let cluster: PostgresCluster;
beforeAll(async () => {
  cluster = await startPostgres({ database: 'app' });
  await cluster.query('CREATE TABLE busy (id int PRIMARY KEY); INSERT INTO busy SELECT generate_series(1, 1000)', [], 'app');
});
afterAll(() => cluster?.destroy());

async function service(dir: string, env: Record<string, string>): Promise<ServiceProcess> {
  return startService(
    {
      DB_HOST: cluster.host, DB_PORT: String(cluster.port), DB_NAME: 'app', DB_USER: cluster.user, DB_PASSWORD: cluster.password,
      STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: dir, API_TOKEN: TOKEN, HTTP_PORT: String(await freePort()), BACKUP_COMPRESSION_LEVEL: '1',
      // pg_dump waits for the lock for as long as the test needs it to.
      BACKUP_LOCK_WAIT_TIMEOUT: '10m', ...env,
    },
    { waitFor: 'healthy' },
  );
}

/** A migration's lock on `busy`, until release(): pg_dump's ACCESS SHARE request queues behind it. */
async function lockTable(): Promise<{ release(): Promise<void> }> {
  const holder = new pg.Client(cluster.connectionConfig('app'));
  await holder.connect();
  await holder.query('BEGIN; LOCK TABLE busy IN ACCESS EXCLUSIVE MODE');
  return { release: () => holder.end() };
}

/** pg_dump's backend is waiting for the lock on `busy`: the backup is well under way. */
const dumpWaiting = () =>
  pollUntil(
    async () => {
      const { rows } = await cluster.query<{ n: string }>(
        "SELECT count(*) AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'busy' AND NOT l.granted",
        [], 'app',
      );
      return Number(rows[0]?.n) > 0 ? true : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 100, what: 'pg_dump to wait for the table lock' },
  );

async function trigger(svc: ServiceProcess): Promise<string> {
  const res = await api(svc.baseUrl, TOKEN).request('/api/v1/backups', { method: 'POST' });
  expect(res.status).toBe(202);
  return ((await res.json()) as { jobId: string }).jobId;
}

describe('deadlines of a running backup', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'service-deadlines-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('aborts a backup at BACKUP_TIMEOUT, leaves nothing, and the next backup runs', async () => {
    const out = await mkdtemp(join(dir, 'timeout-'));
    const svc = await service(out, { BACKUP_TIMEOUT: '3s' });
    const lock = await lockTable();
    try {
      const jobId = await trigger(svc);
      const started = Date.now();
      const job: Job = await api(svc.baseUrl, TOKEN).waitForJob(jobId, 20_000);
      expect(job.status).toBe('failed');
      expect(job.errorMessage).toMatch(/^backup aborted: BACKUP_TIMEOUT \(PT3S\) reached/);
      expect(job.errorMessage?.match(/aborted/g)).toHaveLength(1);
      expect(Date.now() - started).toBeLessThan(15_000);
      expect(await readdir(out)).toEqual([]);
    } finally {
      await lock.release();
    }
    // Nothing of the aborted job blocks the next one.
    expect((await api(svc.baseUrl, TOKEN).backup({ timeoutMs: 60_000 })).status).toBe('succeeded');
    await svc.stop();
  });

  it('fails the backup when its advisory-lock connection is killed', async () => {
    const out = await mkdtemp(join(dir, 'lock-lost-'));
    const svc = await service(out, {});
    const lock = await lockTable();
    try {
      const jobId = await trigger(svc);
      await dumpWaiting();
      const { rows } = await cluster.query<{ killed: boolean }>(
        "SELECT pg_terminate_backend(pid) AS killed FROM pg_locks WHERE locktype = 'advisory' AND granted",
        [], 'app',
      );
      expect(rows.map((r) => r.killed)).toEqual([true]);
      const job = await api(svc.baseUrl, TOKEN).waitForJob(jobId, 15_000);
      expect(job.status).toBe('failed');
      expect(job.errorMessage).toMatch(/lost the connection to PostgreSQL that holds the backup lock/);
      expect(await readdir(out)).toEqual([]);
    } finally {
      await lock.release();
    }
    await svc.stop();
  });
});

describe('shutdown', () => {
  it('a second SIGTERM awaits the same drain: the running backup still finishes and the exit is clean', async () => {
    const out = await mkdtemp(join(tmpdir(), 'service-drain-'));
    const svc = await service(out, { SHUTDOWN_TIMEOUT: '60s' });
    const lock = await lockTable();
    try {
      const jobId = await trigger(svc);
      await dumpWaiting();
      svc.child.kill('SIGTERM');
      await svc.waitForLog('waiting for the running backup to finish', 10_000);
      svc.child.kill('SIGTERM');
      // The second signal is handled by the service, not by Node's default (exit at once): the
      // service is still there and still answers until its backup is done.
      await pollUntil(async () => (svc.logs.some((l) => l.includes('shutting down')) ? true : undefined), { timeoutMs: 5_000, what: 'the shutdown log' });
      expect((await cluster.query<{ n: string }>("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND granted", [], 'app')).rows[0]?.n).toBe('1');
      await lock.release();
      const exit = await svc.exited;
      expect(exit).toEqual({ code: 0, signal: null });
      expect(svc.logs.join('\n')).toContain('backup succeeded');
      expect(svc.logs.join('\n')).toContain(jobId);
    } finally {
      await lock.release().catch(() => undefined);
      await rm(out, { recursive: true, force: true });
    }
  });
});
