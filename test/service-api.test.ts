// End-to-end: the built service as a child process, real PostgreSQL and pg_dump, local storage
// and the S3 emulator, driven over HTTP exactly as an operator or a calling backend would.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backup, Job } from '@db-backup-service/contract';
import {
  api, fillVaried, fingerprint, freePort, restoreWithStockTools, startPostgres, startS3, startService,
  type Api, type PostgresCluster, type S3Harness, type ServiceProcess,
} from './harness/index.js';

const TOKEN = randomBytes(32).toString('hex');
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

const AUTHENTICATED_ROUTES: [string, string][] = [
  ['POST', '/api/v1/backups'],
  ['GET', '/api/v1/backups'],
  ['GET', '/api/v1/backups/latest'],
  ['GET', '/api/v1/backups/latest/download'],
  ['GET', '/api/v1/backups/backup_20260510T010000Z.sql.gz/download'],
  ['HEAD', '/api/v1/backups/latest/download'],
  ['GET', '/api/v1/backups/jobs/9b7c4a8e-0000-4000-8000-000000000000'],
];

interface Setup {
  pg: PostgresCluster;
  s3: S3Harness | null;
  dir: string;
  env: Record<string, string>;
}

async function setUp(backend: 'local' | 's3', extraEnv: Record<string, string> = {}, bigRows = 20_000): Promise<Setup> {
  const pg = await startPostgres({ database: 'app' });
  await fillVaried(pg, 'app', { bigRows });
  const dir = await mkdtemp(join(tmpdir(), 'svc-backups-'));
  const s3 = backend === 's3' ? await startS3() : null;
  const storageEnv: Record<string, string> = s3
    ? { STORAGE_BACKEND: 's3', S3_BUCKET: s3.bucket, S3_ENDPOINT: s3.endpoint, S3_PREFIX: 'db/backups', AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey }
    : { STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: dir };
  const env = {
    DB_HOST: pg.host, DB_PORT: String(pg.port), DB_NAME: 'app', DB_USER: pg.user, DB_PASSWORD: pg.password,
    API_TOKEN: TOKEN, HTTP_PORT: String(await freePort()), ...storageEnv, ...extraEnv,
  };
  return { pg, s3, dir, env };
}

async function tearDown(setup: Setup | undefined, ...services: (ServiceProcess | undefined)[]): Promise<void> {
  for (const svc of services) await svc?.stop('SIGTERM', 30_000).catch(() => svc.kill());
  await setup?.pg.destroy();
  await setup?.s3?.destroy();
  if (setup) await rm(setup.dir, { recursive: true, force: true });
}

/** Every secret the test gave the service: none may appear in a log line or response. */
function secretsOf(setup: Setup): string[] {
  return [setup.pg.password, TOKEN, ...(setup.s3 ? [setup.s3.secretAccessKey] : [])];
}

describe.each(['local', 's3'] as const)('%s backend: the REST API end to end', (backend) => {
  let setup: Setup;
  let svc: ServiceProcess;
  let A: Api;
  let first: Promise<Job> | undefined;
  const responses: string[] = [];
  /** A successful backup (taken once, on first use, by whichever test needs it first). */
  const aBackup = () => (first ??= A.backup());

  beforeAll(async () => {
    setup = await setUp(backend);
    svc = await startService(setup.env, { waitFor: 'healthy' });
    A = api(svc.baseUrl, TOKEN);
  });
  afterAll(async () => {
    await tearDown(setup, svc);
    const everything = [...(svc?.logs ?? []), ...responses].join('\n');
    for (const secret of setup ? secretsOf(setup) : []) expect(everything).not.toContain(secret);
  });

  it('refuses a missing, malformed or wrong token on every authenticated route with 401', async () => {
    const wrong = TOKEN.slice(0, -1) + (TOKEN.endsWith('a') ? 'b' : 'a');
    const cases: [string, Record<string, string>][] = [
      ['missing', {}],
      ['malformed', { Authorization: TOKEN }],
      ['basic', { Authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` }],
      ['wrong by one character', { Authorization: `Bearer ${wrong}` }],
      ['too long', { Authorization: `Bearer ${TOKEN}x` }],
      ['empty bearer', { Authorization: 'Bearer ' }],
    ];
    for (const [method, path] of AUTHENTICATED_ROUTES) {
      for (const [name, headers] of cases) {
        const res = await fetch(`${svc.baseUrl}${path}`, { method, headers });
        expect(res.status, `${method} ${path} (${name})`).toBe(401);
        expect(res.headers.get('www-authenticate')).toMatch(/^Bearer realm="db-backup-service"/);
        if (method !== 'HEAD') {
          expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
          const body = await res.text();
          responses.push(body);
          expect(JSON.parse(body)).toMatchObject({ status: 401, title: 'Unauthorized', code: 'UNAUTHORIZED' });
        }
      }
    }
    for (const open of ['/health', '/info', '/metrics', '/openapi.json', '/docs']) {
      expect((await fetch(`${svc.baseUrl}${open}`)).status, open).toBe(200);
    }
  });

  it('triggers a backup: 202 with Location, the job runs to succeeded, lists newest first', async () => {
    await aBackup();
    const res = await A.request('/api/v1/backups', { method: 'POST' });
    expect(res.status).toBe(202);
    const job = (await res.json()) as Job;
    expect(job).toMatchObject({ status: expect.stringMatching(/^(queued|running)$/), triggeredBy: 'api', finishedAt: null, backupId: null, errorMessage: null });
    expect(res.headers.get('location')).toBe(`/api/v1/backups/jobs/${job.jobId}`);
    const done = await A.waitForJob(job.jobId);
    expect(done).toMatchObject({ status: 'succeeded', errorMessage: null, triggeredBy: 'api' });
    expect(done.backupId).toMatch(/^backup_\d{8}T\d{6}Z(_\d+)?\.sql\.gz$/);
    expect(done.durationMs).toBeGreaterThan(0);

    const list = await A.json<Backup[]>('/api/v1/backups');
    expect(list[0]!.id).toBe(done.backupId);
    expect(list.map((b) => b.createdAt)).toEqual([...list.map((b) => b.createdAt)].sort().reverse());
    expect(list[0]).toEqual({
      id: done.backupId, createdAt: expect.any(String), sizeBytes: expect.any(Number), sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
      pgVersion: expect.stringMatching(/^15\./), durationMs: expect.any(Number), triggeredBy: 'api', encryption: null, drill: null, pinned: null,
    });
    expect(await A.json<Backup>('/api/v1/backups/latest')).toEqual(list[0]);
  });

  it('answers 404 with a problem body for an unknown or malformed job id', async () => {
    for (const id of ['9b7c4a8e-0000-4000-8000-000000000000', 'not-a-uuid', '..%2F..%2Fetc']) {
      const res = await A.request(`/api/v1/backups/jobs/${id}`);
      expect(res.status, id).toBe(404);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(await res.json()).toMatchObject({ status: 404 });
    }
  });

  it('starts exactly one job for 20 concurrent triggers; the others get 409 with its id', async () => {
    await aBackup();
    // The accepted job must still run when the last trigger arrives, however slowly the machine
    // serves the 20 requests: a lock on a table pg_dump must read holds the dump until all answered.
    const holder = new pg.Client(setup.pg.connectionConfig('app'));
    await holder.connect();
    let bodies: { status: number; body: { jobId: string; status: unknown } }[];
    try {
      await holder.query('BEGIN; LOCK TABLE big IN ACCESS EXCLUSIVE MODE');
      const answers = await Promise.all(Array.from({ length: 20 }, () => A.request('/api/v1/backups', { method: 'POST' })));
      bodies = await Promise.all(answers.map(async (r) => ({ status: r.status, body: (await r.json()) as { jobId: string; status: unknown } })));
    } finally {
      await holder.end(); // ends the transaction: the dump goes on
    }
    const accepted = bodies.filter((b) => b.status === 202);
    expect(accepted).toHaveLength(1);
    const conflicts = bodies.filter((b) => b.status === 409);
    expect(conflicts).toHaveLength(19);
    for (const c of conflicts) expect(c.body).toMatchObject({ status: 409, code: 'BACKUP_RUNNING', jobId: accepted[0]!.body.jobId });
    expect((await A.waitForJob(accepted[0]!.body.jobId)).status).toBe('succeeded');
  });

  it('downloads a backup that restores to identical data with stock gunzip | psql', async () => {
    const job = await aBackup();
    const res = await A.request(`/api/v1/backups/${job.backupId}/download`);
    expect(res.status).toBe(200);
    const body = Buffer.from(await res.arrayBuffer());
    const meta = (await A.json<Backup[]>('/api/v1/backups')).find((b) => b.id === job.backupId)!;
    expect(res.headers.get('content-type')).toBe('application/gzip');
    expect(res.headers.get('content-disposition')).toBe(`attachment; filename="${job.backupId}"`);
    expect(Number(res.headers.get('content-length'))).toBe(body.length);
    expect(body.length).toBe(meta.sizeBytes);
    expect(res.headers.get('etag')).toBe(`"${sha256(body)}"`);
    expect(sha256(body)).toBe(meta.sha256);
    expect(res.headers.get('repr-digest')).toBe(`sha-256=:${createHash('sha256').update(body).digest('base64')}:`);
    expect(res.headers.get('accept-ranges')).toBe('bytes');

    const work = await mkdtemp(join(tmpdir(), 'download-'));
    const file = join(work, job.backupId!);
    await writeFile(file, body);
    await restoreWithStockTools(file, setup.pg, `restored_${backend}`);
    expect(await fingerprint(setup.pg, `restored_${backend}`)).toEqual(await fingerprint(setup.pg, 'app'));
    await rm(work, { recursive: true, force: true });
  });

  it('serves latest/download, HEAD, a Range resume whose SHA-256 equals the ETag, and 416', async () => {
    const job = await aBackup();
    const full = await A.request(`/api/v1/backups/${job.backupId}/download`);
    const etag = full.headers.get('etag')!;
    const size = Number(full.headers.get('content-length'));
    await full.body?.cancel();

    const head = await A.request('/api/v1/backups/latest/download', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-disposition')).toMatch(/^attachment; filename="backup_.*\.sql\.gz"$/);
    expect(Number(head.headers.get('content-length'))).toBeGreaterThan(0);
    expect(await head.text()).toBe('');

    const half = Math.floor(size / 2);
    const part1 = await A.request(`/api/v1/backups/${job.backupId}/download`, { headers: { Range: `bytes=0-${half - 1}` } });
    expect(part1.status).toBe(206);
    expect(part1.headers.get('content-range')).toBe(`bytes 0-${half - 1}/${size}`);
    const part2 = await A.request(`/api/v1/backups/${job.backupId}/download`, { headers: { Range: `bytes=${half}-`, 'If-Range': etag } });
    expect(part2.status).toBe(206);
    expect(part2.headers.get('content-range')).toBe(`bytes ${half}-${size - 1}/${size}`);
    const joined = Buffer.concat([Buffer.from(await part1.arrayBuffer()), Buffer.from(await part2.arrayBuffer())]);
    expect(`"${sha256(joined)}"`).toBe(etag);

    const stale = await A.request(`/api/v1/backups/${job.backupId}/download`, { headers: { Range: 'bytes=10-', 'If-Range': '"0000"' } });
    expect(stale.status).toBe(200);
    await stale.body?.cancel();

    const beyond = await A.request(`/api/v1/backups/${job.backupId}/download`, { headers: { Range: `bytes=${size}-` } });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get('content-range')).toBe(`bytes */${size}`);
    expect(await beyond.json()).toMatchObject({ status: 416 });
  });

  it('keeps the id as file name with curl -OJ, and resumes with curl -C -', async () => {
    await aBackup();
    const work = await mkdtemp(join(tmpdir(), 'curl-'));
    const curl = (args: string[]) =>
      new Promise<number | null>((resolve, reject) => {
        // The token goes in a header file (-H @file), not in argv.
        const child = spawn('curl', ['-sS', '-H', `@${join(work, 'headers')}`, ...args], { cwd: work, stdio: 'ignore' });
        child.once('error', reject);
        child.once('close', resolve);
      });
    await writeFile(join(work, 'headers'), `Authorization: Bearer ${TOKEN}\n`);
    const meta = await A.json<Backup>('/api/v1/backups/latest');
    expect(meta.id).toBe((await A.json<Backup[]>('/api/v1/backups'))[0]!.id);
    expect(await curl(['-fOJ', `${svc.baseUrl}/api/v1/backups/latest/download`])).toBe(0);
    const saved = await readFile(join(work, meta.id));
    expect(sha256(saved)).toBe(meta.sha256);

    await writeFile(join(work, 'partial.sql.gz'), saved.subarray(0, Math.floor(saved.length / 3)));
    expect(await curl(['-f', '-C', '-', '-o', 'partial.sql.gz', `${svc.baseUrl}/api/v1/backups/${meta.id}/download`])).toBe(0);
    expect(sha256(await readFile(join(work, 'partial.sql.gz')))).toBe(meta.sha256);
    await rm(work, { recursive: true, force: true });
  });

  it('answers 404 to traversal attempts and ids outside the backup pattern', async () => {
    await aBackup();
    if (backend === 'local') await writeFile(join(setup.dir, '..', 'secret.sql.gz'), 'not yours');
    const attempts = [
      '..%2Fsecret.sql.gz', '..%2F..%2Fetc%2Fpasswd', '%2Fetc%2Fpasswd', '%2e%2e%2fsecret.sql.gz', 'backup_20260510T010000Z.sql.gz%00',
      'backup_20260510T010000Z.sql.gz%00.meta.json', `${'a'.repeat(300)}_20260510T010000Z.sql.gz`, 'backup_20260510T010000Z.sql.gz.meta.json',
      '..%5Csecret.sql.gz', '%252e%252e%252fsecret.sql.gz', 'backup_20990101T000000Z.sql.gz',
    ];
    for (const id of attempts) {
      const res = await A.request(`/api/v1/backups/${id}/download`);
      const body = await res.text();
      expect(res.status, id).toBe(404);
      expect(body).not.toContain('not yours');
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    }
    for (const path of ['/api/v1/backups/../../etc/passwd/download', '/api/v1/backups/%2e%2e/download']) {
      expect((await A.request(path)).status, path).toBe(404);
    }
    if (backend === 'local') await rm(join(setup.dir, '..', 'secret.sql.gz'), { force: true });
  });

  it('answers unknown routes, bad encodings and oversized bodies with problem+json 4xx', async () => {
    const unknown = await A.request('/api/v1/nope');
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ status: 404, code: 'NOT_FOUND' });
    const badEncoding = await A.request('/api/v1/backups/%E0%A4%A/download');
    expect(badEncoding.status).toBe(400);
    expect(await badEncoding.json()).toMatchObject({ status: 400 });
    const big = await A.request('/api/v1/backups', { method: 'POST', body: 'x'.repeat(100_000), headers: { 'Content-Type': 'text/plain' } });
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ status: 413 });
    const wrongMethod = await A.request('/api/v1/backups/latest', { method: 'DELETE' });
    expect(wrongMethod.status).toBe(404);
  });

  it('reports /info, /metrics and /health after a backup', async () => {
    const job = await aBackup();
    const info = (await (await fetch(`${svc.baseUrl}/info`)).json()) as Record<string, Record<string, unknown>>;
    expect(info.service).toEqual({ name: 'db-backup-service', version: expect.any(String) });
    // The harness's service finds the installed clients (no PG_BIN_DIR): /info lists them, newest named.
    const clients = info.pgDump!.clients as { version: string; binDir: string }[];
    expect(clients.length).toBeGreaterThan(0);
    expect(info.pgDump).toEqual({ version: clients.at(-1)!.version, clients, pinned: false });
    expect(info.retention).toEqual({ days: 7, minCount: 1, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepYearly: 0, keepNewestVerified: false, dryRun: false });
    expect(info.schedule).toEqual({ interval: 'PT24H', intervalSeconds: 86400, cron: null, nextRunAt: expect.any(String) });
    const latest = await A.json<Backup>('/api/v1/backups/latest');
    expect(Date.parse(info.schedule!.nextRunAt as string)).toBe(Date.parse(latest.createdAt) + 86_400_000);
    expect(info.storage).toEqual({ backend });
    expect(info.backup!.lastSuccessfulBackupAgeSeconds).toBeGreaterThanOrEqual(0);
    expect(info.backup!.lastSuccessfulBackupAgeSeconds).toBeLessThan(600);

    const metrics = await (await fetch(`${svc.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/dbbackup_backups_total\{status="succeeded",trigger="api"\} [1-9]/);
    expect(metrics).toMatch(/dbbackup_last_success_timestamp_seconds \d+/);
    expect(metrics).toMatch(/dbbackup_last_success_size_bytes [1-9]/);
    expect(metrics).toMatch(/dbbackup_backup_running [01]/);
    expect(metrics).toMatch(/dbbackup_http_requests_total\{method="POST",route="\/api\/v1\/backups",status="202"\} [1-9]/);
    expect(metrics).toContain('process_resident_memory_bytes');
    responses.push(metrics);

    const health = (await (await fetch(`${svc.baseUrl}/health`)).json()) as Record<string, unknown>;
    expect(health).toEqual({ status: 'UP', components: { database: { status: 'UP' }, storage: { status: 'UP' } } });
    expect(svc.logs.some((l) => l.includes(job.backupId!))).toBe(true);
  });
});

describe('a fresh service (no backup yet)', () => {
  let setup: Setup;
  let svc: ServiceProcess;
  beforeAll(async () => {
    setup = await setUp('local', {}, 100);
    svc = await startService(setup.env, { waitFor: 'healthy' });
  });
  afterAll(() => tearDown(setup, svc));

  it('answers 404 for latest and latest/download, an empty list and a null age', async () => {
    const A = api(svc.baseUrl, TOKEN);
    expect(await A.json<Backup[]>('/api/v1/backups')).toEqual([]);
    for (const path of ['/api/v1/backups/latest', '/api/v1/backups/latest/download']) {
      const res = await A.request(path);
      expect(res.status, path).toBe(404);
      expect(await res.json()).toMatchObject({ status: 404, detail: 'no successful backup yet' });
    }
    const info = (await (await fetch(`${svc.baseUrl}/info`)).json()) as { backup: { lastSuccessfulBackupAgeSeconds: unknown } };
    expect(info.backup.lastSuccessfulBackupAgeSeconds).toBeNull();
  });
});

describe('/health follows its dependencies', () => {
  let setup: Setup;
  let svc: ServiceProcess;
  beforeAll(async () => {
    setup = await setUp('s3', {}, 100);
    svc = await startService(setup.env, { waitFor: 'healthy' });
  });
  afterAll(() => tearDown(setup, svc));

  const healthIs = async (status: number, component?: 'database' | 'storage') => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const res = await fetch(`${svc.baseUrl}/health`);
      const body = (await res.json()) as { components: Record<string, { status: string }> };
      if (res.status === status && (!component || body.components[component]!.status === (status === 200 ? 'UP' : 'DOWN'))) return body;
      if (Date.now() > deadline) throw new Error(`/health stayed ${res.status}: ${JSON.stringify(body)}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  };

  it('turns 503 when PostgreSQL stops and 200 when it returns', async () => {
    await setup.pg.stop();
    const down = await healthIs(503, 'database');
    // The open endpoint names the component only; the error (host, port, role) goes to the log.
    expect(down.components.database).toEqual({ status: 'DOWN' });
    for (const leak of [setup.pg.password, setup.pg.user, `:${setup.pg.port}`]) expect(JSON.stringify(down)).not.toContain(leak);
    const logged = JSON.parse(await svc.waitForLog('health: database DOWN')) as { level: string; error: string };
    expect(logged).toMatchObject({ level: 'warn', error: expect.any(String) });
    await setup.pg.start();
    await healthIs(200);
    await svc.waitForLog('health: database UP');
    expect(svc.logs.filter((l) => l.includes('health: database DOWN'))).toHaveLength(1);
  });

  it('turns 503 when S3 stops and 200 when it returns', async () => {
    await setup.s3!.stop();
    const down = await healthIs(503, 'storage');
    expect(JSON.stringify(down)).not.toContain(setup.s3!.secretAccessKey);
    await setup.s3!.start();
    await healthIs(200);
  });

  // Found by the fault suite (test/faults, issue 8): a download while S3 was down answered 500.
  it('answers a download with 503 + Retry-After (not 500) while S3 is down', async () => {
    const A = api(svc.baseUrl, TOKEN);
    const job = await A.backup();
    expect(job.status).toBe('succeeded');
    await setup.s3!.stop();
    try {
      for (const path of [`/api/v1/backups/${job.backupId}/download`, '/api/v1/backups/latest/download']) {
        const res = await A.request(path);
        expect(res.status, path).toBe(503);
        expect(res.headers.get('retry-after')).toBe('5');
        expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
        expect(res.headers.get('content-disposition')).toBeNull();
        const body = await res.text();
        expect(JSON.parse(body)).toMatchObject({ status: 503, code: 'STORAGE_UNAVAILABLE' });
        expect(body).not.toContain(setup.s3!.secretAccessKey);
      }
    } finally {
      await setup.s3!.start();
    }
    // This emulator keeps no objects across a restart (no `persist`): the backup is gone now, which
    // is a clean 404 that also drops it from the listing. (test/faults covers the persisted case.)
    const again = await A.request(`/api/v1/backups/${job.backupId}/download`);
    expect(again.status).toBe(404);
    expect((await A.json<Backup[]>('/api/v1/backups')).map((b) => b.id)).not.toContain(job.backupId);
  });
});

describe('shutdown and crashes during a backup', () => {
  let setup: Setup;
  let binDir: string;
  beforeAll(async () => {
    setup = await setUp('local', {}, 20_000);
    // A pg_dump that first announces itself and waits, so a signal surely lands mid-backup.
    binDir = await mkdtemp(join(tmpdir(), 'slow-pg-dump-'));
    const real = join('/usr/lib/postgresql', String(setup.pg.major), 'bin');
    // STALL_PG_DUMP=1: some output, then a stall mid-dump (for a crash while data is in flight).
    await writeFile(
      join(binDir, 'pg_dump'),
      `#!/bin/bash
[ "$1" = "--version" ] && exec "${real}/pg_dump" --version
echo started > "${binDir}/marker"
sleep "\${SLOW_PG_DUMP_SECONDS:-3}"
if [ -n "$STALL_PG_DUMP" ]; then "${real}/pg_dump" "$@" | { head -c 1000000; sleep 30; }; exit 0; fi
exec "${real}/pg_dump" "$@"
`,
      { mode: 0o755 },
    );
    await writeFile(join(binDir, 'psql'), `#!/bin/bash\nexec "${real}/psql" "$@"\n`, { mode: 0o755 });
  });
  afterAll(async () => {
    await tearDown(setup);
    await rm(binDir, { recursive: true, force: true });
  });

  // A dump or contents manifest is a leftover unless its backup's sidecar exists.
  const sidecarOf = (f: string) => `${f.replace(/\.contents\.json$/, '')}.meta.json`;
  const leftovers = async () => (await readdir(setup.dir)).filter((f) => !f.endsWith('.meta.json') && !existsSync(join(setup.dir, sidecarOf(f))));
  const start = (extra: Record<string, string>) => startService({ ...setup.env, PG_BIN_DIR: binDir, ...extra }, { waitFor: 'healthy' });
  const startBackupAndWaitForDump = async (svc: ServiceProcess) => {
    await rm(join(binDir, 'marker'), { force: true });
    const res = await api(svc.baseUrl, TOKEN).request('/api/v1/backups', { method: 'POST' });
    expect(res.status).toBe(202);
    const deadline = Date.now() + 20_000;
    while (!existsSync(join(binDir, 'marker'))) {
      if (Date.now() > deadline) throw new Error('pg_dump never started');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return (await res.json()) as Job;
  };

  it('SIGTERM lets a running backup finish within SHUTDOWN_TIMEOUT, then exits 0', async () => {
    const svc = await start({ SLOW_PG_DUMP_SECONDS: '2', SHUTDOWN_TIMEOUT: '60s' });
    await startBackupAndWaitForDump(svc);
    const exit = await svc.stop('SIGTERM', 60_000);
    expect(exit).toEqual({ code: 0, signal: null });
    const again = await start({});
    const list = await api(again.baseUrl, TOKEN).json<Backup[]>('/api/v1/backups');
    expect(list.length).toBeGreaterThanOrEqual(1);
    await again.stop();
    expect(await leftovers()).toEqual([]);
  });

  it('SIGTERM past SHUTDOWN_TIMEOUT aborts the backup cleanly: exit 0, nothing partial listed or left', async () => {
    const before = (await readdir(setup.dir)).filter((f) => f.endsWith('.meta.json')).length;
    const svc = await start({ SLOW_PG_DUMP_SECONDS: '30', SHUTDOWN_TIMEOUT: '1s' });
    await startBackupAndWaitForDump(svc);
    const exit = await svc.stop('SIGTERM', 30_000);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(svc.logs.join('\n')).toMatch(/aborting the running backup/);
    expect((await readdir(setup.dir)).filter((f) => f.endsWith('.meta.json')).length).toBe(before);
    expect(await leftovers()).toEqual([]);
  });

  it('SIGKILL mid-backup: after a restart nothing partial lists and the leftovers are removed', async () => {
    const svc = await start({ SLOW_PG_DUMP_SECONDS: '0', STALL_PG_DUMP: '1' });
    const sizeBefore = (await api(svc.baseUrl, TOKEN).json<Backup[]>('/api/v1/backups')).length;
    await startBackupAndWaitForDump(svc);
    const inFlight = Date.now() + 20_000;
    while (!(await readdir(setup.dir)).some((f) => f.startsWith('.tmp-'))) {
      if (Date.now() > inFlight) throw new Error('the backup never started writing');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await svc.kill();
    // Clean-up removes only leftovers older than BACKUP_TIMEOUT (a younger one may be another
    // service's write in progress); it runs at start and after every backup.
    const again = await start({ BACKUP_TIMEOUT: '1s' });
    expect((await api(again.baseUrl, TOKEN).json<Backup[]>('/api/v1/backups')).length).toBe(sizeBefore);
    const deadline = Date.now() + 30_000;
    while ((await leftovers()).length > 0 || (await readdir(setup.dir)).some((f) => f.startsWith('.tmp-'))) {
      if (Date.now() > deadline) throw new Error(`leftovers not cleaned: ${(await readdir(setup.dir)).join(', ')}`);
      await api(again.baseUrl, TOKEN).backup();
    }
    await again.stop();
  });
});
