// Sample data and comparisons shared by the engine, service and CLI tests: a database with every
// kind of value a plain dump must escape, and a fingerprint that equal databases share.
import { spawn } from 'node:child_process';
import pg from 'pg';
import type { PostgresCluster } from './postgres.js';
import { pgClientBin } from './postgres.js';

/** Text with every kind of trouble a plain dump has to escape. */
export const TRICKY_TEXT = [
  "it's \"quoted\"",
  'line one\nline two\r\nline three',
  'tab\tand backslash \\ and \\. alone:',
  '\\.',
  'unicode: ü ß é 漢字 😀 \u{1F680}',
  '',
  'COPY public.kinds FROM stdin;',
  '-- PostgreSQL database dump complete',
];

/**
 * Fills `db` with varied types (text with quotes/newlines/unicode, jsonb, bytea, numeric, arrays,
 * uuid, timestamps), a table of `bigRows` rows with an index, a second schema with a sequence,
 * an identity column and a view, and a mixed-case table.
 */
export async function fillVaried(cluster: PostgresCluster, db: string, opts: { bigRows?: number; largeObjects?: boolean } = {}): Promise<void> {
  const client = new pg.Client(cluster.connectionConfig(db));
  await client.connect();
  try {
    await client.query(`
      CREATE TABLE kinds (
        id serial PRIMARY KEY, t text, j jsonb, b bytea, n numeric(40, 15), ints int[], texts text[],
        ts timestamptz, u uuid, f float8, flag boolean
      );
      CREATE TABLE big (id bigint PRIMARY KEY, payload text NOT NULL, v numeric, created date);
      CREATE INDEX big_payload_idx ON big (payload);
      CREATE SCHEMA other;
      CREATE TABLE other.items (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text UNIQUE, tags text[]);
      CREATE SEQUENCE other.counter START 100;
      CREATE VIEW other.item_names AS SELECT upper(name) AS name FROM other.items;
      CREATE TABLE "Mixed Case" ("Weird ""col""" text);
    `);
    for (const [i, t] of TRICKY_TEXT.entries()) {
      await client.query(
        'INSERT INTO kinds (t, j, b, n, ints, texts, ts, u, f, flag) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)',
        [
          t,
          JSON.stringify({ t, nested: { list: [1, 2.5, null, 'x'], quote: "'\"" }, i }),
          Buffer.from([...Array(256).keys()].map((k) => (k + i) % 256)),
          `${i}12345678901234567890.123456789012345`,
          [i, -i, 2147483647],
          [t, 'NULL', null, '{braces}', 'a,b'],
          new Date(Date.UTC(2000 + i, i, 1 + i, 12, 34, 56, 789)),
          `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
          i === 0 ? Number.NaN : i / 3,
          i % 2 === 0,
        ],
      );
    }
    await client.query('INSERT INTO kinds (t) VALUES (NULL)');
    await client.query(
      `INSERT INTO big SELECT g, md5(g::text) || repeat(chr(65 + g % 26), g % 40), g * 1.25, date '2020-01-01' + g % 1000
       FROM generate_series(1, $1::int) g`,
      [opts.bigRows ?? 200_000],
    );
    await client.query(`
      INSERT INTO other.items (name, tags) SELECT 'item ' || g, ARRAY['t' || g % 3, 'ü'] FROM generate_series(1, 500) g;
      SELECT nextval('other.counter') FROM generate_series(1, 3);
      INSERT INTO "Mixed Case" VALUES ('x'), (E'y\\nz');
    `);
    if (opts.largeObjects) {
      await client.query(`SELECT lo_from_bytea(0, convert_to(repeat('large object ' || g, 1000), 'UTF8')) FROM generate_series(1, 3) g`);
    }
  } finally {
    await client.end();
  }
}

/**
 * Per-table row count and md5 of the rows' text, every large object's md5, and the definitions
 * of sequences, views and indexes: two databases with equal fingerprints hold the same data.
 */
export async function fingerprint(cluster: PostgresCluster, db: string): Promise<Record<string, string>> {
  const client = new pg.Client(cluster.connectionConfig(db));
  await client.connect();
  try {
    const out: Record<string, string> = {};
    const tables = await client.query<{ s: string; t: string }>(
      `SELECT table_schema AS s, table_name AS t FROM information_schema.tables
       WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2`,
    );
    for (const { s, t } of tables.rows) {
      const name = `${pg.escapeIdentifier(s)}.${pg.escapeIdentifier(t)}`;
      const r = await client.query<{ n: string; h: string }>(
        `SELECT count(*)::text AS n, md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) AS h FROM ${name} x`,
      );
      out[`table ${s}.${t}`] = `${r.rows[0]?.n} ${r.rows[0]?.h}`;
    }
    const extra = await client.query<{ k: string; v: string }>(`
      SELECT 'sequence ' || schemaname || '.' || sequencename AS k, coalesce(last_value::text, '') AS v FROM pg_sequences
      UNION ALL SELECT 'view ' || schemaname || '.' || viewname, definition FROM pg_views WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
      UNION ALL SELECT 'index ' || indexname, indexdef FROM pg_indexes WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
      UNION ALL SELECT 'large objects', count(*) || ':' || coalesce(md5(string_agg(md5(lo_get(oid)), ',' ORDER BY md5(lo_get(oid)))), '')
        FROM pg_largeobject_metadata
    `);
    for (const { k, v } of extra.rows) out[k] = v;
    return out;
  } finally {
    await client.end();
  }
}

/**
 * Restores a .sql.gz file exactly as an operator without this service would:
 * `gunzip -c FILE | psql --single-transaction -v ON_ERROR_STOP=1 -X` into a new database `db`.
 */
export async function restoreWithStockTools(file: string, cluster: PostgresCluster, db: string): Promise<void> {
  await cluster.createDatabase(db);
  const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    const child = spawn(
      'bash',
      ['-o', 'pipefail', '-c', 'gunzip -c "$1" | "$2" --single-transaction -v ON_ERROR_STOP=1 -X -q -o /dev/null', 'restore', file, pgClientBin('psql')],
      { env: { PATH: process.env.PATH ?? '', ...cluster.pgEnv(db) }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let text = '';
    child.stdout.on('data', (b: Buffer) => (text += b.toString()));
    child.stderr.on('data', (b: Buffer) => (text += b.toString()));
    child.once('error', reject);
    child.once('close', (exitCode) => resolve({ code: exitCode, output: text }));
  });
  if (code !== 0 || /ERROR/.test(output)) throw new Error(`stock restore failed (exit ${code}): ${output.slice(-2000)}`);
}
