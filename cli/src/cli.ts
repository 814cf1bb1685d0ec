import { open, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { Command, CommanderError } from 'commander';
import type { Backup } from '@db-backup-service/sdk';
import {
  checkPsqlRunsDump,
  dropDatabaseSql,
  findPsql,
  inspectTarget,
  newerDumper,
  peekDumpHead,
  recoverInterruptedSwap,
  restoreDatabase,
  SWAP_STAGES,
  type DumpExpectations,
  type DumpHead,
  type PreambleAdaptation,
  type PsqlChoice,
  type RestoreMode,
  type SwapStage,
  type TargetInfo,
} from '@db-backup-service/restore';
import type { BackupSource, LocalDump, ResolvedBackup } from './backup-source.js';
import { countdown, installCancellation, type Cancellation } from './cancellation.js';
import { loadCliConfig, type CliConfig, type DbSettings, type StorageSettings } from './config.js';
import { asCliError, CliError, EXIT_CODE_HELP, ExitCode, type DatabaseState } from './exit-codes.js';
import { drillCommand } from './drill-command.js';
import { checkIdentityOpens, decryptionFor, loadIdentities } from './identities.js';
import { fileSource } from './file-source.js';
import { formatBytes, formatDuration, formatPin, formatTable, formatTimestamp } from './format.js';
import { localSource } from './local-source.js';
import { createProgress, progressMode, type PhaseProgress, type Progress } from './progress.js';
import { serviceSource } from './service-source.js';
import { verifyDump } from './verify.js';
import { VERSION } from './version.js';

/** Everything db-restore touches outside itself, so tests can run it in-process. */
export interface CliContext {
  readonly env: NodeJS.ProcessEnv;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WriteStream;
  /** Signals (SIGINT, SIGTERM) come from here. */
  readonly process: Pick<NodeJS.Process, 'on' | 'off'>;
  readonly now: () => number;
  /** The abort window, in seconds (5). */
  readonly countdownSeconds: number;
}

interface Options {
  force?: boolean;
  database?: string;
  inPlace?: boolean;
  keepOld?: boolean;
  file?: string;
  json?: boolean;
  serviceUrl?: string;
  drill?: string;
  identity?: string[];
}

const ENVIRONMENT_HELP = `Environment (the same variables as the service):
  DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_PASSWORD | DB_PASSWORD_FILE   target server, role, database
  STORAGE_BACKEND                local: read BACKUP_LOCAL_DIR directly; s3: through the running service
  BACKUP_LOCAL_DIR               the service's backup directory (local backend)
  API_TOKEN | API_TOKEN_FILE     the service's token (s3 backend)
  DB_RESTORE_SERVICE_URL         the service's URL (default http://127.0.0.1:$HTTP_PORT, HTTP_PORT default 8080)
  BACKUP_NAME_PREFIX             only backups with this prefix are listed (default: backup)
  PG_BIN_DIR                     where psql is (default: newest /usr/lib/postgresql/*/bin, else PATH)
  RESTORE_DRILL_QUERY            --drill: a query that must return true in the restored copy
  AGE_IDENTITY_FILE              an age identity file (AGE-SECRET-KEY-1… lines, several allowed) for encrypted (.age) backups, when no --identity is given
  TMPDIR                         where --in-place downloads an S3 backup to verify it first (the default swap streams: no temp file)

The role needs CREATEDB and must own the target database (or be a superuser).`;

/** Runs db-restore with `argv` (without node and script); resolves to the exit code. */
export async function runCli(argv: readonly string[], context: Partial<CliContext> = {}): Promise<number> {
  const ctx: CliContext = {
    env: context.env ?? process.env,
    stdout: context.stdout ?? process.stdout,
    stderr: context.stderr ?? process.stderr,
    process: context.process ?? process,
    now: context.now ?? Date.now,
    countdownSeconds: context.countdownSeconds ?? 5,
  };
  let exitCode: number = ExitCode.OK;
  const program = new Command('db-restore')
    .description('List the backups of db-backup-service, or restore one into PostgreSQL, all or nothing.')
    .version(VERSION, '-V, --version')
    .argument('[backup]', 'backup id, or "latest"; omit it to list the backups (newest first)')
    .option('--force', 'skip the 5-second countdown')
    .option('--database <name>', 'restore into this database instead of DB_NAME')
    .option('--in-place', 'drop and recreate the target, then restore into it (on failure it is left empty)')
    .option('--keep-old', 'after the swap, keep the replaced database as <target>__old_<random> (its DROP command is printed)')
    .option('--file <path>', 'restore a local .sql.gz or .sql.zst (or its .age) instead (checked against <path>.meta.json when present)')
    .option('--identity <file>', 'age identity file for encrypted (.age) backups; repeatable, each may hold several identities (default: AGE_IDENTITY_FILE)', (file: string, all: string[] = []) => [...all, file])
    .option('--json', 'print one JSON result on stdout, no progress')
    .option('--drill <backup>', 'restore <backup> (an id or "latest") into a scratch database on the target server, compare it with its contents manifest, drop it; changes nothing else')
    .option('--service-url <url>', 'URL of the running service (S3 backend; default DB_RESTORE_SERVICE_URL)')
    .addHelpText(
      'after',
      `
Without --in-place, the backup streams (from the directory, the file or the service, no temp file)
into a new database <target>__restore_<random>, which replaces the target only when the whole
restore succeeded and the backup's SHA-256 (from its sidecar), size and compressed stream (gzip's
CRC; zstd's single frame and checksum) matched at its end: on failure or a mismatch the new
database is dropped and the target left as it was. The format is the id's (or the --file's)
extension, .sql.gz or .sql.zst, and the file's first bytes must agree with it.
--in-place verifies the whole backup first (S3: downloaded to TMPDIR), then drops the target.
An encrypted backup (.sql.gz.age, .sql.zst.age: age, to the service's recipients) is decrypted
while it streams with the identities of --identity FILE (or AGE_IDENTITY_FILE); the checksum is
of the ciphertext as stored. Without an identity, or with none that opens it, nothing is touched
(exit 2); a damaged ciphertext fails verification (exit 5). A --file that begins as an age file
is decrypted whatever its name (one made with \`age -r age1… backup.sql.gz > backup.sql.gz.age\`).
Writes made to the target after the backup was taken are lost (--keep-old keeps the replaced copy).
A run first re-enables connections to a target an interrupted swap left refusing them, and names
every leftover database with its DROP command. Ctrl-C, SIGTERM and SIGHUP wait for the swap to end.

Examples:
  db-restore                          list backups
  db-restore latest                   restore the newest backup into DB_NAME (after a 5 s countdown)
  db-restore --force backup_20260510T010000Z.sql.gz
  db-restore --database staging latest
  db-restore --file ./backup_20260510T010000Z.sql.gz
  db-restore --file ./backup_20260510T010000Z.sql.zst
  db-restore --identity key.txt backup_20260510T010000Z.sql.gz.age
  db-restore --drill latest           prove the newest backup restores, with exact row counts

--drill restores into <DB_NAME>__drill_<random> on the target server (the role needs CREATEDB),
compares each table's row count, the large objects and the object counts with the backup's
<id>.contents.json (checked against its sidecar; without one, e.g. through the service, with the
counts of the backup's stream itself),
runs RESTORE_DRILL_QUERY read-only when set, and drops the scratch database. Exit 0 when it
passed, 6 when it failed. No countdown: the target database itself is never touched.

${ENVIRONMENT_HELP}

${EXIT_CODE_HELP}
`,
    )
    .exitOverride()
    .configureOutput({
      writeOut: (s) => ctx.stdout.write(s),
      writeErr: (s) => ctx.stderr.write(s),
    })
    .action(async (backup: string | undefined, opts: Options) => {
      exitCode = await dispatch(ctx, backup, opts);
    });

  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here with exit code 0; every parse error is a usage error.
      return err.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
    }
    ctx.stderr.write(`db-restore: unexpected error: ${(err as Error).stack ?? String(err)}\n`);
    return ExitCode.UNEXPECTED;
  }
  return exitCode;
}

async function dispatch(ctx: CliContext, backup: string | undefined, opts: Options): Promise<number> {
  const json = opts.json === true;
  const warnings: string[] = [];
  const warn = (message: string): void => {
    warnings.push(message);
    if (!json) ctx.stderr.write(`db-restore: warning: ${message}\n`);
  };
  const restoring = backup !== undefined || opts.file !== undefined || opts.drill !== undefined;
  // Filled in as the restore learns things, so a failure's JSON says how far it got.
  const report: Record<string, unknown> = {};
  try {
    if (backup !== undefined && opts.file !== undefined) {
      throw new CliError(ExitCode.USAGE, 'name a backup or pass --file, not both');
    }
    if (!restoring) {
      const misplaced = (['force', 'database', 'inPlace', 'keepOld'] as const).filter((k) => opts[k] !== undefined);
      if (misplaced.length > 0) throw new CliError(ExitCode.USAGE, 'these options apply to a restore: name a backup (or "latest"), or pass --file. Run db-restore --help.');
      const backups = await listBackups(ctx, opts, warn);
      printList(ctx, backups, json);
      return ExitCode.OK;
    }
    if (opts.drill !== undefined) {
      if (backup !== undefined) throw new CliError(ExitCode.USAGE, 'name the backup to drill with --drill <id|latest> only');
      const misplaced = (['force', 'inPlace', 'keepOld'] as const).filter((k) => opts[k] !== undefined);
      if (misplaced.length > 0) throw new CliError(ExitCode.USAGE, '--force, --in-place and --keep-old apply to a restore, not to --drill');
      const code = await drill(ctx, opts.drill, opts, warn, report);
      if (json) ctx.stdout.write(`${JSON.stringify({ ok: true, exitCode: code, ...report, warnings })}\n`);
      return code;
    }
    await restore(ctx, backup, opts, warn, report);
    if (json) ctx.stdout.write(`${JSON.stringify({ ok: true, exitCode: 0, ...report, warnings })}\n`);
    return ExitCode.OK;
  } catch (caught) {
    const err = asCliError(caught);
    const failure = err instanceof CliError ? err : new CliError(ExitCode.UNEXPECTED, `unexpected error: ${(err as Error).stack ?? String(err)}`, { cause: err });
    ctx.stderr.write(`db-restore: ${failure.message}\n`);
    if (json) {
      const state: DatabaseState | null = failure.databaseState;
      ctx.stdout.write(`${JSON.stringify({ ok: false, exitCode: failure.exitCode, error: failure.message, ...report, databaseState: state, warnings })}\n`);
    }
    return failure.exitCode;
  }
}

function sourceFor(storage: StorageSettings, config: CliConfig, warn: (m: string) => void): BackupSource {
  return storage.backend === 'local' ? localSource(storage.dir, { namePrefix: config.namePrefix, database: config.serviceDatabase }, warn) : serviceSource(storage.serviceUrl, storage.apiToken, { warn });
}

async function listBackups(ctx: CliContext, opts: Options, warn: (m: string) => void): Promise<Backup[]> {
  const config = loadCliConfig(ctx.env, { database: false, storage: true, serviceUrlOverride: opts.serviceUrl });
  if (!config.storage) throw new Error('unreachable: storage settings missing');
  return sourceFor(config.storage, config, warn).list({});
}

function printList(ctx: CliContext, backups: Backup[], json: boolean): void {
  if (json) {
    ctx.stdout.write(`${JSON.stringify(backups)}\n`);
    return;
  }
  if (backups.length === 0) {
    ctx.stdout.write('No backups yet.\n');
    return;
  }
  const now = ctx.now();
  const rows = backups.map((b) => [b.id, formatTimestamp(b.createdAt), formatBytes(b.sizeBytes), `${formatDuration(now - Date.parse(b.createdAt))} ago`, formatPin(b.pinned)]);
  ctx.stdout.write(`${formatTable(['ID', 'CREATED', 'SIZE', 'AGE', 'PINNED'], rows)}\n`);
}

async function drill(ctx: CliContext, backupArg: string, opts: Options, warn: (m: string) => void, report: Record<string, unknown>): Promise<number> {
  const config = loadCliConfig(ctx.env, { database: true, storage: opts.file === undefined, databaseOverride: opts.database, serviceUrlOverride: opts.serviceUrl });
  const db = config.db;
  if (!db) throw new Error('unreachable: database settings missing');
  const identities = loadIdentities(opts.identity ?? [], ctx.env);
  const source = opts.file !== undefined ? fileSource(opts.file, warn, identities) : config.storage ? sourceFor(config.storage, config, warn) : null;
  if (!source) throw new Error('unreachable: no backup source');
  const psql = await findPsql({ pgBinDir: config.pgBinDir, clientsDir: config.clientsDir, path: ctx.env.PATH, env: ctx.env });
  const query = ctx.env.RESTORE_DRILL_QUERY?.trim() || null;
  return drillCommand({ source, backupArg, db, psql, query, identities, json: opts.json === true, stdout: ctx.stdout, process: ctx.process, warn, report });
}

function describePlan(ctx: CliContext, backup: ResolvedBackup, db: DbSettings, info: TargetInfo, mode: RestoreMode, keepOld: boolean, psql: PsqlChoice): string {
  const created = backup.createdAt === null ? 'created: unknown' : `created ${formatTimestamp(backup.createdAt)}, ${formatDuration(ctx.now() - Date.parse(backup.createdAt))} ago`;
  const dumped = [backup.database === undefined ? null : `of database ${backup.database}`, backup.pgVersion === undefined ? null : `PostgreSQL ${backup.pgVersion}`].filter((x) => x !== null);
  const t = info.target;
  const targetState = t
    ? `exists${t.sizeBytes === null ? '' : `, ${formatBytes(t.sizeBytes)}`}${t.sessions > 0 ? `, ${t.sessions} open session${t.sessions === 1 ? '' : 's'} will be ended` : ''}`
    : 'does not exist yet, will be created';
  const modeText =
    mode === 'swap'
      ? `swap: restore into a new database, then replace ${db.database} with it (on failure ${db.database} stays as it is)`
      : `in-place: drop ${db.database}, recreate it and restore into it (on failure it is left empty)`;
  const since = backup.createdAt === null ? 'the backup was taken' : formatTimestamp(backup.createdAt);
  // M6: a swap can take hours while the application keeps writing to the target.
  const lost = t
    ? `writes made to ${db.database} after ${since} are lost${mode === 'swap' ? (keepOld ? '; the replaced copy is kept as <target>__old_<random>' : ' (--keep-old keeps the replaced copy)') : ''}`
    : null;
  return [
    'Restore plan',
    `  backup    ${backup.id} (${formatBytes(backup.sizeBytes)}, ${created}${dumped.length > 0 ? `; ${dumped.join(', ')}` : ''})`,
    `  from      ${backup.origin}${backup.sha256 === null ? ` (no sidecar: ${backup.format} integrity only)` : ''}`,
    ...(backup.encryption === null ? [] : [`  encrypted age${backup.encryption.recipients.length === 0 ? '' : `, to ${backup.encryption.recipients.join(', ')}`}; decrypted while it streams`]),
    `  target    database ${db.database} on ${db.host}:${db.port} as ${db.user} (PostgreSQL ${info.serverVersion.split(' ')[0]}): ${targetState}`,
    `  mode      ${modeText}`,
    ...(lost === null ? [] : [`  note      ${lost}`]),
    `  psql      ${psql.psql.version.text} (${psql.psql.path})`,
    '',
  ].join('\n');
}

/**
 * `DB_RESTORE_TEST_PAUSE_AT=<stage>` (tests only): at that stage of a swap, print
 * `db-restore: test pause at <stage>` on stderr and wait for SIGUSR2, so a test can kill
 * db-restore, or break its connection, at exactly that point instead of guessing with timing.
 */
function testPause(ctx: CliContext): ((stage: SwapStage) => Promise<void>) | undefined {
  const at = ctx.env.DB_RESTORE_TEST_PAUSE_AT;
  if (at === undefined || at === '') return undefined;
  if (!(SWAP_STAGES as readonly string[]).includes(at)) {
    throw new CliError(ExitCode.USAGE, `DB_RESTORE_TEST_PAUSE_AT must be one of ${SWAP_STAGES.join(', ')}`);
  }
  return (stage) => {
    if (stage !== at) return Promise.resolve();
    return new Promise((resolve) => {
      // A signal listener does not keep Node running: without this, a test that breaks the
      // connection during the pause would see the process exit instead of resuming.
      const keepAlive = setInterval(() => undefined, 60_000);
      const resume = (): void => {
        clearInterval(keepAlive);
        ctx.process.off('SIGUSR2', resume);
        resolve();
      };
      ctx.process.on('SIGUSR2', resume);
      ctx.stderr.write(`db-restore: test pause at ${stage}\n`);
    });
  };
}

/**
 * A dump by a newer pg_dump than the target server (or by an unknown one) is adapted to it: the
 * preamble's SET lines for parameters the server lacks are dropped and each is named in a warning
 * (pg_dump 17+ writes `SET transaction_timeout = 0;`, which 16 and older reject). Otherwise null:
 * the dump is fed as it is.
 */
function adaptationFor(head: DumpHead, info: TargetInfo, db: DbSettings, warn: (m: string) => void): (PreambleAdaptation & { dropped: string[] }) | null {
  const by = newerDumper(head, info.serverVersionNum);
  if (by === null) return null;
  const server = `PostgreSQL ${info.serverVersion.split(' ')[0]}`;
  const dropped: string[] = [];
  return {
    knownParameters: info.parameters,
    dropped,
    onDropped: (line) => {
      dropped.push(line);
      warn(`the dump (by ${by}) sets a parameter that ${server} on ${db.host}:${db.port} does not have; dropped from its preamble: ${line}`);
    },
  };
}

/** Ends a progress phase as done or stopped, with the promise it measured. */
function measured<T>(phase: PhaseProgress, work: Promise<T>): Promise<T> {
  return work.then(
    (value) => {
      phase.done(true);
      return value;
    },
    (err: unknown) => {
      phase.done(false);
      throw err;
    },
  );
}

async function restore(ctx: CliContext, backupArg: string | undefined, opts: Options, warn: (m: string) => void, report: Record<string, unknown>): Promise<void> {
  const json = opts.json === true;
  const mode: RestoreMode = opts.inPlace ? 'in-place' : 'swap';
  const keepOld = opts.keepOld === true;
  if (keepOld && mode === 'in-place') throw new CliError(ExitCode.USAGE, '--keep-old applies to the swap; --in-place drops the target first');
  const config = loadCliConfig(ctx.env, { database: true, storage: opts.file === undefined, databaseOverride: opts.database, serviceUrlOverride: opts.serviceUrl });
  const db = config.db;
  if (!db) throw new Error('unreachable: database settings missing');
  report.target = { host: db.host, port: db.port, database: db.database };
  report.mode = mode;
  const identities = loadIdentities(opts.identity ?? [], ctx.env);
  const psql = await findPsql({ pgBinDir: config.pgBinDir, clientsDir: config.clientsDir, path: ctx.env.PATH, env: ctx.env });
  const source = opts.file !== undefined ? fileSource(opts.file, warn, identities) : config.storage ? sourceFor(config.storage, config, warn) : null;
  if (!source) throw new Error('unreachable: no backup source');
  const onStage = testPause(ctx);
  const progress: Progress = createProgress(progressMode({ json, isTTY: ctx.stderr.isTTY === true }), ctx.stderr, ctx.now);

  const cancellation: Cancellation = installCancellation(ctx.process, () => {
    ctx.stderr.write('\ndb-restore: finishing the current step first (it must not stop halfway), then stopping.\n');
  });
  // After a SIGHUP the terminal may be gone: a failed write to it must not kill db-restore mid-swap.
  const ignoreWriteError = (): void => undefined;
  ctx.stdout.on('error', ignoreWriteError);
  ctx.stderr.on('error', ignoreWriteError);
  const started = ctx.now();
  let dump: LocalDump | null = null;
  let fh: FileHandle | null = null;
  let stream: Readable | null = null;
  try {
    // 1. What will happen. Resolving and inspecting change nothing.
    const backup = await source.resolve(backupArg ?? 'latest', { signal: cancellation.signal });
    report.backup = { id: backup.id, createdAt: backup.createdAt, sizeBytes: backup.sizeBytes, sha256: backup.sha256, origin: backup.origin, encryption: backup.encryption };
    // An encrypted backup without an identity stops here, before anything is touched.
    const decrypt = decryptionFor(backup, identities);
    if (decrypt !== null) await checkIdentityOpens(source, backup, decrypt, cancellation.signal);
    // Before anything else touches the target: what an interrupted swap left is repaired or named.
    await recoverInterruptedSwap(db, warn);
    const info = await inspectTarget(db);
    if (!json) ctx.stdout.write(describePlan(ctx, backup, db, info, mode, keepOld, psql));

    // 2. The abort window.
    if (!opts.force) await countdown(ctx.countdownSeconds, cancellation.signal, ctx.stderr);

    // 3. swap: the backup streams into psql and is verified on the way (COMMIT only when it matched).
    //    in-place: a local copy, verified before the target is dropped. Both: one read of the bytes
    //    that are restored, so what was checked is what is restored.
    let expected: DumpExpectations = { sha256: backup.sha256, sizeBytes: backup.sha256 === null ? null : backup.sizeBytes };
    if (mode === 'swap') {
      stream = await source.open(backup, { signal: cancellation.signal });
    } else {
      dump = await source.fetch(backup, { signal: cancellation.signal, progress });
      fh = await open(dump.path, 'r');
      const verifyPhase = progress.phase('verify', backup.sizeBytes);
      const verified = await measured(
        verifyPhase,
        verifyDump(fh, expected, {
          format: backup.format,
          decrypt,
          signal: cancellation.signal,
          onProgress: (n) => verifyPhase.update(n),
          label: backup.id,
        }),
      );
      report.verified = { sha256: verified.sha256, sizeBytes: verified.sizeBytes, uncompressedBytes: verified.uncompressedBytes };
      expected = { sha256: verified.sha256, sizeBytes: verified.sizeBytes };
      stream = fh.createReadStream({ start: 0, autoClose: false });
    }
    // The head (pg_dump version, \restrict) decides how psql gets the dump, before anything is created.
    // An encrypted backup's header is opened here: a wrong identity fails before anything is created.
    const peeked = await peekDumpHead(stream, { format: backup.format, label: backup.id, decrypt });
    stream = peeked.dump;
    checkPsqlRunsDump(psql, peeked.head);
    const adaptTo = adaptationFor(peeked.head, info, db, warn);
    report.psql = { version: psql.psql.version.text, path: psql.psql.path };
    report.droppedPreambleLines = adaptTo?.dropped ?? [];

    // 4. All or nothing.
    const restorePhase = progress.phase('restore', backup.sizeBytes);
    const outcome = await measured(
      restorePhase,
      restoreDatabase({
        db,
        mode,
        keepOld,
        psqlPath: psql.psql.path,
        dump: stream,
        format: backup.format,
        decrypt,
        expected,
        label: backup.id,
        adaptTo,
        signal: cancellation.signal,
        critical: (fn) => cancellation.critical(fn),
        onProgress: (n) => restorePhase.update(n),
        warn,
        ...(onStage ? { onStage } : {}),
      }),
    );
    report.verified ??= { sha256: outcome.verified.sha256, sizeBytes: outcome.verified.sizeBytes, uncompressedBytes: outcome.verified.uncompressedBytes };
    const durationMs = ctx.now() - started;
    const keptOld = outcome.keptOld === null ? null : { database: outcome.keptOld, dropCommand: dropDatabaseSql(outcome.keptOld) };
    Object.assign(report, { replaced: outcome.replaced, databaseState: 'restored', durationMs, ...(keptOld ? { keptOld } : {}) });
    if (!json) {
      ctx.stdout.write(`Restored ${backup.id} into database ${outcome.database} on ${db.host}:${db.port} (${mode}) in ${formatDuration(durationMs)}.\n`);
      if (keptOld) ctx.stdout.write(`The previous content is kept as database ${keptOld.database}; drop it when done: ${keptOld.dropCommand}\n`);
    }
  } catch (caught) {
    const err = asCliError(caught);
    // An abort that surfaced as something else (a read stream's AbortError) before anything changed.
    if (cancellation.signal.aborted && !(err instanceof CliError)) {
      throw new CliError(ExitCode.CANCELLED, 'cancelled; nothing was changed in the database', { cause: err, databaseState: 'untouched' });
    }
    throw err;
  } finally {
    ctx.stdout.off('error', ignoreWriteError);
    ctx.stderr.off('error', ignoreWriteError);
    cancellation.dispose();
    stream?.destroy();
    await fh?.close().catch(() => undefined);
    await dump?.cleanup().catch(() => undefined);
  }
}
