import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { fillRich, pgClientBin, runProcess, startPostgres, type PostgresCluster } from '../../test/harness/index.js';
import { debianClientRoot, type PgClientMajor } from '../../test/harness/pg-clients.js';
import { countCatalogObjects, DumpContentsCounter } from './dump-contents.js';

// Real pg_dump output of the richest data set, from each client major the service may run (15
// installed, 17 and 18 in the version matrix's Debian roots) against a server of the same major:
// the counter's manifest must match the source database's catalog.

const DB = 'rich';

/** What fillRich lacks of what the manifest counts or must not miscount. */
const EXTRAS = `
  CREATE EXTENSION citext;
  CREATE FUNCTION public.tricky() RETURNS text LANGUAGE plpgsql AS $body$
  BEGIN
  -- a body may hold lines that look like a dump's own
  CREATE TABLE x (a int);
  RETURN '
COPY x FROM stdin;
1
\\.
SELECT pg_catalog.lo_create(''1'');
';
  END
  $body$;
  CREATE PROCEDURE public.noop() LANGUAGE sql AS $$ SELECT 1 $$;
  CREATE MATERIALIZED VIEW public.kind_count AS SELECT count(*) AS n FROM public.kinds;
  CREATE TABLE public.slots (room int, during int4range, CONSTRAINT no_overlap EXCLUDE USING gist (during WITH &&));
  INSERT INTO public.slots VALUES (1, '[1,5)'), (1, '[5,9)');
  CREATE TABLE public.checked (a citext CHECK (a <> ''), b int REFERENCES public.edges (id));
  INSERT INTO public.checked VALUES (E'line\\nbreak \\\\. and a backslash', 1), ('\\.', 2);
`;

async function dump(cluster: PostgresCluster, major: PgClientMajor): Promise<Buffer> {
  // As the service runs it: --no-owner drops the owners from the TOC headers.
  const args = ['--no-owner', '--no-privileges', '--format=plain', '--no-password'];
  const run =
    major === 15
      ? await runProcess(pgClientBin('pg_dump'), args, cluster.pgEnv(DB))
      : await runProcess('/usr/sbin/chroot', [await debianClientRoot(major), `/usr/lib/postgresql/${major}/bin/pg_dump`, ...args], cluster.pgEnv(DB));
  if (run.code !== 0) throw new Error(`pg_dump ${major} failed: ${run.stderr}`);
  return Buffer.from(run.stdout, 'utf8');
}

const clusters: PostgresCluster[] = [];
afterAll(() => Promise.all(clusters.map((c) => c.destroy())));

describe('DumpContentsCounter on real pg_dump output', () => {
  for (const major of [15, 17, 18] as const) {
    it(`matches the catalog of a rich database dumped by pg_dump ${major}`, async () => {
      const cluster = await startPostgres({ ...(major === 15 ? {} : { major }), database: DB });
      clusters.push(cluster);
      await fillRich(cluster, DB);
      await cluster.query(EXTRAS, [], DB);
      const bytes = await dump(cluster, major);
      const text = bytes.toString('utf8');
      expect(text).toContain(major === 15 ? 'Type: BLOB;' : 'Type: BLOB METADATA;');
      expect(text).toContain("\nCOPY x FROM stdin;\n1\n\\.\nSELECT pg_catalog.lo_create(''1'');\n");

      // 1-byte chunks: every line, header and `\.` of the dump is split somewhere.
      const counter = new DumpContentsCounter();
      for (let at = 0; at < bytes.length; at++) counter.push(bytes.subarray(at, at + 1));
      const manifest = counter.manifest();
      const whole = new DumpContentsCounter();
      whole.push(bytes);
      expect(whole.manifest()).toEqual(manifest);

      const client = new pg.Client(cluster.connectionConfig(DB));
      await client.connect();
      try {
        const catalog = await countCatalogObjects(client);
        expect(manifest.objects).toEqual(catalog.objects);
        expect(manifest.largeObjects).toBe(catalog.largeObjects);
        expect(catalog.largeObjects).toBe(3);
        const rowsByTable: Record<string, number> = {};
        for (const t of manifest.tables) {
          const ident = (s: string) => `"${s.replaceAll('"', '""')}"`;
          const counted = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ONLY ${ident(t.schema)}.${ident(t.name)}`);
          rowsByTable[`${t.schema}.${t.name}`] = Number(counted.rows[0]?.n);
        }
        expect(Object.fromEntries(manifest.tables.map((t) => [`${t.schema}.${t.name}`, t.rows]))).toEqual(rowsByTable);
        // Every table with rows has a block (a partitioned parent has none: its rows are its partitions').
        const withRows = await client.query<{ name: string }>(
          `SELECT n.nspname || '.' || c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'`,
        );
        expect(Object.keys(rowsByTable).sort()).toEqual(withRows.rows.map((r) => r.name).sort());
        expect(rowsByTable).toMatchObject({ 'données.tärkeä 表': 50, 'public.Mixed Case': 2, 'public.measurements_other': expect.any(Number), 'public.checked': 2 });
        expect(manifest.objects.functions).toBeGreaterThanOrEqual(2);
      } finally {
        await client.end();
      }
    }, 600_000);
  }
});
