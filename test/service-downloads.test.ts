// Downloads of a large backup: a client that leaves releases the storage stream at once, and a
// storage object that breaks mid-body never reaches the client as a complete-looking file.
import { randomBytes } from 'node:crypto';
import { readdir, readlink, mkdtemp, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Job } from '@db-backup-service/contract';
import { api, freePort, pollUntil, startPostgres, startService, type Api, type PostgresCluster, type ServiceProcess } from './harness/index.js';

const TOKEN = randomBytes(32).toString('hex');

let pg: PostgresCluster;
let dir: string;
let svc: ServiceProcess;
let A: Api;
let job: Job;

/** Paths the service process has open (its /proc fd table). */
async function openFiles(pid: number): Promise<string[]> {
  const fds = await readdir(`/proc/${pid}/fd`);
  const targets = await Promise.all(fds.map((fd) => readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')));
  return targets.filter(Boolean);
}

beforeAll(async () => {
  pg = await startPostgres({ database: 'app' });
  // ~50 MB of incompressible bytes: the dump's hex text compresses only to about half.
  await pg.query(
    `CREATE TABLE blob (id int PRIMARY KEY, data bytea);
     INSERT INTO blob SELECT g, (SELECT decode(string_agg(md5(random()::text || g || i), ''), 'hex') FROM generate_series(1, 1000) i)
     FROM generate_series(1, 3300) g`,
    [],
    'app',
  );
  dir = await mkdtemp(join(tmpdir(), 'downloads-'));
  svc = await startService(
    {
      DB_HOST: pg.host, DB_PORT: String(pg.port), DB_NAME: 'app', DB_USER: pg.user, DB_PASSWORD: pg.password,
      STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: dir, API_TOKEN: TOKEN, HTTP_PORT: String(await freePort()), BACKUP_COMPRESSION_LEVEL: '1',
    },
    { waitFor: 'healthy' },
  );
  A = api(svc.baseUrl, TOKEN);
  job = await A.backup();
  expect(job.status).toBe('succeeded');
});
afterAll(async () => {
  await svc?.stop();
  await pg?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('large downloads', () => {
  it('releases the storage stream as soon as the client disconnects mid-body', async () => {
    const file = join(dir, job.backupId!);
    const controller = new AbortController();
    const res = await A.request(`/api/v1/backups/${job.backupId}/download`, { signal: controller.signal });
    expect(Number(res.headers.get('content-length'))).toBeGreaterThan(50 * 1024 * 1024);
    const reader = res.body!.getReader();
    let received = 0;
    while (received < 1024 * 1024) received += (await reader.read()).value?.length ?? 0;
    // Mid-body: the service is reading the backup file right now.
    expect(await openFiles(svc.pid)).toContain(file);
    controller.abort();
    await pollUntil(async () => ((await openFiles(svc.pid)).includes(file) ? undefined : true), {
      timeoutMs: 5_000, intervalMs: 20, what: 'the service to close the backup file',
    });
    await pollUntil(async () => (svc.logs.some((l) => l.includes('"aborted":true')) ? true : undefined), { timeoutMs: 5_000, what: 'the access log of the aborted download' });
    // The service is fine afterwards.
    expect((await fetch(`${svc.baseUrl}/health`)).status).toBe(200);
  });

  it('cuts the response when the stored object ends early, so the client never sees a complete file', async () => {
    const victim = await A.backup();
    const res = await A.request(`/api/v1/backups/${victim.backupId}/download`);
    const declared = Number(res.headers.get('content-length'));
    const reader = res.body!.getReader();
    let received = 0;
    while (received < 1024 * 1024) received += (await reader.read()).value?.length ?? 0;
    // Truncate the object behind the service's back while it streams.
    await truncate(join(dir, victim.backupId!), 10 * 1024 * 1024);
    const outcome = await (async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return 'complete';
          received += value.length;
        }
      } catch {
        return 'error';
      }
    })();
    expect(outcome).toBe('error');
    expect(received).toBeLessThan(declared);
    // The client sees the cut before the service's log line about it has crossed the pipe: wait for it.
    await svc.waitForLog('storage stream ended early', 30_000);
  });
});
