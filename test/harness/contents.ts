// Contents manifests for drill tests, counted independently of the drill's own catalog queries.
import type { ContentsManifest } from '@db-backup-service/contract';
import pg from 'pg';
import type { PostgresCluster } from './postgres.js';

/** Counts the objects of a plain dump from its table-of-contents headers, as the design's table says. */
export function tocObjects(sql: string): ContentsManifest['objects'] {
  const counts = { tables: 0, sequences: 0, views: 0, functions: 0, indexes: 0 };
  const lines = sql.split('\n');
  for (const [i, line] of lines.entries()) {
    const type = /^-- Name: .*; Type: ([A-Z ]+); Schema: /.exec(line)?.[1];
    if (type === 'TABLE') counts.tables++;
    else if (type === 'SEQUENCE') counts.sequences++;
    else if (type === 'VIEW' || type === 'MATERIALIZED VIEW') counts.views++;
    else if (type === 'FUNCTION' || type === 'PROCEDURE') counts.functions++;
    else if (type === 'INDEX') counts.indexes++;
    else if (type === 'CONSTRAINT' && /ADD CONSTRAINT .* (PRIMARY KEY|UNIQUE|EXCLUDE)/.test(lines.slice(i + 1, i + 8).join(' '))) counts.indexes++;
  }
  return counts;
}

/**
 * A contents manifest made by hand for tests: every table's rows (ONLY: a partitioned table holds
 * none itself) and the large objects from the catalog, the objects from the dump's
 * table-of-contents headers (as the design's table says).
 */
export async function countedManifest(cluster: PostgresCluster, db: string, sql: string): Promise<ContentsManifest> {
  const { rows } = await cluster.query<{ schema: string; name: string }>(
    `SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1, 2`,
    [],
    db,
  );
  const tables = [];
  for (const t of rows) {
    const { rows: n } = await cluster.query<{ n: number }>(`SELECT count(*)::int AS n FROM ONLY ${pg.escapeIdentifier(t.schema)}.${pg.escapeIdentifier(t.name)}`, [], db);
    tables.push({ schema: t.schema, name: t.name, rows: n[0]?.n ?? 0 });
  }
  const { rows: lo } = await cluster.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_largeobject_metadata', [], db);
  return { format: 1, tables, largeObjects: lo[0]?.n ?? 0, objects: tocObjects(sql) };
}

