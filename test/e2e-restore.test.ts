// End to end, as an operator and a calling backend would use the product: the built service and the
// built db-restore CLI as child processes, real PostgreSQL, psql and pg_dump, the local backend and
// the S3 emulator. Backups are taken over the API (with the SDK), restored with the CLI, and the
// databases compared with the harness fingerprint (per-table md5, large objects, sequences, views,
// indexes).
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, watch } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { BackupServiceError, createClient, type Backup, type BackupServiceClient } from '@db-backup-service/sdk';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  api,
  fillVaried,
  fingerprint,
  freePort,
  restoreWithStockTools,
  runProcess,
  startPostgres,
  startS3,
  startService,
  type PostgresCluster,
  type S3Harness,
  type ServiceProcess,
} from './harness/index.js';

const CLI = fileURLToPath(new URL('../cli/dist/bin.js', import.meta.url));
const TOKEN = randomBytes(32).toString('hex');
const WRONG_TOKEN = randomBytes(32).toString('hex');
// Scheduled backups would race the tests' own (a never-backed-up service schedules its first one
// 60 s after start): a cron that fires once a year keeps the scheduler out of the way.
const NO_SCHEDULE = { BACKUP_CRON: '0 0 1 1 *' };
const ID_PATTERN = /^backup_\d{8}T\d{6}Z(_\d+)?\.sql\.gz$/;

let cluster: PostgresCluster;
let s3: S3Harness;
let work: string;
/** Every service started here, and every line any service or CLI run printed: checked for secrets. */
const services: ServiceProcess[] = [];
const printed: string[] = [];

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  [cluster, s3] = await Promise.all([startPostgres(), startS3()]);
  work = await mkdtemp(join(tmpdir(), 'e2e-restore-'));
});

afterAll(async () => {
  for (const svc of services) await svc.stop('SIGTERM', 30_000).catch(() => svc.kill());
  await cluster?.destroy();
  await s3?.destroy();
  if (work) await rm(work, { recursive: true, force: true });
  // Invariant 6: no secret in any service log line or CLI output (the wrong token included).
  const everything = [...services.flatMap((s) => s.logs), ...printed].join('\n');
  for (const secret of [cluster?.password, TOKEN, WRONG_TOKEN, s3?.secretAccessKey]) {
    if (secret) expect(everything).not.toContain(secret);
  }
});

// --- helpers -------------------------------------------------------------------------------------

function serviceEnv(db: string, storage: Record<string, string>, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DB_HOST: cluster.host,
    DB_PORT: String(cluster.port),
    DB_NAME: db,
    DB_USER: cluster.user,
    DB_PASSWORD: cluster.password,
    API_TOKEN: TOKEN,
    ...NO_SCHEDULE,
    ...storage,
    ...extra,
  };
}

function s3Storage(prefix: string): Record<string, string> {
  return {
    STORAGE_BACKEND: 's3',
    S3_BUCKET: s3.bucket,
    S3_ENDPOINT: s3.endpoint,
    S3_PREFIX: prefix,
    AWS_REGION: s3.region,
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
  };
}

async function launch(env: Record<string, string>): Promise<ServiceProcess> {
  for (let attempt = 1; ; attempt++) {
    try {
      const svc = await startService({ ...env, HTTP_PORT: String(await freePort()) }, { waitFor: 'healthy' });
      services.push(svc);
      return svc;
    } catch (err) {
      // freePort() releases the port before the service binds it: another process may take it.
      if (attempt < 3 && /EADDRINUSE|address already in use/i.test((err as Error).message)) continue;
      throw err;
    }
  }
}

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Names created in the run's own TMPDIR while it ran (the CLI's private download dir). */
  tmpCreated: string[];
}

/**
 * Runs the built CLI with exactly `env` (plus PATH and a TMPDIR of its own). Afterwards that
 * TMPDIR must be empty again, whatever the outcome: the private download dir is always removed.
 */
async function cli(args: string[], env: Record<string, string>): Promise<CliRun> {
  const tmp = await mkdtemp(join(work, 'tmp-'));
  const tmpCreated: string[] = [];
  const watcher = watch(tmp, (_event, name) => {
    if (name && !tmpCreated.includes(name)) tmpCreated.push(name);
  });
  try {
    const { code, stdout, stderr } = await runProcess(process.execPath, [CLI, ...args], { ...env, TMPDIR: tmp }, 90_000);
    printed.push(stdout, stderr);
    const run = { code, stdout, stderr };
    expect(await readdir(tmp), `db-restore ${args.join(' ')} left files in its TMPDIR`).toEqual([]);
    return { ...run, tmpCreated };
  } finally {
    watcher.close();
    await rm(tmp, { recursive: true, force: true });
  }
}

function cliEnv(svc: ServiceProcess, env: Record<string, string>): Record<string, string> {
  // The same variables as the service (docker exec sees exactly those), with its actual port.
  return { ...env, HTTP_PORT: String(svc.port) };
}

/** A backup through the SDK: trigger (or join the running job), wait, expect success. */
async function backupVia(client: BackupServiceClient): Promise<Backup> {
  for (;;) {
    const started = await client.triggerBackup();
    const jobId = started.kind === 'started' ? started.job.jobId : started.jobId;
    const job = await client.waitForJob(jobId, { intervalMs: 100, timeoutMs: 90_000 });
    expect(job.status, job.errorMessage ?? '').toBe('succeeded');
    if (started.kind === 'conflict') continue; // someone else's backup: take our own
    const backup = (await client.listBackups()).find((b) => b.id === job.backupId);
    if (!backup) throw new Error(`backup ${job.backupId} succeeded but is not listed`);
    return backup;
  }
}

/** Changes rows, a sequence and the large objects, so a restore has something to undo. */
async function mutate(db: string, what: string): Promise<void> {
  const tag = `${what} ${randomBytes(4).toString('hex')}`; // other.items.name is UNIQUE
  await cluster.query(
    `UPDATE big SET payload = payload || '${tag}' WHERE id % 7 = 0;
     DELETE FROM kinds WHERE id = (SELECT min(id) FROM kinds);
     INSERT INTO other.items (name) VALUES ('${tag}');
     SELECT nextval('other.counter');
     CREATE TABLE IF NOT EXISTS added_later (note text);
     INSERT INTO added_later VALUES ('${tag}');
     SELECT lo_from_bytea(0, convert_to('${tag}', 'UTF8'));`,
    [],
    db,
  );
}

async function leftoverDatabases(): Promise<string[]> {
  const { rows } = await cluster.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname ~ '__(restore|old)_'`, [], 'postgres');
  return rows.map((r) => r.datname);
}

function flipByteInTheMiddle(data: Buffer): Buffer {
  const copy = Buffer.from(data);
  copy[Math.floor(copy.length / 2)]! ^= 0x55;
  return copy;
}

// --- backup via the API, restore with db-restore, on both backends -----------------------------

describe.each(['local', 's3'] as const)('%s backend: backup via the API, db-restore as a child process', (backend) => {
  const db = `app_${backend}`;
  const prefix = `e2e/${backend}`;
  let dir: string;
  let env: Record<string, string>;
  let svc: ServiceProcess;
  let client: BackupServiceClient;
  let memo: Promise<{ backup: Backup; state: Record<string, string> }> | undefined;
  /** Some backup and the database's fingerprint when it was taken (made once, by the first test that needs it). */
  const aBackup = () =>
    (memo ??= (async () => {
      const state = await fingerprint(cluster, db);
      return { backup: await backupVia(client), state };
    })());

  beforeAll(async () => {
    await cluster.createDatabase(db);
    await fillVaried(cluster, db, { bigRows: 2_000, largeObjects: true });
    dir = await mkdtemp(join(work, `${backend}-backups-`));
    env = serviceEnv(db, backend === 'local' ? { STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: dir } : s3Storage(prefix));
    svc = await launch(env);
    client = createClient({ baseUrl: svc.baseUrl, token: TOKEN });
  });

  /** Reads or replaces a stored dump behind the service's back. */
  const stored = {
    async read(id: string): Promise<Buffer> {
      if (backend === 'local') return readFile(join(dir, id));
      const out = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: `${prefix}/${id}` }));
      return Buffer.from(await out.Body!.transformToByteArray());
    },
    async write(id: string, data: Buffer): Promise<void> {
      if (backend === 'local') await writeFile(join(dir, id), data);
      else await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `${prefix}/${id}`, Body: data }));
    },
  };

  it('restores <id> and latest into DB_NAME after its data changed: identical to the source at backup time', async () => {
    const stateA = await fingerprint(cluster, db);
    const A = await backupVia(client);
    await mutate(db, 'between A and B');
    const stateB = await fingerprint(cluster, db);
    expect(stateB).not.toEqual(stateA);
    const B = await backupVia(client);
    expect(B.id).not.toBe(A.id);
    await mutate(db, 'after B');
    expect(await fingerprint(cluster, db)).not.toEqual(stateB);

    const byId = await cli(['--force', A.id], cliEnv(svc, env));
    expect(byId.code, byId.stderr).toBe(0);
    expect(byId.stdout).toContain(`Restored ${A.id} into database ${db}`);
    expect(await fingerprint(cluster, db)).toEqual(stateA);

    await mutate(db, 'after restoring A');
    const latest = await cli(['--force', '--json', 'latest'], cliEnv(svc, env));
    expect(latest.code, latest.stderr).toBe(0);
    expect(JSON.parse(latest.stdout)).toMatchObject({
      ok: true,
      exitCode: 0,
      mode: 'swap',
      databaseState: 'restored',
      replaced: true,
      target: { database: db },
      backup: { id: B.id, sha256: B.sha256, sizeBytes: B.sizeBytes, origin: backend === 's3' ? `db-backup-service at ${svc.baseUrl}` : `local directory ${dir}` },
      verified: { sha256: B.sha256, sizeBytes: B.sizeBytes },
    });
    expect(await fingerprint(cluster, db)).toEqual(stateB);
    expect(await leftoverDatabases()).toEqual([]);

    // The swap streams the backup (S3: the service's download) straight into psql: no copy at all.
    for (const run of [byId, latest]) expect(run.tmpCreated).toEqual([]);
  });

  it('--in-place verifies first: S3 downloads to a private dir under TMPDIR, gone again afterwards', async () => {
    const { backup, state } = await aBackup();
    await mutate(db, 'before the in-place restore');
    const res = await cli(['--force', '--in-place', backup.id], cliEnv(svc, env));
    expect(res.code, res.stderr).toBe(0);
    expect(await fingerprint(cluster, db)).toEqual(state);
    if (backend === 's3') expect(res.tmpCreated.some((n) => n.startsWith('db-restore-'))).toBe(true);
    else expect(res.tmpCreated).toEqual([]);
  });

  it('the swap restores with no usable temp directory at all (TMPDIR a regular file, or missing): the dump never touches disk', async () => {
    const { backup, state } = await aBackup();
    const notADir = join(work, `tmpdir-is-a-file-${backend}`);
    await writeFile(notADir, 'not a directory');
    for (const tmp of [notADir, join(work, 'no-such-dir', 'tmp')]) {
      await mutate(db, `before restoring with TMPDIR=${tmp}`);
      const res = await runProcess(process.execPath, [CLI, '--force', backup.id], { ...cliEnv(svc, env), TMPDIR: tmp }, 90_000);
      printed.push(res.stdout, res.stderr);
      expect(res.code, res.stderr).toBe(0);
      expect(await fingerprint(cluster, db)).toEqual(state);
    }
    if (backend === 's3') {
      // The contrast: --in-place needs the temp directory for its verified copy.
      const inPlace = await runProcess(process.execPath, [CLI, '--force', '--in-place', backup.id], { ...cliEnv(svc, env), TMPDIR: notADir }, 90_000);
      printed.push(inPlace.stdout, inPlace.stderr);
      expect(inPlace.code).not.toBe(0);
      expect(await fingerprint(cluster, db)).toEqual(state);
    }
    expect(await leftoverDatabases()).toEqual([]);
  });

  it('--database other restores there and leaves DB_NAME untouched', async () => {
    const { backup, state } = await aBackup();
    const other = `other_${backend}`;
    await cluster.dropDatabase(other);
    await mutate(db, 'before --database');
    const before = await fingerprint(cluster, db);
    const res = await cli(['--force', '--database', other, backup.id], cliEnv(svc, env));
    expect(res.code, res.stderr).toBe(0);
    expect(await fingerprint(cluster, other)).toEqual(state);
    expect(await fingerprint(cluster, db)).toEqual(before);
    await cluster.dropDatabase(other);
  });

  it('without arguments lists what the API lists, as a table and with --json, a backup pinned through the SDK marked', async () => {
    const { backup } = await aBackup();
    // The local backend reads the <id>.pin.json the service wrote: the same pin as the API's.
    const pinned = await client.pin(backup.id, { reason: 'e2e: kept' });
    try {
      const listed = await api(svc.baseUrl, TOKEN).json<Backup[]>('/api/v1/backups');
      expect(listed.length).toBeGreaterThan(0);
      expect(listed.find((b) => b.id === backup.id)?.pinned).toEqual(pinned.pinned);

      const json = await cli(['--json'], cliEnv(svc, env));
      expect(json.code, json.stderr).toBe(0);
      expect(json.stderr).toBe('');
      expect(JSON.parse(json.stdout)).toEqual(listed);

      const table = await cli([], cliEnv(svc, env));
      expect(table.code, table.stderr).toBe(0);
      const [header, ...rows] = table.stdout.trim().split('\n');
      expect(header).toMatch(/^ID\s+CREATED\s+SIZE\s+AGE\s+PINNED$/);
      expect(rows.map((r) => r.split(/\s+/)[0])).toEqual(listed.map((b) => b.id));
      expect(rows.map((r) => r.split(/\s{2,}/)[4] ?? '')).toEqual(listed.map((b) => (b.id === backup.id ? 'yes: e2e: kept' : '')));
      for (const id of listed.map((b) => b.id)) expect(id).toMatch(ID_PATTERN);
    } finally {
      await client.unpin(backup.id);
    }
  });

  it('a stored dump corrupted behind the service\'s back is refused at verification (exit 5), database untouched', async () => {
    const { backup } = await aBackup();
    const original = await stored.read(backup.id);
    expect(createHash('sha256').update(original).digest('hex')).toBe(backup.sha256);
    await mutate(db, 'before the corrupt restore');
    const before = await fingerprint(cluster, db);
    await stored.write(backup.id, flipByteInTheMiddle(original));
    try {
      const res = await cli(['--force', '--json', backup.id], cliEnv(svc, env));
      expect(res.code, res.stderr).toBe(5);
      // Both backends: the CLI hashes the backup as it streams into the scratch database, against
      // the sidecar's checksum (S3: as the service lists it), and drops the scratch before COMMIT.
      expect(res.stderr).toMatch(/SHA-256 is [0-9a-f]{64}, the sidecar says/);
      expect(JSON.parse(res.stdout)).toMatchObject({ ok: false, exitCode: 5, databaseState: 'untouched' });
    } finally {
      await stored.write(backup.id, original);
    }
    expect(await fingerprint(cluster, db)).toEqual(before);
    expect(await leftoverDatabases()).toEqual([]);
  });

  if (backend === 's3') {
    it('a wrong API_TOKEN: exit 2 ("refused the API token"), no token in the output, database untouched', async () => {
      const before = await fingerprint(cluster, db);
      const restore = await cli(['--force', 'latest'], { ...cliEnv(svc, env), API_TOKEN: WRONG_TOKEN });
      expect(restore.code, restore.stderr).toBe(2);
      expect(restore.stderr).toContain('refused the API token (401)');
      const list = await cli(['--json'], { ...cliEnv(svc, env), API_TOKEN: WRONG_TOKEN });
      expect(list.code, list.stderr).toBe(2);
      expect(JSON.parse(list.stdout)).toMatchObject({ ok: false, exitCode: 2 });
      for (const text of [restore.stdout, restore.stderr, list.stdout, list.stderr]) {
        expect(text).not.toContain(WRONG_TOKEN);
        expect(text).not.toContain(TOKEN);
      }
      expect(await fingerprint(cluster, db)).toEqual(before);
    });
  }
});

// --- zstd backups (BACKUP_COMPRESSION=zstd), restored by db-restore and by stock tools ------------

describe.each(['local', 's3'] as const)('%s backend: zstd backups (BACKUP_COMPRESSION=zstd) restore with db-restore and with zstd -dc | psql', (backend) => {
  const db = `zstd_${backend}`;
  let env: Record<string, string>;
  let svc: ServiceProcess;
  let client: BackupServiceClient;

  beforeAll(async () => {
    await cluster.createDatabase(db);
    await fillVaried(cluster, db, { bigRows: 2_000, largeObjects: true });
    const dir = await mkdtemp(join(work, `zstd-${backend}-backups-`));
    const storage = backend === 'local' ? { STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: dir } : s3Storage(`e2e-zstd/${backend}`);
    // The drill restores on the backed-up server: the service's own drill must read zstd too.
    env = serviceEnv(db, storage, { BACKUP_COMPRESSION: 'zstd', RESTORE_DRILL_TARGET: 'server' });
    svc = await launch(env);
    client = createClient({ baseUrl: svc.baseUrl, token: TOKEN });
  });

  it(`the service's drill, db-restore by id (${backend === 'local' ? 'from the directory' : 'through the service'}), latest and --in-place, then the stock recipe: each identical to the source`, async () => {
    const state = await fingerprint(cluster, db);
    const backup = await backupVia(client);
    expect(backup.id).toMatch(/^backup_\d{8}T\d{6}Z(_\d+)?\.sql\.zst$/);
    const drill = await client.triggerDrill(backup.id);
    if (drill.kind !== 'started') throw new Error(`drill not started: ${JSON.stringify(drill)}`);
    const drilled = await client.waitForJob(drill.job.jobId, { intervalMs: 100, timeoutMs: 90_000 });
    expect(drilled.status, drilled.errorMessage ?? '').toBe('succeeded');
    expect((await client.listBackups()).find((b) => b.id === backup.id)?.drill).toMatchObject({ status: 'passed', detail: null });
    await mutate(db, 'after the zstd backup');

    const byId = await cli(['--force', '--json', backup.id], cliEnv(svc, env));
    expect(byId.code, byId.stderr).toBe(0);
    const origin = backend === 's3' ? `db-backup-service at ${svc.baseUrl}` : `local directory ${env.BACKUP_LOCAL_DIR}`;
    expect(JSON.parse(byId.stdout)).toMatchObject({ ok: true, mode: 'swap', backup: { id: backup.id, origin }, verified: { sha256: backup.sha256, sizeBytes: backup.sizeBytes } });
    expect(await fingerprint(cluster, db)).toEqual(state);

    for (const args of [['latest'], ['--in-place', backup.id]]) {
      await mutate(db, `before db-restore ${args.join(' ')}`);
      const res = await cli(['--force', ...args], cliEnv(svc, env));
      expect(res.code, res.stderr).toBe(0);
      expect(await fingerprint(cluster, db)).toEqual(state);
    }
    expect(await leftoverDatabases()).toEqual([]);

    // What a user without db-restore does: download it (named as the backup it is), zstd -dc | psql.
    const file = await client.downloadToFile('latest', (id) => join(work, `stock-${backend}-${id}`));
    expect(file).toMatchObject({ id: backup.id, sha256: backup.sha256 });
    expect(file.path.endsWith('.sql.zst')).toBe(true);
    const restored = `zstd_${backend}_stock`;
    await restoreWithStockTools(file.path, cluster, restored);
    expect(await fingerprint(cluster, restored)).toEqual(state);
  });
});

// --- no backup yet, and no service ---------------------------------------------------------------

describe('a fresh service, then a stopped one', () => {
  const db = 'fresh_app';
  beforeAll(async () => {
    await cluster.createDatabase(db);
    await fillVaried(cluster, db, { bigRows: 100 });
  });

  it('S3: latest is "not found" (exit 4) while the service runs; once it is stopped, exit 7 with a hint; database untouched', async () => {
    const before = await fingerprint(cluster, db);
    const env = serviceEnv(db, s3Storage('e2e/fresh'));
    const svc = await launch(env);
    const sdk = createClient({ baseUrl: svc.baseUrl, token: TOKEN });
    expect(await sdk.listBackups()).toEqual([]);
    expect(await sdk.latestBackup()).toBeNull();
    // The CLI finds the service by DB_RESTORE_SERVICE_URL here (HTTP_PORT in the tests above).
    const cliVars = { ...env, DB_RESTORE_SERVICE_URL: svc.baseUrl };

    const empty = await cli(['--json'], cliVars);
    expect(empty.code, empty.stderr).toBe(0);
    expect(JSON.parse(empty.stdout)).toEqual([]);
    const none = await cli(['--force', '--json', 'latest'], cliVars);
    expect(none.code, none.stderr).toBe(4);
    expect(none.stderr).toContain('has no successful backup yet');
    expect(JSON.parse(none.stdout)).toMatchObject({ ok: false, exitCode: 4 });

    expect(await svc.stop()).toEqual({ code: 0, signal: null });
    // The message goes to stderr with or without --json; --json adds the result on stdout.
    const down = await cli(['--force', '--json', 'latest'], cliVars);
    expect(down.code, down.stderr).toBe(7);
    expect(down.stderr).toContain(`cannot reach db-backup-service at ${svc.baseUrl}: ECONNREFUSED`);
    expect(down.stderr).toContain(`Check that it runs and is healthy (curl ${svc.baseUrl}/health)`);
    expect(down.stderr).toContain('DB_RESTORE_SERVICE_URL');
    expect(JSON.parse(down.stdout)).toMatchObject({ ok: false, exitCode: 7, databaseState: 'untouched' });
    const downList = await cli([], cliVars);
    expect(downList.code).toBe(7);
    expect(downList.stderr).toContain('cannot reach db-backup-service');

    expect(await fingerprint(cluster, db)).toEqual(before);
    expect(await leftoverDatabases()).toEqual([]);
  });

  it('local: latest in an empty backup directory is "not found" (exit 4)', async () => {
    const before = await fingerprint(cluster, db);
    const dir = await mkdtemp(join(work, 'empty-backups-'));
    const res = await cli(['--force', 'latest'], serviceEnv(db, { STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: dir }));
    expect(res.code, res.stderr).toBe(4);
    expect(await fingerprint(cluster, db)).toEqual(before);
  });
});

// --- the SDK against the running service ---------------------------------------------------------

interface CuttingProxy {
  readonly port: number;
  /** The raw request bytes (latin1) of each connection, in order. */
  readonly requests: string[];
  readonly cuts: number;
  close(): Promise<void>;
}

/**
 * A TCP proxy in front of the service that cuts the first connection whose response passes
 * `cutAfter` bytes (JSON answers are far smaller, so that is a download mid-body), then passes
 * everything through: a connection that breaks the way a flaky network does.
 */
async function cuttingProxy(targetPort: number, cutAfter: number): Promise<CuttingProxy> {
  const requests: string[] = [];
  const sockets = new Set<Socket>();
  let cuts = 0;
  const server: Server = createServer((down) => {
    const index = requests.push('') - 1;
    const up = connect(targetPort, '127.0.0.1');
    for (const s of [down, up]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.once('close', () => sockets.delete(s));
    }
    down.on('data', (chunk: Buffer) => {
      requests[index] += chunk.toString('latin1');
      up.write(chunk);
    });
    let sent = 0;
    let cut = false;
    up.on('data', (chunk: Buffer) => {
      if (cut) return;
      if (cuts === 0 && sent + chunk.length > cutAfter) {
        cuts += 1;
        cut = true;
        up.pause();
        down.write(chunk.subarray(0, cutAfter - sent), () => {
          down.destroy();
          up.destroy();
        });
        return;
      }
      sent += chunk.length;
      down.write(chunk);
    });
    down.once('end', () => up.end());
    up.once('end', () => down.end());
    down.once('close', () => up.destroy());
    up.once('close', () => down.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy: no port');
  return {
    port: address.port,
    requests,
    get cuts() {
      return cuts;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('SDK against the running service (local backend)', () => {
  const db = 'sdk_app';
  let svc: ServiceProcess;
  let client: BackupServiceClient;
  let memo: Promise<Backup> | undefined;
  const aBackup = () => (memo ??= backupVia(client));

  beforeAll(async () => {
    await cluster.createDatabase(db);
    // A backup of a few MB, compressed fast: big enough to cut a download in the middle.
    await fillVaried(cluster, db, { bigRows: 100_000 });
    const dir = await mkdtemp(join(work, 'sdk-backups-'));
    svc = await launch(serviceEnv(db, { STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: dir }, { BACKUP_COMPRESSION_LEVEL: '1' }));
    client = createClient({ baseUrl: svc.baseUrl, token: TOKEN });
  });

  it('triggerBackup starts a job; an immediate second trigger is a conflict value with the same jobId; waitForJob sees it succeed', async () => {
    // pg_dump takes ACCESS SHARE locks on every table first: while this session holds an
    // exclusive lock on one, the job cannot finish, so the second trigger surely meets it running.
    const locker = new pg.Client(cluster.connectionConfig(db));
    await locker.connect();
    let jobId: string;
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE big IN ACCESS EXCLUSIVE MODE');
      const first = await client.triggerBackup();
      if (first.kind !== 'started') throw new Error(`expected a started job, got a conflict with ${first.jobId}`);
      expect(first.job).toMatchObject({ status: expect.stringMatching(/^(queued|running)$/), triggeredBy: 'api', backupId: null });
      jobId = first.job.jobId;
      const second = await client.triggerBackup();
      expect(second).toEqual({ kind: 'conflict', jobId, conflict: expect.objectContaining({ status: 409, jobId }) });
      expect((await client.getJob(jobId)).status).toMatch(/^(queued|running)$/);
    } finally {
      await locker.query('COMMIT').catch(() => undefined);
      await locker.end();
    }
    const polled: string[] = [];
    const done = await client.waitForJob(jobId, { intervalMs: 100, timeoutMs: 90_000, onPoll: (j) => polled.push(j.status) });
    expect(done).toMatchObject({ jobId, status: 'succeeded', errorMessage: null, backupId: expect.stringMatching(ID_PATTERN) });
    expect(polled.at(-1)).toBe('succeeded');
    expect((await client.latestBackup())?.id).toBe(done.backupId);
  });

  it('downloadToFile resumes after the connection is cut mid-body; the file has the backup\'s SHA-256', async () => {
    const backup = await aBackup();
    expect(backup.sizeBytes).toBeGreaterThan(1_000_000);
    const cutAfter = Math.floor(backup.sizeBytes / 3);
    const proxy = await cuttingProxy(svc.port, cutAfter);
    const target = join(await mkdtemp(join(work, 'sdk-download-')), backup.id);
    try {
      const viaProxy = createClient({ baseUrl: `http://127.0.0.1:${proxy.port}`, token: TOKEN });
      const retries: { attempt: number; resumeFrom: number; code: string }[] = [];
      const file = await viaProxy.downloadToFile(backup.id, target, {
        onRetry: ({ attempt, resumeFrom, error }) => retries.push({ attempt, resumeFrom, code: error.code }),
      });
      expect(proxy.cuts).toBe(1);
      expect(file).toEqual({ id: backup.id, path: target, sizeBytes: backup.sizeBytes, sha256: backup.sha256, resumes: expect.any(Number) });
      expect(file.resumes).toBeGreaterThanOrEqual(1);
      expect(retries[0]).toMatchObject({ attempt: 1, code: 'CONNECTION_LOST' });
      expect(retries[0]!.resumeFrom).toBeGreaterThan(0);
      expect(retries[0]!.resumeFrom).toBeLessThanOrEqual(cutAfter);
      // The resume asked for the rest only, pinned to the same representation.
      expect(proxy.requests.some((r) => new RegExp(`range: bytes=${retries[0]!.resumeFrom}-\\r\\n`, 'i').test(r) && /if-range: "[0-9a-f]{64}"/i.test(r))).toBe(true);
      const onDisk = await readFile(target);
      expect(onDisk.length).toBe(backup.sizeBytes);
      expect(createHash('sha256').update(onDisk).digest('hex')).toBe(backup.sha256);
      expect(existsSync(`${target}.partial`)).toBe(false);
    } finally {
      await proxy.close();
    }
  });

  it('db-restore through the service resumes a download cut mid-body and streams on into the same restore', async () => {
    const backup = await aBackup();
    const proxy = await cuttingProxy(svc.port, Math.floor(backup.sizeBytes / 3));
    try {
      await cluster.dropDatabase('sdk_copy');
      const env = {
        ...serviceEnv(db, { STORAGE_BACKEND: 's3' }),
        DB_RESTORE_SERVICE_URL: `http://127.0.0.1:${proxy.port}`,
      };
      const res = await cli(['--force', '--json', '--database', 'sdk_copy', backup.id], env);
      expect(res.code, res.stderr).toBe(0);
      expect(proxy.cuts).toBe(1);
      const result = JSON.parse(res.stdout) as { warnings: string[]; verified: { sha256: string } };
      expect(result.warnings.join('\n')).toMatch(/download interrupted .*; resuming at byte \d+ \(attempt 1\)/);
      expect(result.verified.sha256).toBe(backup.sha256);
      expect(proxy.requests.some((r) => /range: bytes=\d+-\r\n/i.test(r) && /if-range: "[0-9a-f]{64}"/i.test(r))).toBe(true);
      expect(res.tmpCreated).toEqual([]);
      expect(await fingerprint(cluster, 'sdk_copy')).toEqual(await fingerprint(cluster, db));
    } finally {
      await proxy.close();
    }
  });

  it('errors are BackupServiceError values with status and problem body, never the token', async () => {
    const wrong = createClient({ baseUrl: svc.baseUrl, token: WRONG_TOKEN });
    const unauthorized = await wrong.listBackups().catch((e: unknown) => e);
    expect(unauthorized).toBeInstanceOf(BackupServiceError);
    expect(unauthorized).toMatchObject({ code: 'UNAUTHORIZED', status: 401, problem: { status: 401 } });
    expect((unauthorized as Error).message).not.toContain(WRONG_TOKEN);
    printed.push((unauthorized as Error).message);

    const missing = await client.download('backup_20000101T000000Z.sql.gz').catch((e: unknown) => e);
    expect(missing).toMatchObject({ name: 'BackupServiceError', code: 'NOT_FOUND', status: 404 });
    const health = await client.health();
    expect(health.status).toBe('UP');
  });
});
