// The restore drill: a backup is known good only once it has been restored and counted
// (invariant 9). The dump streams into a scratch database with the same runPsqlRestore a swap
// uses, the scratch is counted against the manifest taken while the dump streamed at backup
// time (or, without one, with the counts of the stream itself), and dropped again whatever happened.
import type { Readable } from 'node:stream';
import type { CompressionFormat, ContentsManifest, DrillMismatch } from '@db-backup-service/contract';
import { escapeIdentifier, type Client } from 'pg';
import { countCatalogObjects, DumpContentsCounter } from './dump-contents.js';
import { newerDumper, type DumpHead } from './dump-preamble.js';
import type { DumpDecryption } from './dump-decoder.js';
import { peekDumpHead } from './dump-peek.js';
import { RestoreError } from './errors.js';
import { checkPsqlRunsDump } from './find-psql.js';
import type { PgClient } from './pg-clients.js';
import { connect, connectMaintenance, pgMessage, type PgServer } from './pg-connect.js';
import { runPsqlRestore, type PreambleAdaptation } from './psql.js';
import { createOptions, dropDatabaseSql, failureDetail, forceClause, isSideDatabase, sideDatabaseName } from './restore.js';

/** The server a drill restores into (a host name or a Unix socket directory); the role needs CREATEDB. */
export type DrillServer = PgServer;

export interface DrillOptions {
  server: DrillServer;
  /** The backed-up database's name: the scratch is `<database>__drill_<8 hex>` (shortened to 63 bytes). */
  database: string;
  /** psql to restore with (the newest found); a `\restrict` dump needs one that knows it. */
  psql: PgClient;
  /** The stored .sql.gz / .sql.zst (or their .age) from its first byte. */
  dump: Readable;
  /** How `dump` is compressed: from the backup id's extension (compressionOfId). */
  format: CompressionFormat;
  /** An encrypted backup (`.age`): decrypted with these identities as it streams; null: a plain one. */
  decrypt: DumpDecryption | null;
  /** Of the stored bytes (the ciphertext, when encrypted), as the sidecar records them. */
  expected: { sha256: string | null; sizeBytes: number | null };
  /** null: counted from the stream itself as it restores (a backup without manifest: the reference service's, older ones). */
  manifest: ContentsManifest | null;
  /** RESTORE_DRILL_QUERY: run read-only in the scratch database; must return one row whose first column is true. */
  query: string | null;
  signal: AbortSignal;
  warn: (message: string) => void;
}

export interface DrillOutcome {
  status: 'passed' | 'failed';
  tablesChecked: number;
  /** The manifest's rows when every table matched; else the rows of the tables that matched. */
  rowsChecked: number;
  /** Failed: the first mismatch, psql's error with its stderr, or the checksum mismatch. Passed: null. */
  detail: string | null;
  /**
   * Failed for a reason of configuration, not of the backup (a RestoreError 'usage'): identities
   * that open none of its recipients, a psql that cannot run the dump. Such a failure proves
   * nothing about the backup.
   */
  configurationError: boolean;
  mismatches: DrillMismatch[];
  query: { sql: string; result: boolean | null } | null;
  serverVersion: string | null;
  durationMs: number;
  scratchDatabase: string;
}

/** Our sessions on the drill server, told apart from db-restore's. */
export const DRILL_APPLICATION_NAME = 'db-backup-service drill';

/** RESTORE_DRILL_QUERY runs at most this long: it is a check, not a job. */
const QUERY_TIMEOUT_MS = 60_000;

/** What the server is, for the preamble adaptation and the record. */
interface ServerFacts {
  version: string;
  versionNum: number;
  parameters: string[];
}

async function serverFacts(client: Client): Promise<ServerFacts> {
  const { rows } = await client.query<{ version: string; version_num: string }>(
    `SELECT current_setting('server_version') AS version, current_setting('server_version_num') AS version_num`,
  );
  const settings = await client.query<{ name: string }>('SELECT name FROM pg_catalog.pg_settings');
  return { version: rows[0]?.version ?? '', versionNum: Number(rows[0]?.version_num ?? 0), parameters: settings.rows.map((r) => r.name) };
}

/** A dump by a newer (or unknown) pg_dump than the server loses the preamble lines the server lacks, each named in a warning. */
function adaptation(head: DumpHead, facts: ServerFacts, warn: (m: string) => void): PreambleAdaptation | null {
  const by = newerDumper(head, facts.versionNum);
  if (by === null) return null;
  return {
    knownParameters: facts.parameters,
    onDropped: (line) => warn(`drill: the dump (by ${by}) sets a parameter that PostgreSQL ${facts.version.split(' ')[0]} does not have; dropped from its preamble: ${line}`),
  };
}

function qualified(schema: string, name: string): string {
  return `${escapeIdentifier(schema)}.${escapeIdentifier(name)}`;
}

interface Comparison {
  mismatches: DrillMismatch[];
  /** The first mismatch, as the drill's detail. */
  first: string | null;
  tablesChecked: number;
  rowsMatched: number;
}

const UNDEFINED_TABLE = '42P01';
const UNDEFINED_SCHEMA = '3F000';

/** Counts the scratch database and compares it with the manifest. */
async function compare(client: Client, manifest: ContentsManifest): Promise<Comparison> {
  const out: Comparison = { mismatches: [], first: null, tablesChecked: 0, rowsMatched: 0 };
  const mismatch = (m: DrillMismatch, detail: string): void => {
    out.mismatches.push(m);
    out.first ??= detail;
  };
  for (const t of manifest.tables) {
    const label = `${t.schema}.${t.name}`;
    out.tablesChecked += 1;
    let restored: number | null;
    try {
      // ONLY: a partitioned table's COPY block holds none of its partitions' rows, and each partition has its own.
      const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ONLY ${qualified(t.schema, t.name)}`);
      restored = Number(rows[0]?.n ?? 0);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code !== UNDEFINED_TABLE && code !== UNDEFINED_SCHEMA) throw err;
      restored = null;
    }
    if (restored === t.rows) {
      out.rowsMatched += t.rows;
    } else if (restored === null) {
      mismatch({ what: `rows of table ${label} (missing)`, expected: t.rows, actual: 0 }, `table ${label}: manifest ${t.rows} rows, missing from the restored database`);
    } else {
      mismatch({ what: `rows of table ${label}`, expected: t.rows, actual: restored }, `table ${label}: manifest ${t.rows} rows, restored ${restored}`);
    }
  }
  const { objects, largeObjects } = await countCatalogObjects(client);
  if (largeObjects !== manifest.largeObjects) {
    mismatch({ what: 'large objects', expected: manifest.largeObjects, actual: largeObjects }, `large objects: manifest ${manifest.largeObjects}, restored ${largeObjects}`);
  }
  for (const kind of ['tables', 'sequences', 'views', 'functions', 'indexes'] as const) {
    if (objects[kind] !== manifest.objects[kind]) {
      mismatch({ what: kind, expected: manifest.objects[kind], actual: objects[kind] }, `${kind}: manifest ${manifest.objects[kind]}, restored ${objects[kind]}`);
    }
  }
  return out;
}

/**
 * RESTORE_DRILL_QUERY in a READ ONLY transaction with a statement timeout: a check must not change
 * what it checks nor run for ever. true only for one row whose first column is boolean true.
 */
async function runQuery(client: Client, sql: string, password: string): Promise<{ result: boolean | null; detail: string | null }> {
  await client.query('BEGIN READ ONLY');
  try {
    await client.query(`SET LOCAL statement_timeout = ${QUERY_TIMEOUT_MS}`);
    const res = await client.query<Record<string, unknown>>({ text: sql, rowMode: 'array' } as never);
    const rows = res.rows as unknown as unknown[][];
    const value = rows.length === 1 ? rows[0]?.[0] : undefined;
    if (value === true) return { result: true, detail: null };
    const got = rows.length !== 1 ? `${rows.length} rows` : `${JSON.stringify(value ?? null)}`;
    return { result: false, detail: `RESTORE_DRILL_QUERY returned ${got}, not one row whose first column is true` };
  } catch (err) {
    return { result: null, detail: `RESTORE_DRILL_QUERY failed: ${pgMessage(err, password)}` };
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
  }
}

/**
 * Restores `dump` into a new scratch database on `server`, compares it with the manifest and the
 * query, and drops it again (also on failure and abort; a drop that fails is a warning naming the
 * leftover). A failed drill resolves with status `failed` and a detail; only an abort rejects.
 */
export async function runDrill(opts: DrillOptions): Promise<DrillOutcome> {
  const started = Date.now();
  const { server } = opts;
  const scratch = sideDatabaseName(opts.database, 'drill');
  const outcome: DrillOutcome = {
    status: 'failed',
    tablesChecked: 0,
    rowsChecked: 0,
    detail: null,
    configurationError: false,
    mismatches: [],
    query: opts.query === null ? null : { sql: opts.query, result: null },
    serverVersion: null,
    durationMs: 0,
    scratchDatabase: scratch,
  };
  let admin: Client | null = null;
  let created = false;
  let force = '';
  try {
    opts.signal.throwIfAborted();
    admin = await connectMaintenance(server, opts.database, DRILL_APPLICATION_NAME);
    const facts = await serverFacts(admin);
    outcome.serverVersion = facts.version;
    force = forceClause(facts.versionNum);

    // The head is known before the scratch exists: a dump psql cannot run creates nothing.
    const peeked = await peekDumpHead(opts.dump, { format: opts.format, label: 'the backup', decrypt: opts.decrypt });
    checkPsqlRunsDump({ psql: opts.psql, found: [opts.psql] }, peeked.head);

    await admin.query(`CREATE DATABASE ${escapeIdentifier(scratch)} ${createOptions(null, null)}`);
    created = true;
    // No manifest (a reference service's backup, an older one): the counts of the stream itself are the expectation.
    const counter = opts.manifest === null ? new DumpContentsCounter() : null;
    await runPsqlRestore({
      psqlPath: opts.psql.path,
      connection: server,
      database: scratch,
      applicationName: DRILL_APPLICATION_NAME,
      dump: peeked.dump,
      format: opts.format,
      decrypt: opts.decrypt,
      expected: opts.expected,
      label: 'the backup',
      adaptTo: adaptation(peeked.head, facts, opts.warn),
      signal: opts.signal,
      ...(counter === null ? {} : { onUncompressed: (chunk: Buffer) => counter.push(chunk) }),
    });

    const manifest = opts.manifest ?? counter?.manifest();
    if (manifest === undefined) throw new Error('unreachable: neither a manifest nor a counter');
    const scratchClient = await connect(server, scratch, DRILL_APPLICATION_NAME);
    try {
      const c = await compare(scratchClient, manifest);
      outcome.tablesChecked = c.tablesChecked;
      outcome.rowsChecked = c.rowsMatched;
      outcome.mismatches = c.mismatches;
      outcome.detail = c.first;
      if (opts.query !== null) {
        const q = await runQuery(scratchClient, opts.query, server.password);
        outcome.query = { sql: opts.query, result: q.result };
        outcome.detail ??= q.detail;
      }
    } finally {
      await scratchClient.end().catch(() => undefined);
    }
    outcome.status = outcome.detail === null ? 'passed' : 'failed';
  } catch (err) {
    if (!opts.signal.aborted) {
      outcome.status = 'failed';
      outcome.detail = failureDetail(err, server.password);
      outcome.configurationError = err instanceof RestoreError && err.kind === 'usage';
    }
  } finally {
    opts.dump.destroy();
    if (admin !== null) {
      if (created) {
        await admin.query(`DROP DATABASE IF EXISTS ${escapeIdentifier(scratch)}${force}`).catch((err: unknown) => {
          opts.warn(`drill: the scratch database ${scratch} could not be dropped (${pgMessage(err, server.password)}); drop it with: ${dropDatabaseSql(scratch)}`);
        });
      }
      await admin.end().catch(() => undefined);
    }
    outcome.durationMs = Date.now() - started;
  }
  if (opts.signal.aborted) throw opts.signal.reason;
  return outcome;
}

/**
 * Drops the `<database>__drill_<8 hex>` databases that no session uses: what a killed drill left.
 * A running drill (of this or another instance) keeps a session on its scratch and is left alone;
 * nothing else matches the pattern. Returns the names dropped.
 */
export async function dropLeftoverDrillDatabases(server: DrillServer, database: string, warn: (m: string) => void): Promise<string[]> {
  const prefix = sideDatabaseName(database, 'drill', '00000000').slice(0, -8);
  const admin = await connectMaintenance(server, database, DRILL_APPLICATION_NAME);
  const dropped: string[] = [];
  try {
    const { rows } = await admin.query<{ datname: string; sessions: string }>(
      `SELECT d.datname, (SELECT count(*) FROM pg_stat_activity a WHERE a.datid = d.oid) AS sessions
         FROM pg_database d WHERE starts_with(d.datname, $1) ORDER BY d.datname`,
      [prefix],
    );
    for (const r of rows) {
      if (!isSideDatabase(r.datname, database, 'drill') || Number(r.sessions) > 0) continue;
      // Without FORCE: a drill that connected since the look above makes this fail, and keeps its scratch.
      try {
        await admin.query(`DROP DATABASE ${escapeIdentifier(r.datname)}`);
        dropped.push(r.datname);
      } catch (err) {
        warn(`drill: could not drop the leftover scratch database ${r.datname} (${pgMessage(err, server.password)}); drop it with: ${dropDatabaseSql(r.datname)}`);
      }
    }
  } finally {
    await admin.end().catch(() => undefined);
  }
  return dropped;
}
