// End to end, on both backends: backups written by the reference service (its sidecar fields
// only) list, download, restore with db-restore and expire like ours; and two services for two
// databases sharing one directory or bucket with the default name prefix stay apart (invariant 11).
// The built service and db-restore as child processes, real PostgreSQL, pg_dump and psql, fauxqs.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Backup, Info, Job } from '@db-backup-service/contract';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  api, fillVaried, fingerprint, freePort, pollUntil, startPostgres, startS3, startService, storageLocation,
  type Api, type PostgresCluster, type S3Harness, type ServiceProcess, type StorageLocation,
} from './harness/index.js';

const CLI = fileURLToPath(new URL('../cli/dist/bin.js', import.meta.url));
const TOKEN = randomBytes(32).toString('hex');
// No scheduled backups: the tests trigger their own.
const NO_SCHEDULE = { BACKUP_CRON: '0 0 1 1 *', INDEX_REFRESH_INTERVAL: '1s' };
const DAY = 86_400_000;
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

let cluster: PostgresCluster;
let s3: S3Harness;
let work: string;
const services: ServiceProcess[] = [];

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  [cluster, s3] = await Promise.all([startPostgres(), startS3()]);
  work = await mkdtemp(join(tmpdir(), 'shared-location-e2e-'));
});

afterAll(async () => {
  for (const svc of services) await svc.stop('SIGTERM', 30_000).catch(() => svc.kill());
  await cluster?.destroy();
  await s3?.destroy();
  if (work) await rm(work, { recursive: true, force: true });
});

/** A fresh location for one test's backups, reachable behind the services' backs. */
function location(backend: 'local' | 's3', tag: string): Promise<StorageLocation> {
  return storageLocation(backend, { tag, dir: work, s3 });
}

function serviceEnv(db: string, where: StorageLocation, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DB_HOST: cluster.host, DB_PORT: String(cluster.port), DB_NAME: db, DB_USER: cluster.user, DB_PASSWORD: cluster.password,
    API_TOKEN: TOKEN, ...NO_SCHEDULE, ...where.env, ...extra,
  };
}

async function launch(env: Record<string, string>): Promise<{ svc: ServiceProcess; api: Api; env: Record<string, string> }> {
  const full = { ...env, HTTP_PORT: String(await freePort()) };
  const svc = await startService(full, { waitFor: 'healthy' });
  services.push(svc);
  return { svc, api: api(svc.baseUrl, TOKEN), env: full };
}

/** db-restore with the service's own environment (as `docker exec` would see it). */
function restore(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const guard = setTimeout(() => child.kill('SIGKILL'), 90_000);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(guard);
      resolve({ code, stdout, stderr });
    });
  });
}

async function mutate(db: string): Promise<void> {
  await cluster.query(`UPDATE big SET payload = payload || 'changed' WHERE id % 5 = 0; DELETE FROM kinds WHERE id = (SELECT min(id) FROM kinds)`, [], db);
}

function idAt(date: Date): string {
  return `backup_${date.toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '')}.sql.gz`;
}

describe.each(['local', 's3'] as const)('%s backend', (backend) => {
  it("a backup written by the reference service lists, downloads, restores with db-restore and is pruned by age", async () => {
    const db = `ref_${backend}`;
    await cluster.createDatabase(db);
    await fillVaried(cluster, db, { bigRows: 1_000 });
    const where = await location(backend, 'reference');
    const { api: A, env } = await launch(serviceEnv(db, where, { RETENTION_DAYS: '7' }));

    // A real dump of this database, stored the way the reference service stores it: the same
    // file, a sidecar with exactly its seven fields, 30 days old.
    const state = await fingerprint(cluster, db);
    const ours = await A.backup();
    expect(ours.status, ours.errorMessage ?? '').toBe('succeeded');
    const dump = await where.read(ours.backupId!);
    const createdAt = new Date(Date.now() - 30 * DAY);
    const id = idAt(createdAt);
    const reference = {
      id, createdAt: createdAt.toISOString().replace(/\.\d+Z$/, 'Z'), sizeBytes: dump.length, sha256: sha256(dump), pgVersion: '15.18', durationMs: 4321, triggeredBy: 'scheduler',
    };
    await where.write(id, dump);
    await where.write(`${id}.meta.json`, Buffer.from(JSON.stringify(reference, null, 2)));

    const listed = await pollUntil(async () => (await A.json<Backup[]>('/api/v1/backups')).find((b) => b.id === id), { timeoutMs: 20_000, what: 'the reference backup to list' });
    expect(listed).toEqual({ ...reference, encryption: null, drill: null, pinned: null });
    const download = await A.request(`/api/v1/backups/${id}/download`);
    expect(download.status).toBe(200);
    expect(sha256(Buffer.from(await download.arrayBuffer()))).toBe(reference.sha256);

    await mutate(db);
    expect(await fingerprint(cluster, db)).not.toEqual(state);
    const run = await restore(['--force', '--json', id], env);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ ok: true, backup: { id, sha256: reference.sha256 }, verified: { sha256: reference.sha256 } });
    expect(await fingerprint(cluster, db)).toEqual(state);

    // Retention after the next backup: 30 days > RETENTION_DAYS, and it is not the newest.
    expect((await A.backup()).status).toBe('succeeded');
    await pollUntil(async () => ((await A.json<Backup[]>('/api/v1/backups')).some((b) => b.id === id) ? undefined : true), { timeoutMs: 20_000, what: 'retention to prune it' });
    const names = await where.names();
    expect(names).not.toContain(id);
    expect(names).not.toContain(`${id}.meta.json`);
  });

  it('two services for two databases on one location with the default prefix: each lists, prunes and restores only its own', async () => {
    const where = await location(backend, 'shared');
    const dbs = [`alpha_${backend}`, `beta_${backend}`] as const;
    for (const db of dbs) {
      await cluster.createDatabase(db);
      await fillVaried(cluster, db, { bigRows: 4_000 });
    }
    const states = await Promise.all(dbs.map((db) => fingerprint(cluster, db)));
    // RETENTION_DAYS=0: every job prunes down to the newest 2, the most aggressive policy.
    const [a, b] = await Promise.all(dbs.map((db) => launch(serviceEnv(db, where, { RETENTION_DAYS: '0', RETENTION_MIN_COUNT: '2' }))));
    const pair = [a!, b!];

    // Both back up and prune at the same time, round after round. A job may only fail because both
    // picked the same id in the same second (the later one is refused, nothing is replaced); an
    // upload aborted or a dump removed by the other service's clean-up fails the test.
    const succeeded = [0, 0];
    await pollUntil(
      async () => {
        const jobs = await Promise.all(pair.map((s) => s.api.backup()));
        jobs.forEach((job: Job, i) => {
          if (job.status === 'succeeded') succeeded[i]!++;
          else expect(job.errorMessage).toMatch(/was written by another service at the same time/);
        });
        return succeeded.every((n) => n >= 3) ? true : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 0, what: 'three successful backups on each service' },
    );

    const lists = await Promise.all(
      pair.map((s) => pollUntil(async () => {
        const list = await s.api.json<Backup[]>('/api/v1/backups');
        return list.length === 2 ? list : undefined;
      }, { timeoutMs: 20_000, what: 'each service to list its own 2' })),
    );
    // Disjoint, and each one's sidecars name its database: the storage holds 2 of each.
    const [idsA, idsB] = lists.map((list) => list.map((x) => x.id));
    expect(idsA!.filter((id) => idsB!.includes(id))).toEqual([]);
    for (const [i, ids] of [idsA!, idsB!].entries()) {
      for (const id of ids) expect(JSON.parse((await where.read(`${id}.meta.json`)).toString('utf8'))).toMatchObject({ database: dbs[i] });
    }
    const sidecars = (await where.names()).filter((n) => n.endsWith('.meta.json'));
    expect(sidecars.sort()).toEqual([...idsA!, ...idsB!].map((id) => `${id}.meta.json`).sort());

    for (const s of pair) {
      const info = await pollUntil(async () => {
        const body = await s.api.json<Info>('/info');
        return body.backup.foreignBackups === 2 ? body : undefined;
      }, { timeoutMs: 20_000, what: '/info to count the other service\'s 2 backups' });
      expect(info.backup.foreignBackups).toBe(2);
      expect(s.svc.logs.filter((l) => l.includes('backups of another database share this location'))).toHaveLength(1);
      for (const line of s.svc.logs) expect(line).not.toMatch(/removed an (unfinished backup|interrupted upload)/);
    }

    // db-restore latest in each service's environment restores that service's database's backup.
    for (const [i, s] of pair.entries()) {
      await mutate(dbs[i]!);
      const run = await restore(['--force', '--json', 'latest'], s.env);
      expect(run.code, run.stderr).toBe(0);
      expect(JSON.parse(run.stdout)).toMatchObject({ ok: true, backup: { id: lists[i]![0]!.id }, target: { database: dbs[i] } });
      expect(await fingerprint(cluster, dbs[i]!)).toEqual(states[i]);
    }
  });
});
