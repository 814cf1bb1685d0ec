// runDrill and dropLeftoverDrillDatabases against a real PostgreSQL, with dumps written by the
// real pg_dump client: the drill restores into a scratch database, counts it against a manifest,
// and leaves no scratch database behind whatever happened.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { dropLeftoverDrillDatabases, findPsql, runDrill, type DrillOptions, type DrillServer, type PgClient } from '@db-backup-service/restore';
import type { ContentsManifest } from '@db-backup-service/contract';
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { countedManifest, fillRich, pgClientBin, pollUntil, runProcess, systemPgBinDir, usePostgres } from './harness/index.js';

const cluster = usePostgres();
let server: DrillServer;
let psql: PgClient;
/** The fillRich dump (gzipped) and the manifest counted from the source database. */
let good: Buffer;
let manifest: ContentsManifest;

async function pgDump(db: string): Promise<string> {
  const res = await runProcess(pgClientBin('pg_dump'), ['--no-owner', '--no-privileges'], cluster.pgEnv(db));
  if (res.code !== 0) throw new Error(`pg_dump failed (${res.code}): ${res.stderr}`);
  return res.stdout;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function drillDatabases(): Promise<string[]> {
  const { rows } = await cluster.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE '%\\_\\_drill\\_%' ORDER BY 1`, [], 'postgres');
  return rows.map((r) => r.datname);
}

async function psqlSessions(): Promise<number> {
  const { rows } = await cluster.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname LIKE 'app\\_\\_drill\\_%'`, [], 'postgres');
  return rows[0]?.n ?? 0;
}

function drill(over: Partial<DrillOptions> & { gz?: Buffer } = {}): ReturnType<typeof runDrill> {
  const gz = over.gz ?? good;
  const warnings: string[] = [];
  return runDrill({
    server,
    database: 'app',
    psql,
    dump: Readable.from([gz]),
    format: 'gzip',
    decrypt: null,
    expected: { sha256: sha(gz), sizeBytes: gz.length },
    manifest,
    query: null,
    signal: new AbortController().signal,
    warn: (m) => warnings.push(m),
    ...over,
  });
}

beforeAll(async () => {
  server = { host: cluster.host, port: cluster.port, user: cluster.user, password: cluster.password, tls: { mode: 'disable', rootCert: null, cert: null, key: null } };
  psql = (await findPsql({ pgBinDir: systemPgBinDir() ?? null, clientsDir: null, path: process.env.PATH ?? '', env: {} })).psql;
  await cluster.createDatabase('drill_src');
  await fillRich(cluster, 'drill_src');
  // Objects fillRich has none of: a function whose body holds a CREATE TABLE line, a procedure, a materialized view.
  await cluster.query(
    `CREATE FUNCTION other.make() RETURNS void LANGUAGE plpgsql AS $$
     BEGIN
     CREATE TABLE IF NOT EXISTS other.made (id int);
     END $$;
     CREATE PROCEDURE other.noop() LANGUAGE sql AS $$ SELECT 1 $$;
     CREATE MATERIALIZED VIEW other.item_count AS SELECT count(*) AS n FROM other.items;`,
    [],
    'drill_src',
  );
  const sql = await pgDump('drill_src');
  good = gzipSync(sql);
  manifest = await countedManifest(cluster, 'drill_src', sql);
  expect(manifest.objects.functions).toBe(2);
  expect(manifest.largeObjects).toBe(3);
});

describe('runDrill (real PostgreSQL, real pg_dump)', () => {
  it('passes on fillRich data with exact counts, runs the query read-only, and drops its scratch database', async () => {
    const out = await drill({ query: 'SELECT count(*) = 50 FROM "données"."tärkeä 表"' });
    expect(out.detail).toBeNull();
    expect(out).toMatchObject({ status: 'passed', mismatches: [], tablesChecked: manifest.tables.length, query: { result: true } });
    expect(out.rowsChecked).toBe(manifest.tables.reduce((n, t) => n + t.rows, 0));
    expect(out.scratchDatabase).toMatch(/^app__drill_[0-9a-f]{8}$/);
    expect(out.serverVersion).toBe(cluster.version);
    expect(await drillDatabases()).toEqual([]);
  });

  it('without a manifest, counts the stream itself as it restores and compares with that', async () => {
    const out = await drill({ manifest: null });
    expect(out.detail).toBeNull();
    expect(out).toMatchObject({ status: 'passed', mismatches: [], tablesChecked: manifest.tables.length });
    expect(out.rowsChecked).toBe(manifest.tables.reduce((n, t) => n + t.rows, 0));
    expect(await drillDatabases()).toEqual([]);
  });

  it('fails naming the table when the manifest claims one row more', async () => {
    const tables = manifest.tables.map((t) => (t.schema === 'public' && t.name === 'big' ? { ...t, rows: t.rows + 1 } : t));
    const out = await drill({ manifest: { ...manifest, tables } });
    expect(out.status).toBe('failed');
    expect(out.detail).toBe('table public.big: manifest 2001 rows, restored 2000');
    expect(out.mismatches).toEqual([{ what: 'rows of table public.big', expected: 2001, actual: 2000 }]);
    expect(await drillDatabases()).toEqual([]);
  });

  it('a missing table and a failing query are failures too', async () => {
    const out = await drill({ manifest: { ...manifest, tables: [...manifest.tables, { schema: 'public', name: 'gone', rows: 3 }] }, query: 'SELECT false' });
    expect(out.status).toBe('failed');
    expect(out.detail).toBe('table public.gone: manifest 3 rows, missing from the restored database');
    expect(out.query).toEqual({ sql: 'SELECT false', result: false });
    const writes = await drill({ query: 'CREATE TABLE x (id int)' });
    expect(writes.detail).toMatch(/RESTORE_DRILL_QUERY failed: cannot execute CREATE TABLE in a read-only transaction/);
  });

  it('a stored dump that fails half-way (valid gzip and checksum) fails with psql\'s message and leaves no scratch database', async () => {
    const sql = gunzipSync(good).toString('utf8');
    const middle = sql.indexOf('\nCREATE VIEW');
    const failing = gzipSync(`${sql.slice(0, middle)}\nSELECT 1/0;\n${sql.slice(middle)}`);
    const out = await drill({ gz: failing });
    expect(out.status).toBe('failed');
    expect(out.detail).toMatch(/^psql exited with code 3:\n[\s\S]*division by zero/);
    expect(out.detail).not.toContain(cluster.password);
    expect(out.tablesChecked).toBe(0);
    expect(await drillDatabases()).toEqual([]);
  });

  it('a checksum mismatch fails the drill before COMMIT, with the checksums named', async () => {
    const out = await drill({ expected: { sha256: 'f'.repeat(64), sizeBytes: good.length } });
    expect(out.status).toBe('failed');
    expect(out.detail).toMatch(/^verification of the backup failed: SHA-256 is [0-9a-f]{64}, the sidecar says f{64}$/);
    expect(await drillDatabases()).toEqual([]);
  });

  it('adapts the preamble of a newer pg_dump\'s dump to the drill server, naming each dropped line', async () => {
    const sql = gunzipSync(good).toString('utf8');
    const newer = sql.replace(/^-- Dumped by pg_dump version .*$/m, '-- Dumped by pg_dump version 17.6').replace(/^SET statement_timeout = 0;$/m, 'SET statement_timeout = 0;\nSET transaction_timeout = 0;');
    expect(newer).toContain('SET transaction_timeout = 0;');
    const warnings: string[] = [];
    const out = await drill({ gz: gzipSync(newer), warn: (m) => warnings.push(m) });
    expect(out.detail).toBeNull();
    expect(out.status).toBe('passed');
    expect(warnings).toEqual([expect.stringMatching(/^drill: the dump \(by pg_dump 17\.6\) sets a parameter that PostgreSQL \S+ does not have; dropped from its preamble: SET transaction_timeout = 0;$/)]);
  });

  it('drills a zstd backup (pg_dump | zstd CLI) with exact counts; a second frame, or gzip bytes named zstd, fail it and leave no scratch', async () => {
    const zst = execFileSync('zstd', ['-c', '-q', '--check'], { input: gunzipSync(good) });
    const out = await drill({ gz: zst, format: 'zstd' });
    expect(out.detail).toBeNull();
    expect(out).toMatchObject({ status: 'passed', mismatches: [], tablesChecked: manifest.tables.length });
    expect(out.rowsChecked).toBe(manifest.tables.reduce((n, t) => n + t.rows, 0));
    // Node's decoder would stop after the first frame (the whole dump): the frame check refuses what follows.
    const twoFrames = await drill({ gz: Buffer.concat([zst, zst]), format: 'zstd' });
    expect(twoFrames).toMatchObject({ status: 'failed', tablesChecked: 0 });
    expect(twoFrames.detail).toMatch(new RegExp(`^verification of the backup failed: not a valid zstd file \\(a second zstd frame at byte ${zst.length}`));
    const misnamed = await drill({ format: 'zstd' });
    expect(misnamed.detail).toBe('verification of the backup failed: it is a gzip file (it starts with 1f 8b), but its name says zstd (.sql.zst)');
    expect(await drillDatabases()).toEqual([]);
  });

  it('an abort rejects with the reason and drops the scratch database', async () => {
    const controller = new AbortController();
    const slow = new Readable({ read() {} });
    slow.push(good.subarray(0, 100_000));
    const drilled = drill({ dump: slow, signal: controller.signal });
    // Aborted while psql waits for the rest of the dump: the scratch exists and psql is connected to it.
    await pollUntil(async () => ((await psqlSessions()) > 0 ? true : undefined), { timeoutMs: 30_000, what: 'psql to connect to the scratch database' });
    controller.abort(new Error('stop the drill'));
    await expect(drilled).rejects.toThrow('stop the drill');
    expect(await drillDatabases()).toEqual([]);
  });
});

describe('dropLeftoverDrillDatabases', () => {
  it('drops a leftover with no session and keeps one with a session (a running drill)', async () => {
    await cluster.query('CREATE DATABASE app__drill_0badcafe', [], 'postgres');
    await cluster.query('CREATE DATABASE app__drill_1badcafe', [], 'postgres');
    await cluster.query('CREATE DATABASE app__drill_other', [], 'postgres');
    const session = new pg.Client(cluster.connectionConfig('app__drill_1badcafe'));
    await session.connect();
    try {
      const warnings: string[] = [];
      expect(await dropLeftoverDrillDatabases(server, 'app', (m) => warnings.push(m))).toEqual(['app__drill_0badcafe']);
      expect(warnings).toEqual([]);
      expect(await drillDatabases()).toEqual(['app__drill_1badcafe', 'app__drill_other']);
    } finally {
      await session.end();
      await cluster.dropDatabase('app__drill_1badcafe');
      await cluster.dropDatabase('app__drill_other');
    }
  });
});
