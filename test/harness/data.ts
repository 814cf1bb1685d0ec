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

/** Length of the very long text value fillRich() stores (beyond TOAST's and COPY's buffer sizes). */
export const RICH_LONG_TEXT_LENGTH = 300_000;

/**
 * The richest data set: fillVaried() with large objects, plus
 * - a range-partitioned table with rows in three partitions and a default partition;
 * - unicode names: schema "données", table "tärkeä 表", columns "ключ" and "値 value", an index and
 *   a view named in other scripts;
 * - edge values: ±infinity timestamps and dates, NaN/±Infinity/-0 floats (double and real), numeric
 *   NaN, max/min bigint/int/smallint, empty arrays and strings, NULLs inside arrays, a 2-D array and
 *   a very long text.
 * Works on PostgreSQL 13-18 (so nothing newer than 13 has: no numeric infinity, which is 14+).
 */
export async function fillRich(cluster: PostgresCluster, db: string, opts: { bigRows?: number } = {}): Promise<void> {
  await fillVaried(cluster, db, { bigRows: opts.bigRows ?? 2_000, largeObjects: true });
  const client = new pg.Client(cluster.connectionConfig(db));
  await client.connect();
  try {
    await client.query(`
      CREATE TABLE measurements (id bigint NOT NULL, at date NOT NULL, v numeric, note text) PARTITION BY RANGE (at);
      CREATE TABLE measurements_2024 PARTITION OF measurements FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
      CREATE TABLE measurements_2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
      CREATE TABLE measurements_2026 PARTITION OF measurements FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
      CREATE TABLE measurements_other PARTITION OF measurements DEFAULT;
      ALTER TABLE measurements ADD PRIMARY KEY (id, at);
      INSERT INTO measurements
        SELECT g, date '2023-07-01' + (g * 7) % 1500, g / 7.0, 'm' || g FROM generate_series(1, 400) g;

      CREATE SCHEMA "données";
      CREATE TABLE "données"."tärkeä 表" ("ключ" int PRIMARY KEY, "値 value" text NOT NULL DEFAULT 'ß', "emoji 😀" text[]);
      CREATE INDEX "индекс ключ" ON "données"."tärkeä 表" ("値 value");
      CREATE VIEW "données"."vue ü" AS SELECT "ключ", upper("値 value") AS "値" FROM "données"."tärkeä 表";
      INSERT INTO "données"."tärkeä 表"
        SELECT g, 'värde ' || g || ' 値 ключ', ARRAY['😀', NULL, 'ü' || g] FROM generate_series(1, 50) g;

      CREATE TABLE edges (
        id int PRIMARY KEY, ts timestamptz, tsl timestamp, d date, f8 float8, f4 real, n numeric,
        big bigint, i int, s smallint, ints int[], texts text[], grid int[][], t text
      );
      INSERT INTO edges VALUES
        (1, 'infinity', 'infinity', 'infinity', 'NaN', 'NaN', 'NaN', 9223372036854775807, 2147483647, 32767, '{}', '{}', '{{1,2},{3,4}}', ''),
        (2, '-infinity', '-infinity', '-infinity', 'Infinity', 'Infinity', 0, -9223372036854775808, -2147483648, -32768, '{NULL}', '{NULL,""}', '{{NULL,1},{2,NULL}}', NULL),
        (3, '1970-01-01 00:00:00+00', '0001-01-01 00:00:00', '4713-01-01 BC', '-Infinity', '-Infinity', '-0.000000000000000000001', 0, 0, 0, '{1,NULL,3}', '{"",NULL,"NULL","{}"}', '{}', ' '),
        (4, '294276-12-31 23:59:59.999999+00', '294276-12-31 23:59:59.999999', '5874897-12-31', '-0', '-0', '1e-1000', -1, -1, -1, NULL, ARRAY[]::text[], NULL, repeat('long ü text ', ${Math.ceil(RICH_LONG_TEXT_LENGTH / 12)})),
        (5, NULL, NULL, NULL, 1.7976931348623157e308, 3.4028235e38, '123456789012345678901234567890.123456789012345678901234567890', NULL, NULL, NULL, '{2147483647,-2147483648}', ARRAY[E'a\\\\b', E'tab\\there', E'new\\nline', 'NULL', ''], NULL, E'\\\\.\\n\\\\.');
    `);
  } finally {
    await client.end();
  }
}

/**
 * Per-table row count and md5 of the rows' text (every BASE TABLE of information_schema: plain
 * tables, partitioned tables and each of their partitions), every large object's md5, the columns
 * (name, type, NOT NULL, default, identity, generated) of every table and view, constraints,
 * partition keys and bounds, and the definitions of sequences, views and indexes: two databases
 * with equal fingerprints hold the same data.
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
      WITH rels AS (
        SELECT c.oid, c.relkind, c.relispartition, c.relpartbound, n.nspname || '.' || c.relname AS name
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg_temp%' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
      )
      SELECT 'columns ' || r.name AS k,
             string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
                        || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '') || CASE WHEN a.attidentity::text <> '' THEN ' IDENTITY ' || a.attidentity::text ELSE '' END
                        || CASE WHEN a.attgenerated::text <> '' THEN ' GENERATED ' || a.attgenerated::text ELSE '' END,
                        ', ' ORDER BY a.attnum) AS v
        FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        GROUP BY r.name
      UNION ALL SELECT 'partitioned ' || name, pg_get_partkeydef(oid) FROM rels WHERE relkind = 'p'
      UNION ALL SELECT 'partition ' || r.name, pn.nspname || '.' || p.relname || ' ' || pg_get_expr(r.relpartbound, r.oid)
        FROM rels r JOIN pg_inherits i ON i.inhrelid = r.oid JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = p.relnamespace
        WHERE r.relispartition
      UNION ALL SELECT 'constraint ' || r.name || ' ' || co.conname, co.contype::text || ' ' || pg_get_constraintdef(co.oid)
        FROM rels r JOIN pg_constraint co ON co.conrelid = r.oid
      UNION ALL SELECT 'sequence ' || schemaname || '.' || sequencename AS k, coalesce(last_value::text, '') AS v FROM pg_sequences
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
 * Restores a .sql.gz (or .sql.zst) file exactly as an operator without this service would:
 * `gunzip -c FILE | psql --single-transaction -v ON_ERROR_STOP=1 -X` (`zstd -dcq` for .sql.zst) into a new database `db`;
 * an encrypted `.age` one through the stock `age -d -i IDENTITY_FILE` first.
 */
export async function restoreWithStockTools(file: string, cluster: PostgresCluster, db: string, identityFile?: string): Promise<void> {
  await cluster.createDatabase(db);
  const plain = file.replace(/\.age$/, '');
  const decompress = plain.endsWith('.zst') ? 'zstd -dcq' : 'gunzip -c';
  // An encrypted backup, as the README restores one: age -d -i key.txt backup.sql.gz.age | gunzip | psql
  const read = plain === file ? `${decompress} "$1"` : `age -d -i "$3" "$1" | ${decompress}`;
  if (plain !== file && identityFile === undefined) throw new Error(`${file} is encrypted: pass the identity file`);
  const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    const child = spawn(
      'bash',
      ['-o', 'pipefail', '-c', `${read} | "$2" --single-transaction -v ON_ERROR_STOP=1 -X -q -o /dev/null`, 'restore', file, pgClientBin('psql'), identityFile ?? ''],
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
