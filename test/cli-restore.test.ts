// db-restore against a real PostgreSQL (the harness's throwaway cluster), with LOCAL backup
// directories made here by the real pg_dump | gzip and a sidecar written like the service's.
// The CLI runs built (cli/dist/bin.js) as a child process: exit codes and stderr are the contract.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { escapeIdentifier } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SWAP_STAGES } from '../cli/src/index.js';
import { countedManifest, fingerprint, pgClientBin, pollUntil, usePostgres } from './harness/index.js';

const CLI = fileURLToPath(new URL('../cli/dist/bin.js', import.meta.url));
const ID_A = 'backup_20260510T010000Z.sql.gz';
const ID_B = 'backup_20260511T010000Z.sql.gz';
const ID_CORRUPT = 'backup_20260512T010000Z.sql.gz';
const ID_FAILING = 'backup_20260513T010000Z.sql.gz';

const pg = usePostgres();
let work: string;
/** Backups A (older) and B (newer, "latest"). */
let goodDir: string;
/** One backup each, kept apart so they never become "latest" of goodDir. */
let corruptDir: string;
let failingDir: string;
let stateA: Snapshot;
let stateB: Snapshot;
/** pg_dump's output of the states A and B. */
let sqlA: Buffer;
let sqlB: Buffer;

type Snapshot = Record<string, string>;

/**
 * The harness fingerprint (per-table md5, large objects' md5s, sequences, views, indexes), plus the
 * large objects' oids: a plain dump recreates them with their original oids, and a table that
 * refers to one by oid relies on that.
 */
async function snapshot(db: string): Promise<Snapshot> {
  const { rows } = await pg.query<{ oids: string }>(`SELECT coalesce(string_agg(oid::text, ',' ORDER BY oid), '') AS oids FROM pg_largeobject_metadata`, [], db);
  return { ...(await fingerprint(pg, db)), 'large object oids': rows[0]?.oids ?? '' };
}

async function databases(): Promise<string[]> {
  const { rows } = await pg.query<{ datname: string }>('SELECT datname FROM pg_database ORDER BY datname', [], 'postgres');
  return rows.map((r) => r.datname);
}

async function leftovers(): Promise<string[]> {
  return (await databases()).filter((d) => /__(restore|old)_/.test(d));
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr }));
  });
}

async function pgDump(db: string): Promise<Buffer> {
  // --no-owner --no-privileges as the service runs it; the password only in the environment.
  const res = await run(pgClientBin('pg_dump'), ['--no-owner', '--no-privileges'], { PATH: process.env.PATH ?? '', ...pg.pgEnv(db) });
  if (res.code !== 0) throw new Error(`pg_dump failed (${res.code}): ${res.stderr}`);
  return res.stdout;
}

/** Writes `<id>` and its sidecar the way the service does (sidecar last). */
async function writeBackup(dir: string, id: string, gz: Buffer, opts: { createdAt: string; sha256?: string; uncompressed: number; contents?: object }): Promise<void> {
  await writeFile(join(dir, id), gz);
  const sidecar = {
    id,
    createdAt: opts.createdAt,
    sizeBytes: gz.length,
    sha256: opts.sha256 ?? createHash('sha256').update(gz).digest('hex'),
    pgVersion: pg.version.split(' ')[0],
    durationMs: 42,
    triggeredBy: 'api',
    pgDumpVersion: pg.version.split(' ')[0],
    uncompressedSizeBytes: opts.uncompressed,
    compression: id.endsWith('.sql.zst') ? { format: 'zstd', level: 3 } : { format: 'gzip', level: 6 },
    // The service that wrote these backs up DB_NAME (app): db-restore picks only its backups.
    database: 'app',
    serviceVersion: '0.1.0',
    format: 'plain',
    contents: opts.contents ?? null,
  };
  await writeFile(join(dir, `${id}.meta.json`), `${JSON.stringify(sidecar, null, 2)}\n`);
}

interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function cliEnv(overrides: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    DB_HOST: pg.host,
    DB_PORT: String(pg.port),
    DB_USER: pg.user,
    DB_PASSWORD: pg.password,
    DB_NAME: 'app',
    STORAGE_BACKEND: 'local',
    BACKUP_LOCAL_DIR: goodDir,
    ...overrides,
  };
}

/** Runs the built CLI; `onStderr` sees stderr as it grows and may signal the child. */
function cli(args: string[], env: NodeJS.ProcessEnv, onStderr?: (text: string, kill: (s: NodeJS.Signals) => void) => void): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
      onStderr?.(stderr, (s) => child.kill(s));
    });
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Drops what earlier (killed) runs left, so no test depends on another's leftovers. */
async function dropLeftovers(): Promise<void> {
  for (const name of await leftovers()) await pg.dropDatabase(name);
}

/** Whether `db` accepts new connections (pg_database.datallowconn). */
async function allowsConnections(db: string): Promise<boolean | undefined> {
  const { rows } = await pg.query<{ datallowconn: boolean }>('SELECT datallowconn FROM pg_database WHERE datname = $1', [db], 'postgres');
  return rows[0]?.datallowconn;
}

/** Waits until no db-restore session is left on the server (a killed one's backend exits a moment later). */
async function noDbRestoreSessions(): Promise<void> {
  await pollUntil(
    async () => {
      const { rows } = await pg.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'db-restore'`, [], 'postgres');
      return rows[0]?.n === 0 ? true : undefined;
    },
    { timeoutMs: 10_000, what: 'the db-restore sessions to end' },
  );
}

/**
 * Runs the built CLI with DB_RESTORE_TEST_PAUSE_AT=`stage`; when it reports the pause, `atPause`
 * runs once (it may kill it, or break its connection and let it go on with SIGUSR2).
 */
async function cliPausedAt(stage: string, args: string[], env: NodeJS.ProcessEnv, atPause: (kill: (s: NodeJS.Signals) => void) => Promise<void>): Promise<CliRun & { paused: boolean }> {
  let paused: Promise<void> | null = null;
  const res = await cli(args, { ...env, DB_RESTORE_TEST_PAUSE_AT: stage }, (stderr, kill) => {
    if (paused === null && stderr.includes(`db-restore: test pause at ${stage}\n`)) paused = atPause(kill);
  });
  if (paused !== null) await paused;
  return { ...res, paused: paused !== null };
}

/** A target with content of its own, so "unchanged" and "replaced" are both observable. */
async function seedTarget(db: string, owner?: string): Promise<Snapshot> {
  await pg.dropDatabase(db);
  await pg.query(`CREATE DATABASE ${escapeIdentifier(db)}${owner ? ` OWNER ${escapeIdentifier(owner)}` : ''}`, [], 'postgres');
  await pg.query(`CREATE TABLE previous (id int PRIMARY KEY, note text); INSERT INTO previous VALUES (1, 'before the restore')`, [], db);
  await pg.query(`SELECT lo_from_bytea(0, 'previous large object')`, [], db);
  if (owner) await pg.query(`ALTER TABLE previous OWNER TO ${escapeIdentifier(owner)}`, [], db);
  return snapshot(db);
}

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build -w contract && npm run build -w sdk && npm run build -w cli`);
  work = await mkdtemp(join(tmpdir(), 'cli-restore-'));
  goodDir = join(work, 'good');
  corruptDir = join(work, 'corrupt');
  failingDir = join(work, 'failing');
  for (const d of [goodDir, corruptDir, failingDir]) await mkdir(d);

  await pg.createDatabase('src');
  await pg.query(
    `CREATE TABLE customers (id bigserial PRIMARY KEY, name text NOT NULL, email text UNIQUE, balance numeric(12,2), tags jsonb, created timestamptz DEFAULT now());
     CREATE TABLE orders (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), customer_id bigint REFERENCES customers(id), total numeric(12,2), placed date);
     CREATE INDEX orders_customer ON orders (customer_id);
     CREATE VIEW big_spenders AS SELECT c.name, sum(o.total) AS spent FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.name;
     INSERT INTO customers (name, email, balance, tags)
       SELECT 'customer ' || g, 'c' || g || '@example.com', g * 1.5, jsonb_build_object('n', g, 'even', g % 2 = 0) FROM generate_series(1, 500) g;
     INSERT INTO orders (customer_id, total, placed) SELECT 1 + g % 500, g * 0.25, date '2026-01-01' + g % 100 FROM generate_series(1, 2000) g;`,
    [],
    'src',
  );
  await pg.query(`SELECT lo_from_bytea(0, convert_to(repeat('large object A ', 1000), 'UTF8'))`, [], 'src');
  sqlA = await pgDump('src');
  stateA = await snapshot('src');
  await writeBackup(goodDir, ID_A, gzipSync(sqlA), { createdAt: '2026-05-10T01:00:05Z', uncompressed: sqlA.length });

  await pg.query(
    `INSERT INTO customers (name, email, balance) VALUES ('late customer', 'late@example.com', 0);
     DELETE FROM orders WHERE total < 10;
     CREATE TABLE notes (id int, body text); INSERT INTO notes VALUES (1, E'tab\\tand newline\\n and quote '' end');`,
    [],
    'src',
  );
  await pg.query(`SELECT lo_from_bytea(0, '\\x00ff00ff'::bytea)`, [], 'src');
  sqlB = await pgDump('src');
  stateB = await snapshot('src');
  await writeBackup(goodDir, ID_B, gzipSync(sqlB), { createdAt: '2026-05-11T01:00:05Z', uncompressed: sqlB.length });

  // At rest corruption: one flipped byte; the sidecar keeps the checksum of the intact file.
  const gzA = gzipSync(sqlA);
  const corrupt = Buffer.from(gzA);
  corrupt[Math.floor(corrupt.length / 2)]! ^= 0x55;
  await writeBackup(corruptDir, ID_CORRUPT, corrupt, { createdAt: '2026-05-12T01:00:05Z', sha256: createHash('sha256').update(gzA).digest('hex'), uncompressed: sqlA.length });

  // A valid, verified backup whose SQL fails near the end, after the large objects' own
  // BEGIN/COMMIT (which ends a --single-transaction early and commits what came before).
  const text = sqlB.toString('utf8');
  expect(text).toMatch(/^BEGIN;$/m);
  const trailer = text.lastIndexOf('\n-- PostgreSQL database dump complete');
  expect(trailer).toBeGreaterThan(text.search(/^COMMIT;$/m));
  const failing = Buffer.from(`${text.slice(0, trailer)}\nSELECT 1/0;\n${text.slice(trailer)}`);
  await writeBackup(failingDir, ID_FAILING, gzipSync(failing), { createdAt: '2026-05-13T01:00:05Z', uncompressed: failing.length });
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('db-restore (built CLI, real PostgreSQL, local backups)', () => {
  it('lists the backups newest first, as a table and as JSON, pinned ones marked', async () => {
    // The service's pin record (<id>.pin.json); removed again, the other tests restore from this directory.
    const pin = { at: '2026-05-12T09:00:00.000Z', reason: 'kept for the audit' };
    const pinFile = join(goodDir, `${ID_A}.pin.json`);
    await writeFile(pinFile, JSON.stringify({ format: 1, backupId: ID_A, ...pin }));
    try {
      const table = await cli([], cliEnv());
      expect(table.code, table.stderr).toBe(0);
      const lines = table.stdout.trim().split('\n');
      expect(lines[0]).toMatch(/^ID\s+CREATED\s+SIZE\s+AGE\s+PINNED$/);
      expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual([ID_B, ID_A]);
      expect(lines.slice(1).map((l) => l.split(/\s{2,}/)[4] ?? '')).toEqual(['', 'yes: kept for the audit']);

      const json = await cli(['--json'], cliEnv());
      expect(json.code).toBe(0);
      const list = JSON.parse(json.stdout) as { id: string; sha256: string; pinned: unknown }[];
      expect(list.map((b) => [b.id, b.pinned])).toEqual([
        [ID_B, null],
        [ID_A, pin],
      ]);
      expect(json.stderr).toBe('');
    } finally {
      await rm(pinFile, { force: true });
    }
  });

  it('--force <id> and --force latest restore identical data (swap, target replaced)', async () => {
    await seedTarget('app');
    const byId = await cli(['--force', ID_A], cliEnv());
    expect(byId.code, byId.stderr).toBe(0);
    expect(await snapshot('app')).toEqual(stateA);

    const latest = await cli(['--force', '--json', 'latest'], cliEnv());
    expect(latest.code, latest.stderr).toBe(0);
    expect(JSON.parse(latest.stdout)).toMatchObject({ ok: true, exitCode: 0, mode: 'swap', databaseState: 'restored', replaced: true, backup: { id: ID_B } });
    expect(await snapshot('app')).toEqual(stateB);
    expect(await leftovers()).toEqual([]);
  });

  it('--database other restores there and leaves DB_NAME untouched', async () => {
    const before = await seedTarget('app');
    await pg.dropDatabase('other');
    const res = await cli(['--force', '--database', 'other', 'latest'], cliEnv());
    expect(res.code, res.stderr).toBe(0);
    expect(await snapshot('other')).toEqual(stateB);
    expect(await snapshot('app')).toEqual(before);
  });

  it('--file restores a file, checked against its sidecar when present', async () => {
    await seedTarget('from_file');
    const withSidecar = join(work, ID_A);
    await copyFile(join(goodDir, ID_A), withSidecar);
    await copyFile(join(goodDir, `${ID_A}.meta.json`), `${withSidecar}.meta.json`);
    const res = await cli(['--force', '--database', 'from_file', '--file', withSidecar], cliEnv({ STORAGE_BACKEND: '', BACKUP_LOCAL_DIR: '' }));
    expect(res.code, res.stderr).toBe(0);
    expect(await snapshot('from_file')).toEqual(stateA);

    const bare = join(work, 'downloaded.sql.gz');
    await copyFile(join(goodDir, ID_B), bare);
    const noSidecar = await cli(['--force', '--database', 'from_file', '--file', bare], cliEnv());
    expect(noSidecar.code, noSidecar.stderr).toBe(0);
    expect(noSidecar.stderr).toContain('only its gzip integrity can be verified');
    expect(await snapshot('from_file')).toEqual(stateB);
  });

  it('Ctrl-C during the countdown cancels (exit 3) with the target untouched', async () => {
    const before = await seedTarget('app');
    let sent = false;
    const res = await cli(['latest'], cliEnv(), (stderr, kill) => {
      if (!sent && stderr.includes('press Ctrl-C to cancel')) {
        sent = true;
        kill('SIGINT');
      }
    });
    expect(sent).toBe(true);
    expect(res.code, res.stderr).toBe(3);
    expect(res.stderr).toContain('cancelled; nothing was changed');
    expect(await snapshot('app')).toEqual(before);
    expect(await leftovers()).toEqual([]);
  });

  it('a corrupted backup fails verification (exit 5) before anything is touched', async () => {
    const before = await seedTarget('app');
    const res = await cli(['--force', ID_CORRUPT], cliEnv({ BACKUP_LOCAL_DIR: corruptDir }));
    expect(res.code, res.stderr).toBe(5);
    expect(res.stderr).toMatch(/SHA-256 is [0-9a-f]{64}, the sidecar says/);
    expect(await snapshot('app')).toEqual(before);
    expect(await leftovers()).toEqual([]);
  });

  it('a backup whose sidecar checksum is wrong (valid gzip) streams into a scratch database that is dropped at the end; the target is untouched (exit 5)', async () => {
    const before = await seedTarget('app');
    const tampered = join(work, 'tampered');
    await mkdir(tampered, { recursive: true });
    const gz = gzipSync(await pgDump('src'));
    await writeBackup(tampered, ID_CORRUPT, gz, { createdAt: '2026-05-12T01:00:05Z', sha256: '0'.repeat(64), uncompressed: 0 });
    const res = await cli(['--force', '--json', ID_CORRUPT], cliEnv({ BACKUP_LOCAL_DIR: tampered }));
    expect(res.code, res.stderr).toBe(5);
    expect(res.stderr).toMatch(/verification of backup_20260512T010000Z\.sql\.gz failed: SHA-256 is [0-9a-f]{64}, the sidecar says 0{64}\. database app is unchanged; the scratch database was dropped\./);
    expect(JSON.parse(res.stdout)).toMatchObject({ ok: false, exitCode: 5, databaseState: 'untouched' });
    expect(await snapshot('app')).toEqual(before);
    expect(await leftovers()).toEqual([]);
  });

  it('a dump with large objects that fails near the end leaves the target exactly as it was (swap, exit 6)', async () => {
    const before = await seedTarget('app');
    const res = await cli(['--force', '--json', 'latest'], cliEnv({ BACKUP_LOCAL_DIR: failingDir }));
    expect(res.code, res.stderr).toBe(6);
    expect(res.stderr).toContain('division by zero');
    expect(res.stderr).toContain('database app is unchanged');
    expect(res.stderr).not.toContain(pg.password);
    expect(JSON.parse(res.stdout)).toMatchObject({ ok: false, exitCode: 6, databaseState: 'unchanged' });
    expect(await snapshot('app')).toEqual(before);
    expect(await leftovers()).toEqual([]);
  });

  it('the same failure with --in-place leaves the target existing and empty (exit 6)', async () => {
    await seedTarget('app');
    const res = await cli(['--force', '--in-place', 'latest'], cliEnv({ BACKUP_LOCAL_DIR: failingDir }));
    expect(res.code, res.stderr).toBe(6);
    expect(res.stderr).toContain('left empty');
    expect(await databases()).toContain('app');
    const { rows: tables } = await pg.query(`SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND c.relkind IN ('r', 'v', 'S')`, [], 'app');
    expect(tables).toEqual([]);
    const { rows: los } = await pg.query('SELECT count(*)::int AS n FROM pg_largeobject_metadata', [], 'app');
    expect(los[0]).toEqual({ n: 0 });
  });

  it('--in-place restores when nothing fails', async () => {
    await seedTarget('app');
    const res = await cli(['--force', '--in-place', ID_A], cliEnv());
    expect(res.code, res.stderr).toBe(0);
    expect(await snapshot('app')).toEqual(stateA);
  });

  it('a non-superuser that owns the database and has CREATEDB can restore; the owner is kept', async () => {
    const password = 'owner-pw-0123456789';
    await pg.query(`DROP ROLE IF EXISTS app_owner`, [], 'postgres').catch(() => undefined);
    await pg.query(`CREATE ROLE app_owner LOGIN CREATEDB PASSWORD '${password}'`, [], 'postgres');
    await seedTarget('owned', 'app_owner');
    const res = await cli(['--force', '--database', 'owned', 'latest'], cliEnv({ DB_USER: 'app_owner', DB_PASSWORD: password }));
    expect(res.code, res.stderr).toBe(0);
    expect(await snapshot('owned')).toEqual(stateB);
    const { rows } = await pg.query<{ owner: string }>(`SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = 'owned'`, [], 'postgres');
    expect(rows[0]?.owner).toBe('app_owner');
    expect(await leftovers()).toEqual([]);
  });

  it('a role without CREATEDB is told so before anything happens (exit 2)', async () => {
    await pg.query(`DROP ROLE IF EXISTS weak`, [], 'postgres').catch(() => undefined);
    await pg.query(`CREATE ROLE weak LOGIN PASSWORD 'weak-pw'`, [], 'postgres');
    const before = await seedTarget('app');
    const res = await cli(['--force', 'latest'], cliEnv({ DB_USER: 'weak', DB_PASSWORD: 'weak-pw' }));
    expect(res.code, res.stderr).toBe(2);
    expect(res.stderr).toContain('CREATEDB');
    expect(await snapshot('app')).toEqual(before);
  });

  it('a wrong password is a configuration error (exit 2) that does not echo the password', async () => {
    const res = await cli(['--force', 'latest'], cliEnv({ DB_PASSWORD: 'definitely-wrong-pw' }));
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('cannot log in');
    expect(res.stderr).not.toContain('definitely-wrong-pw');
  });

  it('ends the target\'s other sessions for the swap', async () => {
    await seedTarget('app');
    const { Client } = await import('pg');
    const session = new Client(pg.connectionConfig('app'));
    session.on('error', () => undefined);
    await session.connect();
    try {
      const res = await cli(['--force', ID_A], cliEnv());
      expect(res.code, res.stderr).toBe(0);
      expect(await snapshot('app')).toEqual(stateA);
      await expect(session.query('SELECT 1')).rejects.toThrow();
    } finally {
      await session.end().catch(() => undefined);
    }
  });

  it('refuses an argument that is not a backup id before touching the file system (exit 2)', async () => {
    const res = await cli(['--force', '../../etc/passwd'], cliEnv());
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('is not a backup id');
  });
});

describe('db-restore swap: every crash point is recoverable (H1)', () => {
  for (const stage of SWAP_STAGES) {
    it(`SIGKILL at ${stage}: the next run repairs first, and the target accepts connections with the old or the new content`, async () => {
      await dropLeftovers();
      const before = await seedTarget('app');
      const killed = await cliPausedAt(stage, ['--force', ID_A], cliEnv(), async (kill) => kill('SIGKILL'));
      expect(killed.paused, killed.stderr).toBe(true);
      expect(killed.signal).toBe('SIGKILL');
      await noDbRestoreSessions();

      // A second run whose backup fails verification: the repair must not depend on the restore.
      const next = await cli(['--force', '--json', ID_CORRUPT], cliEnv({ BACKUP_LOCAL_DIR: corruptDir }));
      expect(next.code, next.stderr).toBe(5);
      const warnings = (JSON.parse(next.stdout) as { warnings: string[] }).warnings.join('\n');
      expect(await allowsConnections('app')).toBe(true);
      // Up to the commit of the renames the old content; after it the new one; never neither.
      expect(await snapshot('app')).toEqual(stage === 'swapped' ? stateA : before);
      // Every leftover is named with the command that removes it, and that command works.
      const left = await leftovers();
      for (const name of left) {
        const drop = `DROP DATABASE ${escapeIdentifier(name)};`;
        expect(warnings).toContain(drop);
        await pg.query(drop, [], 'postgres');
      }
      expect(left.some((n) => n.includes('__old_'))).toBe(stage === 'swapped');
    });
  }

  it('a maintenance connection lost during the swap reports the state as unknown with the SQL that repairs it', async () => {
    await dropLeftovers();
    const target = 'Quoted "App"';
    const before = await seedTarget(target);
    const res = await cliPausedAt('connections-disallowed', ['--force', '--json', '--database', target, ID_A], cliEnv(), async (kill) => {
      await pg.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'db-restore'`, [], 'postgres');
      await noDbRestoreSessions();
      kill('SIGUSR2');
    });
    expect(res.paused, res.stderr).toBe(true);
    expect(res.code, res.stderr).toBe(6);
    const repair = 'ALTER DATABASE "Quoted ""App""" WITH ALLOW_CONNECTIONS true;';
    expect(JSON.parse(res.stdout)).toMatchObject({ ok: false, exitCode: 6, databaseState: 'unknown' });
    expect(res.stderr).toContain(repair);
    expect(res.stderr).not.toContain('is unchanged');
    // The printed SQL is what it takes: afterwards the target is back as it was.
    expect(await allowsConnections(target)).toBe(false);
    await pg.query(repair, [], 'postgres');
    expect(await snapshot(target)).toEqual(before);
    await dropLeftovers();
  });

  it('SIGHUP (a dropped kubectl exec or ssh session) during the swap waits for it to finish, like Ctrl-C', async () => {
    await dropLeftovers();
    await seedTarget('app');
    let hup = false;
    let resumed = false;
    const res = await cli(['--force', ID_A], cliEnv({ DB_RESTORE_TEST_PAUSE_AT: 'connections-disallowed' }), (stderr, kill) => {
      if (!hup && stderr.includes('db-restore: test pause at connections-disallowed\n')) {
        hup = true;
        kill('SIGHUP');
      }
      if (hup && !resumed && stderr.includes('finishing the current step first')) {
        resumed = true;
        kill('SIGUSR2');
      }
    });
    expect(hup).toBe(true);
    expect(res.signal).toBeNull();
    expect(res.code, res.stderr).toBe(0);
    expect(await allowsConnections('app')).toBe(true);
    expect(await snapshot('app')).toEqual(stateA);
    expect(await leftovers()).toEqual([]);
  });
});

describe('db-restore: the replaced content (M6)', () => {
  it('--keep-old keeps the replaced database, accepting connections, and prints its name and DROP command; the plan says later writes are lost', async () => {
    await dropLeftovers();
    const before = await seedTarget('app');
    const res = await cli(['--force', '--keep-old', ID_A], cliEnv());
    expect(res.code, res.stderr).toBe(0);
    expect(await snapshot('app')).toEqual(stateA);
    // The plan: what is lost, and what the backup is of (from its sidecar).
    expect(res.stdout).toContain('writes made to app after 2026-05-10T01:00:05Z are lost; the replaced copy is kept');
    expect(res.stdout).toContain(`of database app, PostgreSQL ${pg.version.split(' ')[0]}`);
    const [old, ...more] = await leftovers();
    expect(more).toEqual([]);
    expect(old).toMatch(/^app__old_[0-9a-f]{8}$/);
    const drop = `DROP DATABASE ${escapeIdentifier(old!)};`;
    expect(res.stdout).toContain(`The previous content is kept as database ${old}; drop it when done: ${drop}`);
    expect(await allowsConnections(old!)).toBe(true);
    expect(await snapshot(old!)).toEqual(before);

    // The next run names it too, and its DROP command removes it.
    const next = await cli(['--force', '--json', ID_CORRUPT], cliEnv({ BACKUP_LOCAL_DIR: corruptDir }));
    expect(next.code, next.stderr).toBe(5);
    expect((JSON.parse(next.stdout) as { warnings: string[] }).warnings.join('\n')).toContain(drop);
    await pg.query(drop, [], 'postgres');
    expect(await leftovers()).toEqual([]);
  });

  it('a target that refuses connections with no recorded intent is left so, and the run says how to enable it', async () => {
    await dropLeftovers();
    await seedTarget('app');
    // As an older db-restore killed mid-swap leaves it, or an operator who disabled it on purpose.
    await pg.query('ALTER DATABASE app WITH ALLOW_CONNECTIONS false', [], 'postgres');
    await pg.query('CREATE DATABASE app__restore_0badcafe', [], 'postgres');
    const res = await cli(['--force', '--json', ID_CORRUPT], cliEnv({ BACKUP_LOCAL_DIR: corruptDir }));
    expect(res.code, res.stderr).toBe(5);
    const warnings = (JSON.parse(res.stdout) as { warnings: string[] }).warnings.join('\n');
    expect(warnings).toContain('enable them with: ALTER DATABASE "app" WITH ALLOW_CONNECTIONS true;');
    expect(warnings).toContain('DROP DATABASE "app__restore_0badcafe";');
    expect(await allowsConnections('app')).toBe(false);
    await pg.query('ALTER DATABASE app WITH ALLOW_CONNECTIONS true', [], 'postgres');
    await dropLeftovers();
  });
});

describe('db-restore --drill', () => {
  const ID = 'backup_20260514T010000Z.sql.gz';
  let drillDir: string;
  let manifest: Awaited<ReturnType<typeof countedManifest>>;
  let gz: Buffer;

  /** The backup with `<id>.contents.json` and a sidecar recording its SHA-256 (or a wrong one). */
  async function writeDrillBackup(m: object, recordedSha?: string): Promise<void> {
    const json = Buffer.from(JSON.stringify(m));
    await writeFile(join(drillDir, `${ID}.contents.json`), json);
    const rows = manifest.tables.reduce((n, t) => n + t.rows, 0);
    const contents = { sha256: recordedSha ?? createHash('sha256').update(json).digest('hex'), tables: manifest.tables.length, rows, largeObjects: manifest.largeObjects };
    await writeBackup(drillDir, ID, gz, { createdAt: '2026-05-14T01:00:05Z', uncompressed: 0, contents });
  }

  async function drillLeftovers(): Promise<string[]> {
    return (await databases()).filter((d) => d.includes('__drill_'));
  }

  beforeAll(async () => {
    drillDir = join(work, 'drill');
    await mkdir(drillDir);
    const sql = await pgDump('src');
    gz = gzipSync(sql);
    manifest = await countedManifest(pg, 'src', sql.toString('utf8'));
  });

  it('passes with the per-table comparison printed, exit 0, the target untouched and no scratch left', async () => {
    const before = await seedTarget('app');
    await writeDrillBackup(manifest);
    const res = await cli(['--drill', ID], cliEnv({ BACKUP_LOCAL_DIR: drillDir, RESTORE_DRILL_QUERY: 'SELECT count(*) > 0 FROM customers' }));
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/rows of table public\.customers\s+501\s+501\s+ok/);
    expect(res.stdout).toMatch(/large objects\s+2\s+2\s+ok/);
    expect(res.stdout).toContain('query     SELECT count(*) > 0 FROM customers -> true');
    expect(res.stdout).toMatch(/Drill passed in .* \(scratch app__drill_[0-9a-f]{8}, dropped/);
    expect(res.stderr).not.toContain('countdown');
    const json = await cli(['--drill', 'latest', '--json'], cliEnv({ BACKUP_LOCAL_DIR: drillDir }));
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, exitCode: 0, backup: { id: ID }, drill: { status: 'passed', tablesChecked: manifest.tables.length, mismatches: [] } });
    expect(await snapshot('app')).toEqual(before);
    expect(await drillLeftovers()).toEqual([]);
  });

  it('a manifest claiming one row more fails naming the table (exit 6)', async () => {
    const tables = manifest.tables.map((t) => (t.name === 'orders' ? { ...t, rows: t.rows + 1 } : t));
    await writeDrillBackup({ ...manifest, tables });
    const res = await cli(['--drill', ID, '--json'], cliEnv({ BACKUP_LOCAL_DIR: drillDir }));
    expect(res.code, res.stderr).toBe(6);
    const orders = manifest.tables.find((t) => t.name === 'orders')!.rows;
    expect(res.stderr).toContain(`drill of ${ID} failed: table public.orders: manifest ${orders + 1} rows, restored ${orders}`);
    expect(JSON.parse(res.stdout)).toMatchObject({ ok: false, exitCode: 6, drill: { status: 'failed', mismatches: [{ what: 'rows of table public.orders', expected: orders + 1, actual: orders }] } });
    expect(await drillLeftovers()).toEqual([]);
  });

  it('a manifest whose SHA-256 is not the sidecar\'s is refused before anything is restored (exit 5)', async () => {
    await writeDrillBackup(manifest, 'a'.repeat(64));
    const res = await cli(['--drill', ID], cliEnv({ BACKUP_LOCAL_DIR: drillDir }));
    expect(res.code, res.stderr).toBe(5);
    expect(res.stderr).toContain(`${ID}.contents.json does not belong to this backup: its SHA-256 is`);
    expect(await drillLeftovers()).toEqual([]);
  });
});

/** `sql` through the zstd CLI, as `pg_dump | zstd` writes it (--check: the content checksum, zstd's default). */
function zstdCli(sql: Buffer): Buffer {
  return execFileSync('zstd', ['-c', '-q', '--check'], { input: sql, maxBuffer: 256 * 1024 * 1024 });
}

describe('db-restore of zstd backups (real pg_dump | zstd CLI)', () => {
  const ID_ZA = 'backup_20260515T010000Z.sql.zst';
  const ID_ZB = 'backup_20260516T010000Z.sql.zst';
  let zstdDir: string;
  let zstA: Buffer;

  beforeAll(async () => {
    zstdDir = join(work, 'zstd');
    await mkdir(zstdDir);
    zstA = zstdCli(sqlA);
    await writeBackup(zstdDir, ID_ZA, zstA, { createdAt: '2026-05-15T01:00:05Z', uncompressed: sqlA.length });
    await writeBackup(zstdDir, ID_ZB, zstdCli(sqlB), { createdAt: '2026-05-16T01:00:05Z', uncompressed: sqlB.length });
  });

  it('restores by id and latest (swap and --in-place), and a --file with or without its sidecar', async () => {
    await seedTarget('app');
    const byId = await cli(['--force', ID_ZA], cliEnv({ BACKUP_LOCAL_DIR: zstdDir }));
    expect(byId.code, byId.stderr).toBe(0);
    expect(await snapshot('app')).toEqual(stateA);
    const latest = await cli(['--force', '--in-place', '--json', 'latest'], cliEnv({ BACKUP_LOCAL_DIR: zstdDir }));
    expect(latest.code, latest.stderr).toBe(0);
    expect(JSON.parse(latest.stdout)).toMatchObject({ ok: true, mode: 'in-place', backup: { id: ID_ZB }, verified: { uncompressedBytes: sqlB.length } });
    expect(await snapshot('app')).toEqual(stateB);

    const withSidecar = join(work, ID_ZA);
    await copyFile(join(zstdDir, ID_ZA), withSidecar);
    await copyFile(join(zstdDir, `${ID_ZA}.meta.json`), `${withSidecar}.meta.json`);
    const file = await cli(['--force', '--database', 'from_zst', '--file', withSidecar], cliEnv({ STORAGE_BACKEND: '', BACKUP_LOCAL_DIR: '' }));
    expect(file.code, file.stderr).toBe(0);
    expect(await snapshot('from_zst')).toEqual(stateA);
    const bare = join(work, 'downloaded.sql.zst');
    await copyFile(join(zstdDir, ID_ZB), bare);
    const noSidecar = await cli(['--force', '--database', 'from_zst', '--file', bare], cliEnv());
    expect(noSidecar.code, noSidecar.stderr).toBe(0);
    expect(noSidecar.stderr).toContain('only its zstd integrity can be verified');
    expect(await snapshot('from_zst')).toEqual(stateB);
    expect(await leftovers()).toEqual([]);
  });

  it('--drill of a zstd backup passes (counted from its stream), the target untouched', async () => {
    const before = await seedTarget('app');
    const res = await cli(['--drill', ID_ZA, '--json'], cliEnv({ BACKUP_LOCAL_DIR: zstdDir }));
    expect(res.code, res.stderr).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({ ok: true, drill: { status: 'passed', mismatches: [] } });
    expect(await snapshot('app')).toEqual(before);
  });

  // The sidecar records the damaged bytes' own SHA-256 (damage before the hash: a faulty writer),
  // so only the zstd checks stand between them and the target.
  const damages: [string, (z: Buffer) => Buffer, RegExp][] = [
    [
      'a flipped byte',
      (z) => {
        const bad = Buffer.from(z);
        bad[Math.floor(bad.length / 2)]! ^= 0x55;
        return bad;
      },
      /not a valid zstd file \(.+\)/,
    ],
    ['a truncated frame', (z) => z.subarray(0, z.length - 100), /not a valid zstd file \(the zstd frame is truncated at byte \d+/],
    // The first frame holds the whole dump, trailer and all: only the single-frame rule refuses it.
    ['a second frame appended', (z) => Buffer.concat([z, zstdCli(Buffer.from('DROP TABLE customers CASCADE;\n'))]), /not a valid zstd file \(a second zstd frame at byte \d+/],
  ];
  for (const [what, damage, message] of damages) {
    it(`${what}: refused (exit 5); a swap leaves the target as it was and no scratch, --in-place leaves it untouched`, async () => {
      const dir = await mkdtemp(join(work, 'zstd-damaged-'));
      const bad = damage(zstA);
      await writeBackup(dir, ID_ZA, bad, { createdAt: '2026-05-15T01:00:05Z', uncompressed: sqlA.length });
      const before = await seedTarget('app');
      for (const mode of [[], ['--in-place']]) {
        const res = await cli(['--force', '--json', ...mode, ID_ZA], cliEnv({ BACKUP_LOCAL_DIR: dir }));
        expect(res.code, `${mode.join('')} ${res.stderr}`).toBe(5);
        expect(res.stderr).toMatch(message);
        expect(JSON.parse(res.stdout)).toMatchObject({ ok: false, exitCode: 5, databaseState: 'untouched' });
        expect(await snapshot('app')).toEqual(before);
        expect(await leftovers()).toEqual([]);
      }
    });
  }

  it('a --file whose bytes are not the format its name says is refused before anything (exit 5); a name of neither format is read by its first bytes, and bytes of neither format are a usage error (exit 2)', async () => {
    const before = await seedTarget('app');
    const misnamed = join(work, 'really-gzip.sql.zst');
    await copyFile(join(goodDir, ID_A), misnamed);
    const res = await cli(['--force', '--file', misnamed], cliEnv());
    expect(res.code, res.stderr).toBe(5);
    expect(res.stderr).toContain(`verification of really-gzip.sql.zst failed: it is a gzip file (it starts with 1f 8b), but its name says zstd (.sql.zst)`);
    const notDump = join(work, 'notes.txt');
    await writeFile(notDump, 'not a dump\n');
    const other = await cli(['--force', '--file', notDump], cliEnv());
    expect(other.code, other.stderr).toBe(2);
    expect(other.stderr).toContain(`--file ${notDump} is neither a gzip nor a zstd file`);
    expect(await snapshot('app')).toEqual(before);
    expect(await leftovers()).toEqual([]);

    // `curl -o backup.dump …`: no extension of either format, so the first bytes say zstd.
    const unnamed = join(work, 'backup.dump');
    await copyFile(join(zstdDir, ID_ZA), unnamed);
    const restored = await cli(['--force', '--database', 'from_unnamed', '--file', unnamed], cliEnv());
    expect(restored.code, restored.stderr).toBe(0);
    expect(await snapshot('from_unnamed')).toEqual(stateA);
  });

});
