import { runDrill, type ContentsManifest, type DrillOutcome, type PsqlChoice } from '@db-backup-service/restore';
import type { BackupSource } from './backup-source.js';
import { installCancellation } from './cancellation.js';
import type { DbSettings } from './config.js';
import { CliError, ExitCode } from './exit-codes.js';
import { formatDuration, formatTable } from './format.js';
import { decryptionFor, type Identities } from './identities.js';

export interface DrillCommandOptions {
  readonly source: BackupSource;
  readonly backupArg: string;
  readonly db: DbSettings;
  readonly psql: PsqlChoice;
  /** RESTORE_DRILL_QUERY, as the service reads it: must return one row whose first column is true. */
  readonly query: string | null;
  /** --identity / AGE_IDENTITY_FILE: for an encrypted backup and its encrypted manifest. */
  readonly identities: Identities;
  readonly json: boolean;
  readonly stdout: NodeJS.WritableStream;
  readonly process: Pick<NodeJS.Process, 'on' | 'off'>;
  readonly warn: (message: string) => void;
  /** Filled in for the --json result. */
  readonly report: Record<string, unknown>;
}

/** The comparison as a table: each manifest table, large objects, the object counts, the query. */
function describeComparison(manifest: ContentsManifest, out: DrillOutcome): string {
  const mismatchOf = new Map(out.mismatches.map((m) => [m.what.replace(/ \(missing\)$/, ''), m]));
  const counted = out.tablesChecked > 0;
  const row = (what: string, expected: number): string[] => {
    const m = mismatchOf.get(what);
    const restored = !counted ? '-' : m === undefined ? String(expected) : m.what.endsWith('(missing)') ? 'missing' : String(m.actual);
    return [what, String(expected), restored, !counted ? '' : m === undefined ? 'ok' : 'MISMATCH'];
  };
  const rows = [
    ...manifest.tables.map((t) => row(`rows of table ${t.schema}.${t.name}`, t.rows)),
    row('large objects', manifest.largeObjects),
    ...(['tables', 'sequences', 'views', 'functions', 'indexes'] as const).map((k) => row(k, manifest.objects[k])),
  ];
  return formatTable(['WHAT', 'MANIFEST', 'RESTORED', ''], rows);
}

/**
 * `db-restore --drill <id|latest>`: restores the backup into a scratch database on the target
 * server (named after the target database), compares it with its manifest and drops it. It changes
 * nothing but that scratch database, so there is no countdown.
 */
export async function drillCommand(opts: DrillCommandOptions): Promise<number> {
  const { db, source, report, warn } = opts;
  const backup = await source.resolve(opts.backupArg, {});
  report.backup = { id: backup.id, createdAt: backup.createdAt, sizeBytes: backup.sizeBytes, sha256: backup.sha256, origin: backup.origin };
  report.target = { host: db.host, port: db.port, database: db.database };
  const decrypt = decryptionFor(backup, opts.identities);
  const found = await source.manifest(backup, decrypt);
  if (found.problem !== null) {
    // The wrong key opens neither the manifest nor the dump: the configuration's fault, not the backup's.
    const code = found.reason === 'identity' ? ExitCode.USAGE : ExitCode.VERIFICATION_FAILED;
    throw new CliError(code, `the contents manifest of ${backup.id} is not usable: ${found.problem}. Nothing was restored.`, { databaseState: 'untouched' });
  }
  if (found.note !== null) warn(`${found.note}: the drill compares the restored copy with the counts of the backup's stream itself`);
  if (!opts.json) opts.stdout.write(`Drill of ${backup.id} (${backup.origin}) on ${db.host}:${db.port} as ${db.user}, psql ${opts.psql.psql.version.text}\n`);

  const cancellation = installCancellation(opts.process, () => undefined);
  let outcome: DrillOutcome;
  try {
    const dump = await source.open(backup, { signal: cancellation.signal });
    outcome = await runDrill({
      server: db,
      database: db.database,
      psql: opts.psql.psql,
      dump,
      format: backup.format,
      decrypt,
      expected: { sha256: backup.sha256, sizeBytes: backup.sha256 === null ? null : backup.sizeBytes },
      manifest: found.manifest,
      query: opts.query,
      signal: cancellation.signal,
      warn,
    });
  } catch (err) {
    if (cancellation.signal.aborted) throw new CliError(ExitCode.CANCELLED, 'drill cancelled; its scratch database was dropped', { cause: err, databaseState: 'untouched' });
    throw err;
  } finally {
    cancellation.dispose();
  }
  report.drill = outcome;
  report.databaseState = 'untouched';
  if (!opts.json) {
    if (found.manifest !== null) opts.stdout.write(`${describeComparison(found.manifest, outcome)}\n`);
    if (outcome.query !== null) opts.stdout.write(`query     ${outcome.query.sql} -> ${outcome.query.result === null ? 'not run or failed' : String(outcome.query.result)}\n`);
    const rows = outcome.status === 'passed' ? `, ${outcome.tablesChecked} tables, ${outcome.rowsChecked} rows checked` : '';
    opts.stdout.write(`Drill ${outcome.status} in ${formatDuration(outcome.durationMs)} (scratch ${outcome.scratchDatabase}, dropped; PostgreSQL ${outcome.serverVersion?.split(' ')[0] ?? 'unknown'})${rows}.\n`);
  }
  if (outcome.status === 'failed') {
    throw new CliError(outcome.configurationError ? ExitCode.USAGE : ExitCode.RESTORE_FAILED, `drill of ${backup.id} failed: ${outcome.detail ?? 'unknown reason'}`, { databaseState: 'untouched' });
  }
  return ExitCode.OK;
}
