// Restore drills end to end: the built service as a child process, real PostgreSQL (the backed-up
// server, and the drill server or the service's own throwaway cluster), local storage and the S3
// emulator, driven over HTTP.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { contentsName, drillName, sidecarName, type Backup, type ContentsManifest, type DrillRecord, type Info, type Job } from '@db-backup-service/contract';
import {
  api, fillRich, fillVaried, freePort, pollUntil, startPostgres, startS3, startService,
  type Api, type PostgresCluster, type S3Harness, type ServiceProcess,
} from './harness/index.js';

const TOKEN = randomBytes(32).toString('hex');
const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const CLUSTER_PREFIX = 'db-backup-service-drill-';

interface Setup {
  pg: PostgresCluster;
  s3: S3Harness | null;
  /** BACKUP_LOCAL_DIR */
  dir: string;
  /** The service's TMPDIR: where a local drill cluster lives. */
  tmp: string;
  env: Record<string, string>;
  services: ServiceProcess[];
}

let current: Setup | undefined;
afterEach(async () => {
  const setup = current;
  current = undefined;
  if (!setup) return;
  for (const svc of setup.services) await svc.stop('SIGTERM', 30_000).catch(() => svc.kill());
  const logs = setup.services.flatMap((svc) => svc.logs).join('\n');
  for (const secret of [setup.pg.password, TOKEN, ...(setup.s3 ? [setup.s3.secretAccessKey] : [])]) expect(logs).not.toContain(secret);
  await setup.pg.destroy();
  await setup.s3?.destroy();
  await rm(setup.dir, { recursive: true, force: true });
  await rm(setup.tmp, { recursive: true, force: true });
});

async function setUp(opts: { env?: Record<string, string>; backend?: 'local' | 's3'; fill?: (pg: PostgresCluster) => Promise<void> } = {}): Promise<Setup> {
  const pg = await startPostgres({ database: 'app' });
  const dir = await mkdtemp(join(tmpdir(), 'svc-drills-'));
  const tmp = await mkdtemp(join(tmpdir(), 'svc-drills-tmp-'));
  // As /tmp is for the local cluster's server user (postgres, since the tests run as root).
  await chmod(tmp, 0o711);
  const s3 = opts.backend === 's3' ? await startS3() : null;
  current = { pg, s3, dir, tmp, env: {}, services: [] };
  await (opts.fill ?? ((c) => fillRich(c, 'app')))(pg);
  const storageEnv: Record<string, string> = s3
    ? { STORAGE_BACKEND: 's3', S3_BUCKET: s3.bucket, S3_ENDPOINT: s3.endpoint, S3_PREFIX: 'db', AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey }
    : { STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: dir };
  current.env = {
    DB_HOST: pg.host, DB_PORT: String(pg.port), DB_NAME: 'app', DB_USER: pg.user, DB_PASSWORD: pg.password,
    API_TOKEN: TOKEN, HTTP_PORT: String(await freePort()), TMPDIR: tmp, RESTORE_DRILL_TARGET: 'server', ...storageEnv, ...opts.env,
  };
  return current;
}

async function start(setup: Setup, env: Record<string, string> = {}): Promise<{ svc: ServiceProcess; A: Api }> {
  const svc = await startService({ ...setup.env, ...env }, { waitFor: 'healthy', timeoutMs: 60_000 });
  setup.services.push(svc);
  return { svc, A: api(svc.baseUrl, TOKEN) };
}

async function drill(A: Api, id: string, timeoutMs = 180_000): Promise<Job> {
  const res = await A.request(`/api/v1/backups/${id}/drill`, { method: 'POST' });
  const body = (await res.json()) as Job;
  if (res.status !== 202) throw new Error(`POST drill: ${res.status} ${JSON.stringify(body)}`);
  expect(body).toMatchObject({ kind: 'drill', backupId: id === 'latest' ? expect.any(String) : id, status: expect.stringMatching(/^(queued|running)$/) });
  expect(res.headers.get('location')).toBe(`/api/v1/backups/jobs/${body.jobId}`);
  return A.waitForJob(body.jobId, timeoutMs);
}

/** Scratch databases on the drill server (the backed-up one in these tests). */
async function scratchDatabases(pg: PostgresCluster): Promise<string[]> {
  const { rows } = await pg.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datname LIKE 'app\\_\\_drill\\_%' ORDER BY 1");
  return rows.map((r) => r.datname);
}

async function clusterDirs(tmp: string): Promise<string[]> {
  return (await readdir(tmp)).filter((e) => e.startsWith(CLUSTER_PREFIX));
}

/** What the manifest must hold: every user table's rows (leaf tables: COPY writes partitions, not their parent). */
async function sourceCounts(pg: PostgresCluster): Promise<{ tables: number; rows: number }> {
  const { rows: tables } = await pg.query<{ name: string }>(
    "SELECT format('%I.%I', n.nspname, c.relname) AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace " +
      "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'",
    [], 'app',
  );
  let rows = 0;
  for (const t of tables) rows += Number((await pg.query<{ n: string }>(`SELECT count(*) AS n FROM ONLY ${t.name}`, [], 'app')).rows[0]!.n);
  return { tables: tables.length, rows };
}

function metric(text: string, name: string): number | null {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? null : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe.each([
  { backend: 'local', target: 'local' },
  { backend: 'local', target: 'server' },
  { backend: 's3', target: 'server' },
] as const)('$backend storage, target $target: a good backup', ({ backend, target }) => {
  it('passes its drill with exact counts; drill.json, the backup JSON, /info and the metrics say so; nothing is left behind', async () => {
    const setup = await setUp({ backend, env: { RESTORE_DRILL_TARGET: target } });
    const { A } = await start(setup);
    const backup = await A.backup();
    expect(backup.status).toBe('succeeded');
    const id = backup.backupId!;
    const expected = await sourceCounts(setup.pg);

    const job = await drill(A, 'latest');
    expect(job, JSON.stringify(job)).toMatchObject({ kind: 'drill', status: 'succeeded', backupId: id, errorMessage: null, triggeredBy: 'api' });
    const [listed] = await A.json<Backup[]>('/api/v1/backups');
    expect(listed!.drill).toEqual({ status: 'passed', at: expect.any(String), durationMs: expect.any(Number), tablesChecked: expected.tables, rowsChecked: expected.rows, detail: null });
    expect((await A.json<Backup>('/api/v1/backups/latest')).drill).toEqual(listed!.drill);
    if (backend === 'local') {
      const record = JSON.parse(await readFile(join(setup.dir, drillName(id)), 'utf8')) as DrillRecord;
      expect(record).toMatchObject({ format: 1, backupId: id, target, status: 'passed', mismatches: [], query: null, serverVersion: expect.stringMatching(/^\d+/) });
    }
    const info = await A.json<Info>('/info');
    expect(info.drill).toMatchObject({ mode: 'off', target, nextRunAt: null, last: { backupId: id, status: 'passed' } });
    expect(info.backup.lastVerifiedBackupId).toBe(id);
    expect(info.backup.lastVerifiedBackupAgeSeconds).toEqual(expect.any(Number));
    const metrics = await (await fetch(`${A.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/^dbbackup_drills_total\{status="passed"\} 1$/m);
    expect(metric(metrics, 'dbbackup_drill_last_success_timestamp_seconds')).toBeCloseTo(Date.parse(listed!.drill!.at) / 1000, 0);
    expect(metric(metrics, 'dbbackup_drill_duration_seconds_count')).toBe(1);

    expect(await scratchDatabases(setup.pg)).toEqual([]);
    expect(await clusterDirs(setup.tmp)).toEqual([]);
  }, 300_000);
});

describe('drills', () => {
  it('RESTORE_DRILL=after-backup drills each successful backup by itself', async () => {
    const setup = await setUp({ env: { RESTORE_DRILL: 'after-backup' } });
    const { A } = await start(setup);
    expect((await A.json<Info>('/info')).drill.mode).toBe('after-backup');
    const backup = await A.backup();
    const drilled = await pollUntil(
      async () => (await A.json<Backup[]>('/api/v1/backups')).find((b) => b.id === backup.backupId && b.drill !== null),
      { timeoutMs: 180_000, intervalMs: 250, what: 'the new backup to be drilled' },
    );
    expect(drilled.drill).toMatchObject({ status: 'passed' });
  }, 300_000);

  it('RESTORE_DRILL_QUERY must return true in the restored database: true passes, false fails the drill', async () => {
    const setup = await setUp({ fill: (pg) => fillVaried(pg, 'app', { bigRows: 100 }) });
    const first = await start(setup, { RESTORE_DRILL_QUERY: 'SELECT count(*) = 100 FROM big' });
    const id = (await first.A.backup()).backupId!;
    expect((await drill(first.A, id)).status).toBe('succeeded');
    expect(JSON.parse(await readFile(join(setup.dir, drillName(id)), 'utf8'))).toMatchObject({ query: { sql: 'SELECT count(*) = 100 FROM big', result: true } });
    await first.svc.stop();
    const second = await start(setup, { RESTORE_DRILL_QUERY: 'SELECT count(*) = 101 FROM big' });
    const failed = await drill(second.A, id);
    expect(failed.status).toBe('failed');
    expect(failed.errorMessage).toContain('RESTORE_DRILL_QUERY');
    expect(JSON.parse(await readFile(join(setup.dir, drillName(id)), 'utf8'))).toMatchObject({ status: 'failed', query: { result: false } });
  }, 300_000);

  it('a stored dump that fails half-way fails its drill with psql\'s message and leaves no scratch database', async () => {
    const setup = await setUp({ fill: async () => undefined });
    // Valid gzip, a sidecar whose checksum matches, a dump that stops at its third statement.
    const id = 'backup_20260101T000000Z.sql.gz';
    const sql = [
      '--', '-- PostgreSQL database dump', '--', '',
      'SET statement_timeout = 0;', "SET client_encoding = 'UTF8';", '',
      'CREATE TABLE public.first_half (id integer);',
      'INSERT INTO public.first_half VALUES (1), (2);',
      'SELECT public.drill_test_missing_function();',
      'CREATE TABLE public.second_half (id integer);', '',
      '--', '-- PostgreSQL database dump complete', '--', '',
    ].join('\n');
    const dump = gzipSync(sql);
    await writeFile(join(setup.dir, id), dump);
    await writeFile(join(setup.dir, sidecarName(id)), JSON.stringify({
      id, createdAt: '2026-01-01T00:00:00.000Z', sizeBytes: dump.length, sha256: sha256(dump), pgVersion: '15.0', durationMs: 10, triggeredBy: 'api',
      pgDumpVersion: '15.0', uncompressedSizeBytes: sql.length, compression: { format: 'gzip', level: 6 }, database: 'app', serviceVersion: 'test', format: 'plain', contents: null,
    }));
    const { A, svc } = await start(setup);
    const job = await drill(A, id);
    expect(job).toMatchObject({ kind: 'drill', status: 'failed', backupId: id });
    expect(job.errorMessage).toContain('function public.drill_test_missing_function() does not exist');
    const [listed] = await A.json<Backup[]>('/api/v1/backups');
    expect(listed!.drill).toMatchObject({ status: 'failed', detail: job.errorMessage });
    expect(JSON.parse(await readFile(join(setup.dir, drillName(id)), 'utf8'))).toMatchObject({ status: 'failed', detail: job.errorMessage });
    expect(await scratchDatabases(setup.pg)).toEqual([]);
    const failure = await svc.waitForLog('restore drill failed');
    expect(JSON.parse(failure)).toMatchObject({ level: 'error', backupId: id, reason: job.errorMessage });
    expect((await A.json<Info>('/info')).backup).toMatchObject({ lastVerifiedBackupId: null, lastVerifiedBackupAgeSeconds: null });
  }, 300_000);

  it('a manifest that claims one row more than the dump holds fails naming the table; a restart still reports the drill', async () => {
    const setup = await setUp();
    const first = await start(setup);
    const id = (await first.A.backup()).backupId!;
    await first.svc.stop();
    // Rewritten as an attacker or a bug would: the manifest and the sidecar's record of it agree.
    const manifest = JSON.parse(await readFile(join(setup.dir, contentsName(id)), 'utf8')) as ContentsManifest;
    const edges = manifest.tables.find((t) => t.schema === 'public' && t.name === 'edges')!;
    edges.rows += 1;
    const text = JSON.stringify(manifest);
    await writeFile(join(setup.dir, contentsName(id)), text);
    const sidecar = JSON.parse(await readFile(join(setup.dir, sidecarName(id)), 'utf8')) as { contents: { sha256: string } };
    sidecar.contents.sha256 = sha256(text);
    await writeFile(join(setup.dir, sidecarName(id)), JSON.stringify(sidecar));

    const second = await start(setup);
    const job = await drill(second.A, id);
    expect(job.status).toBe('failed');
    expect(job.errorMessage).toContain('public.edges');
    const record = JSON.parse(await readFile(join(setup.dir, drillName(id)), 'utf8')) as DrillRecord;
    expect(record.mismatches).toContainEqual({ what: expect.stringContaining('public.edges'), expected: edges.rows, actual: edges.rows - 1 });
    await second.svc.stop();

    const third = await start(setup);
    expect((await third.A.json<Backup[]>('/api/v1/backups'))[0]!.drill).toMatchObject({ status: 'failed', detail: job.errorMessage });
  }, 300_000);

  it('a manifest changed without its sidecar fails the drill saying so', async () => {
    const setup = await setUp({ fill: (pg) => fillVaried(pg, 'app', { bigRows: 100 }) });
    const first = await start(setup);
    const id = (await first.A.backup()).backupId!;
    await writeFile(join(setup.dir, contentsName(id)), (await readFile(join(setup.dir, contentsName(id)), 'utf8')).replace('"rows":', '"rows": '));
    const job = await drill(first.A, id);
    expect(job).toMatchObject({ status: 'failed', errorMessage: expect.stringMatching(/contents manifest .* cannot be trusted: its SHA-256 is [0-9a-f]{64}, the sidecar says/) });
  }, 300_000);

  describe.each(['server', 'local'] as const)('target %s', (target) => {
    it('a drill killed with the service leaves nothing behind after the next start', async () => {
      const setup = await setUp({ env: { RESTORE_DRILL_TARGET: target }, fill: (pg) => fillVaried(pg, 'app', { bigRows: 400_000 }) });
      const first = await start(setup);
      const id = (await first.A.backup({ timeoutMs: 300_000 })).backupId!;
      const res = await first.A.request(`/api/v1/backups/${id}/drill`, { method: 'POST' });
      expect(res.status).toBe(202);
      // Mid-drill: the scratch database exists (on the drill server, or in the service's cluster).
      await pollUntil(
        async () => (target === 'server' ? (await scratchDatabases(setup.pg)).length > 0 : (await clusterDirs(setup.tmp)).length > 0) || undefined,
        { timeoutMs: 60_000, intervalMs: 50, what: 'the drill to create its scratch database' },
      );
      await first.svc.kill();
      const second = await start(setup);
      await pollUntil(
        async () => ((await scratchDatabases(setup.pg)).length === 0 && (await clusterDirs(setup.tmp)).length === 0) || undefined,
        { timeoutMs: 60_000, intervalMs: 200, what: 'the leftovers of the killed drill to be removed' },
      );
      if (target === 'local') await second.svc.waitForLog('removed a local drill server a killed service left');
      else await second.svc.waitForLog('dropped a scratch database a killed drill left');
      // And the next drill still works.
      expect((await drill(second.A, id, 300_000)).status).toBe('succeeded');
    }, 600_000);
  });

  it('runs beside scheduled backups (both at once, both succeed); 409 for a second drill, 404 for unknown or invalid ids, 401 without a token', async () => {
    const setup = await setUp({ env: { BACKUP_INTERVAL: '2s' }, fill: (pg) => fillVaried(pg, 'app', { bigRows: 300_000 }) });
    const { A } = await start(setup);
    const first = await A.backup({ timeoutMs: 300_000 });

    expect((await A.request('/api/v1/backups/latest/drill', { method: 'POST', token: null })).status).toBe(401);
    for (const bad of ['backup_20200101T000000Z.sql.gz', 'not-a-backup', '..%2F..%2Fetc%2Fpasswd']) {
      const res = await A.request(`/api/v1/backups/${bad}/drill`, { method: 'POST' });
      expect(res.status, bad).toBe(404);
      expect(await res.json()).toMatchObject({ status: 404 });
    }

    const backupRunning = async () => metric(await (await fetch(`${A.baseUrl}/metrics`)).text(), 'dbbackup_backup_running') === 1;
    // A drill started while a scheduled backup runs (BACKUP_INTERVAL=2s: they follow each other):
    // it is not refused, and for a moment both jobs run. A backup that ends before the drill
    // starts proves nothing, so that attempt is repeated with the next scheduled backup.
    let job: Job | undefined;
    for (let attempt = 1; attempt <= 5 && job === undefined; attempt++) {
      await pollUntil(async () => (await backupRunning()) || undefined, { timeoutMs: 60_000, intervalMs: 20, what: 'a scheduled backup to run' });
      const res = await A.request(`/api/v1/backups/${first.backupId}/drill`, { method: 'POST' });
      expect(res.status).toBe(202);
      const started = (await res.json()) as Job;
      const second = await A.request('/api/v1/backups/latest/drill', { method: 'POST' });
      const drillJob = await A.json<Job>(`/api/v1/backups/jobs/${started.jobId}`);
      const both = drillJob.status === 'running' && (await backupRunning());
      if (drillJob.status !== 'succeeded' && drillJob.status !== 'failed') {
        expect(second.status).toBe(409);
        expect(await second.json()).toMatchObject({ status: 409, code: 'DRILL_RUNNING', jobId: started.jobId });
      }
      if (both) job = started;
      else expect((await A.waitForJob(started.jobId, 300_000)).status).toBe('succeeded');
    }
    if (job === undefined) throw new Error('no drill ran beside a scheduled backup in 5 attempts');
    expect((await A.json<Info>('/info')).drill.mode).toBe('off');
    const done = await A.waitForJob(job.jobId, 300_000);
    expect(done).toMatchObject({ status: 'succeeded', backupId: first.backupId });
    const backups = await pollUntil(
      async () => {
        const list = await A.json<Backup[]>('/api/v1/backups');
        return list.length >= 2 ? list : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 250, what: 'a scheduled backup to succeed' },
    );
    expect(backups.find((b) => b.triggeredBy === 'scheduler')).toBeDefined();
    expect(existsSync(join(setup.dir, drillName(first.backupId!)))).toBe(true);
  }, 600_000);
});
