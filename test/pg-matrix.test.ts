// Version matrix (issue 12): PostgreSQL servers 13-18 x the pg_dump/psql clients 15 (installed),
// 17 (Debian trixie) and 18 (Debian sid), all real binaries: the embedded server builds, the Debian
// clients in debootstrapped roots run through chroot wrappers (test/harness/pg-clients.ts), the
// built service as a child process and the built db-restore.
//
// For each (server, client) pair the service runs with PG_BIN_DIR pinned to that client and takes
// a backup over the API of the richest data set (fillRich):
// - client >= server: the job succeeds, the sidecar records that client's pg_dump version, and
//   db-restore (PG_BIN_DIR = the same client) restores it into a new database on the same server
//   with the same fingerprint. When the client is 17+ and the server 16 or older, the dump carries
//   `SET transaction_timeout = 0;`, which the server rejects: db-restore must drop it from the
//   preamble and say so on stderr (and must not mention it for matching majors).
// - client < server: the job fails with both versions in its error, and nothing is listed.
// The automatic choice: PG_BIN_DIR unset, PG_CLIENTS_DIR = the clients root: the service picks the
// client of the server's major, else the oldest newer one (13, 14, 15 -> 15; 16, 17 -> 17; 18 -> 18),
// and db-restore with PG_CLIENTS_DIR restores it. And the README's stock recipe (sed drops the line)
// for a 17 dump of a 16 server, which fails without the sed (exit 3).
//
// Every pair runs on every `npm test` (and alone: `npm run test:pg-matrix`): 18 pairs, the
// automatic choice for six servers and the stock recipe take ~30 s on a 2-core machine once the
// clients' Debian roots are in /var/tmp (a subset would save ~10 s of that; not worth a blind
// spot). Building the roots (trixie and sid in parallel, ~45 s, about 400 MB each) is paid once
// per fresh machine, i.e. on every CI run.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Backup, BackupSidecar, Job } from '@db-backup-service/contract';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  api,
  fillRich,
  fingerprint,
  freePort,
  PG_MAJORS,
  runProcess,
  startPostgres,
  startService,
  type PgMajor,
  type PostgresCluster,
  type ProcessRun,
  type ServiceProcess,
} from './harness/index.js';
import { clientVersion, PG_CLIENT_MAJORS, pgClientsRoot, type PgClientMajor } from './harness/pg-clients.js';

const CLI = fileURLToPath(new URL('../cli/bin/db-restore.js', import.meta.url));
const TOKEN = randomBytes(32).toString('hex');
const NO_SCHEDULE = { BACKUP_CRON: '0 0 1 1 *' };
const SOURCE_DB = 'app';
const TIMEOUT_LINE = 'SET transaction_timeout = 0;';

type Pair = readonly [server: PgMajor, client: PgClientMajor];
const PAIRS: readonly Pair[] = PG_MAJORS.flatMap((s) => PG_CLIENT_MAJORS.map((c) => [s, c] as const));

/** The client the automatic choice must take: the server's major, else the oldest newer one. */
function expectedAutoClient(server: PgMajor): PgClientMajor {
  const client = [...PG_CLIENT_MAJORS].sort((a, b) => a - b).find((c) => c >= server);
  if (client === undefined) throw new Error(`no client for server ${server}`);
  return client;
}

/** True when a dump by `client` carries `SET transaction_timeout` that `server` rejects. */
function needsTimeoutDropped(server: number, client: number): boolean {
  return client >= 17 && server <= 16;
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

let clientsRoot: string;
const clientVersions = new Map<PgClientMajor, string>();
let work: string;
const clusters = new Map<PgMajor, Promise<{ cluster: PostgresCluster; state: Record<string, string> }>>();
const services: ServiceProcess[] = [];

beforeAll(async () => {
  for (const f of [CLI, fileURLToPath(new URL('../cli/dist/bin.js', import.meta.url)), fileURLToPath(new URL('../server/dist/bin.js', import.meta.url))]) {
    if (!existsSync(f)) throw new Error(`${f} is missing: run npm run build first`);
  }
  work = await mkdtemp(join(tmpdir(), 'pg-matrix-'));
  // Builds (once per machine, cached in /var/tmp) the Debian roots of clients 17 and 18.
  clientsRoot = await pgClientsRoot();
  for (const c of PG_CLIENT_MAJORS) clientVersions.set(c, await clientVersion(binDir(c)));
}, 20 * 60_000);

afterAll(async () => {
  for (const svc of services) await svc.stop('SIGTERM', 30_000).catch(() => svc.kill());
  await Promise.all([...clusters.values()].map(async (p) => (await p.catch(() => undefined))?.cluster.destroy()));
  if (work) await rm(work, { recursive: true, force: true });
});

function binDir(client: PgClientMajor): string {
  return join(clientsRoot, String(client), 'bin');
}

/** The server of that major with the rich data set in SOURCE_DB, started once per file on first use. */
function server(major: PgMajor): Promise<{ cluster: PostgresCluster; state: Record<string, string> }> {
  let p = clusters.get(major);
  if (!p) {
    p = (async () => {
      const cluster = await startPostgres({ major });
      await cluster.createDatabase(SOURCE_DB);
      await fillRich(cluster, SOURCE_DB, { bigRows: 2_000 });
      return { cluster, state: await fingerprint(cluster, SOURCE_DB) };
    })();
    clusters.set(major, p);
  }
  return p;
}

function dbEnv(cluster: PostgresCluster): Record<string, string> {
  return { DB_HOST: cluster.host, DB_PORT: String(cluster.port), DB_NAME: SOURCE_DB, DB_USER: cluster.user, DB_PASSWORD: cluster.password };
}

interface BackupRun {
  job: Job;
  dir: string;
  listed: Backup[];
  files: string[];
  sidecar: BackupSidecar | undefined;
}

/** Starts the service with `clients` (PG_BIN_DIR or PG_CLIENTS_DIR), triggers one backup over the API, waits for it, stops the service. */
async function backupWith(cluster: PostgresCluster, clients: Record<string, string>): Promise<BackupRun> {
  const dir = await mkdtemp(join(work, `backups-${cluster.major}-`));
  const env = { ...dbEnv(cluster), API_TOKEN: TOKEN, ...NO_SCHEDULE, STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: dir, ...clients };
  let svc: ServiceProcess | undefined;
  for (let attempt = 1; !svc; attempt++) {
    try {
      svc = await startService({ ...env, HTTP_PORT: String(await freePort()) }, { waitFor: 'healthy' });
    } catch (err) {
      // freePort() releases the port before the service binds it: another process may take it.
      if (attempt < 3 && /EADDRINUSE|address already in use/i.test((err as Error).message)) continue;
      throw err;
    }
  }
  services.push(svc);
  try {
    const http = api(svc.baseUrl, TOKEN);
    const job = await http.backup({ timeoutMs: 120_000 });
    const listed = await http.json<Backup[]>('/api/v1/backups');
    const files = (await readdir(dir)).sort();
    const sidecarFile = job.backupId ? join(dir, `${job.backupId}.meta.json`) : undefined;
    const sidecar = sidecarFile && existsSync(sidecarFile) ? (JSON.parse(await readFile(sidecarFile, 'utf8')) as BackupSidecar) : undefined;
    return { job, dir, listed, files, sidecar };
  } finally {
    await svc.stop('SIGTERM', 30_000);
  }
}

/** The built db-restore with the Node that runs the tests: `--force --database <target> <id>` from the local backup dir. */
function dbRestore(cluster: PostgresCluster, backup: BackupRun, target: string, clients: Record<string, string>): Promise<ProcessRun> {
  return runProcess(process.execPath, [CLI, '--force', '--database', target, backup.job.backupId ?? 'missing'], {
    ...dbEnv(cluster),
    STORAGE_BACKEND: 'local',
    BACKUP_LOCAL_DIR: backup.dir,
    ...clients,
  });
}

let seq = 0;
/** A database name not used yet on that server (and dropped first, in case). */
async function newDatabase(cluster: PostgresCluster, what: string): Promise<string> {
  const name = `${what}_${++seq}_${randomBytes(3).toString('hex')}`;
  await cluster.dropDatabase(name);
  return name;
}

/** One backup per (server, client) pair, made by whichever test needs it first. */
const pairBackups = new Map<string, Promise<BackupRun>>();
function pairBackup(serverMajor: PgMajor, client: PgClientMajor): Promise<BackupRun> {
  const key = `${serverMajor}/${client}`;
  let p = pairBackups.get(key);
  if (!p) {
    p = (async () => backupWith((await server(serverMajor)).cluster, { PG_BIN_DIR: binDir(client) }))();
    pairBackups.set(key, p);
  }
  return p;
}

describe('PostgreSQL version matrix', () => {
  for (const [serverMajor, client] of PAIRS) {
    if (client >= serverMajor) {
      it(`server ${serverMajor}, client ${client} (PG_BIN_DIR): the backup records pg_dump ${client}; db-restore with psql ${client} restores identical data into a new database`, async () => {
        const { cluster, state } = await server(serverMajor);
        const backup = await pairBackup(serverMajor, client);
        expect(backup.job.status, backup.job.errorMessage ?? '').toBe('succeeded');
        expect(backup.sidecar?.pgDumpVersion).toBe(clientVersions.get(client));
        expect(backup.sidecar?.pgVersion).toBe(cluster.version.split(' ')[0]);
        expect(backup.listed.map((b) => b.id)).toEqual([backup.job.backupId]);

        const target = await newDatabase(cluster, 'restored');
        const res = await dbRestore(cluster, backup, target, { PG_BIN_DIR: binDir(client) });
        expect(res.code, res.stderr).toBe(0);
        if (needsTimeoutDropped(serverMajor, client)) expect(res.stderr).toContain(TIMEOUT_LINE);
        else expect(res.stderr).not.toContain('transaction_timeout');
        expect(await fingerprint(cluster, target)).toEqual(state);
        await cluster.dropDatabase(target);
      });
    } else {
      it(`server ${serverMajor}, client ${client} (PG_BIN_DIR): the job fails naming both versions, and nothing is listed`, async () => {
        const { cluster } = await server(serverMajor);
        const backup = await pairBackup(serverMajor, client);
        expect(backup.job.status).toBe('failed');
        expect(backup.job.backupId).toBeNull();
        expect(backup.job.errorMessage).toMatch(new RegExp(`PostgreSQL ${serverMajor}\\.\\d+`));
        expect(backup.job.errorMessage).toMatch(new RegExp(`\\b${escapeRe(clientVersions.get(client)!)}\\b`));
        expect(backup.job.errorMessage).toContain(cluster.version.split(' ')[0]);
        expect(backup.listed).toEqual([]);
        expect(backup.files.filter((f) => f.endsWith('.meta.json'))).toEqual([]);
      });
    }
  }

  for (const serverMajor of PG_MAJORS) {
    const client = expectedAutoClient(serverMajor);
    it(`server ${serverMajor}, automatic choice (PG_CLIENTS_DIR, no PG_BIN_DIR): pg_dump ${client}; db-restore with PG_CLIENTS_DIR restores it`, async () => {
      const { cluster, state } = await server(serverMajor);
      const backup = await backupWith(cluster, { PG_CLIENTS_DIR: clientsRoot });
      expect(backup.job.status, backup.job.errorMessage ?? '').toBe('succeeded');
      expect(backup.sidecar?.pgDumpVersion).toBe(clientVersions.get(client));

      const target = await newDatabase(cluster, 'auto');
      const res = await dbRestore(cluster, backup, target, { PG_CLIENTS_DIR: clientsRoot });
      expect(res.code, res.stderr).toBe(0);
      if (needsTimeoutDropped(serverMajor, client)) expect(res.stderr).toContain(TIMEOUT_LINE);
      else expect(res.stderr).not.toContain('transaction_timeout');
      expect(await fingerprint(cluster, target)).toEqual(state);
      await cluster.dropDatabase(target);
    });
  }

  describe('a pg_dump 17 dump of a PostgreSQL 16 server, with stock tools (psql 17)', () => {
    // The README's recipe, its sed taken from the README itself: it deletes the SET
    // transaction_timeout line from the preamble (up to the first "-- Name: " object header) only.
    const README_SED = /\| sed '([^']+)'/.exec(readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8'))?.[1];
    const RECIPE = `gunzip -c "$FILE" | sed '${README_SED}' | psql -X -v ON_ERROR_STOP=1 --single-transaction -q`;
    const WITHOUT_SED = `gunzip -c "$FILE" | psql -X -v ON_ERROR_STOP=1 --single-transaction -q`;

    async function stock(pipeline: string, what: string): Promise<{ run: ProcessRun; cluster: PostgresCluster; state: Record<string, string>; db: string }> {
      const { cluster, state } = await server(16);
      const backup = await pairBackup(16, 17);
      expect(backup.job.status, backup.job.errorMessage ?? '').toBe('succeeded');
      const file = join(backup.dir, backup.job.backupId!);
      const dump = await runProcess('/bin/sh', ['-c', 'gunzip -c "$1" | head -c 65536', 'sh', file], {});
      expect(dump.stdout).toMatch(/^SET transaction_timeout = 0;$/m);
      const db = await newDatabase(cluster, what);
      await cluster.createDatabase(db);
      const res = await runProcess('/bin/bash', ['-o', 'pipefail', '-c', pipeline], {
        // psql of the 17 client, first on PATH; the password only in the environment.
        PATH: `${binDir(17)}:${process.env.PATH ?? '/usr/bin:/bin'}`,
        FILE: file,
        PGHOST: cluster.host,
        PGPORT: String(cluster.port),
        PGUSER: cluster.user,
        PGPASSWORD: cluster.password,
        PGDATABASE: db,
      });
      return { run: res, cluster, state, db };
    }

    it('the README recipe (sed drops SET transaction_timeout) restores identical data', async () => {
      expect(README_SED).toBe('1,/^-- Name: /{/^SET transaction_timeout = /d;}');
      const { run: res, cluster, state, db } = await stock(RECIPE, 'stock');
      expect(res.code, res.stderr).toBe(0);
      expect(res.stderr).not.toMatch(/ERROR/);
      expect(await fingerprint(cluster, db)).toEqual(state);
      await cluster.dropDatabase(db);
    });

    it('without the sed, psql stops at the transaction_timeout line (exit 3)', async () => {
      const { run: res, cluster, db } = await stock(WITHOUT_SED, 'nosed');
      expect(res.code, res.stderr).toBe(3);
      expect(res.stderr).toContain('unrecognized configuration parameter "transaction_timeout"');
      // --single-transaction: nothing of the dump was committed.
      const { rows } = await cluster.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')`,
        [],
        db,
      );
      expect(rows[0]?.n).toBe(0);
      await cluster.dropDatabase(db);
    });
  });
});
