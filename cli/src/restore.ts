import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { pgSslAttempts, refusedForEncryption } from '@db-backup-service/sdk';
import { Client, escapeIdentifier, escapeLiteral, type ClientConfig } from 'pg';
import type { DbSettings } from './config.js';
import { CliError, ExitCode, type DatabaseState } from './exit-codes.js';
import { PsqlFailed, redact, runPsqlRestore } from './psql.js';

export type RestoreMode = 'swap' | 'in-place';

/** What the server and the target look like before anything is changed (for the plan). */
export interface TargetInfo {
  readonly serverVersion: string;
  readonly serverVersionNum: number;
  readonly currentUser: string;
  readonly target: ExistingDatabase | null;
}

/** The properties of an existing target that a recreated one keeps. */
export interface ExistingDatabase {
  readonly name: string;
  readonly owner: string;
  /** current_user may hand the database to `owner` (member of it, or superuser). */
  readonly canSetOwner: boolean;
  readonly encoding: string;
  readonly collate: string;
  readonly ctype: string;
  /** 'c' (libc), 'i' (ICU), 'b' (builtin, 17+); null before 15. */
  readonly localeProvider: string | null;
  readonly providerLocale: string | null;
  readonly icuRules: string | null;
  readonly allowConnections: boolean;
  readonly sizeBytes: number | null;
  readonly sessions: number;
}

/** Identifiers are at most 63 bytes (NAMEDATALEN - 1); longer ones would be truncated silently. */
const MAX_IDENTIFIER_BYTES = 63;

/** `<target>__<kind>_<random>`, the target part shortened (by whole characters) to fit 63 bytes. */
export function sideDatabaseName(target: string, kind: 'restore' | 'old', random = randomBytes(4).toString('hex')): string {
  const suffix = `__${kind}_${random}`;
  const chars = Array.from(target);
  while (chars.length > 0 && Buffer.byteLength(chars.join('') + suffix) > MAX_IDENTIFIER_BYTES) chars.pop();
  return chars.join('') + suffix;
}

export function validateDatabaseName(name: string): void {
  if (name === '' || Buffer.byteLength(name) > MAX_IDENTIFIER_BYTES || name.includes('\0')) {
    throw new CliError(ExitCode.USAGE, `"${name.slice(0, 80)}" is not a usable database name (1-63 bytes)`);
  }
  if (name === 'template0' || name === 'template1') throw new CliError(ExitCode.USAGE, `refusing to restore into ${name}`);
}

/**
 * A connection for CREATE/DROP/RENAME: to `postgres`, never the target itself; `template1` when
 * the target is `postgres` or a server has no `postgres` database.
 */
async function connectMaintenance(db: DbSettings): Promise<Client> {
  if (db.database === 'postgres') return connect(db, 'template1');
  try {
    return await connect(db, 'postgres');
  } catch (err) {
    if ((err as { cause?: { code?: string } }).cause?.code !== '3D000') throw err;
    return connect(db, 'template1');
  }
}

function clientConfig(db: DbSettings, database: string): ClientConfig {
  return {
    host: db.host,
    port: db.port,
    user: db.user,
    password: db.password,
    database,
    application_name: 'db-restore',
    connectionTimeoutMillis: 15_000,
  };
}

function pgMessage(err: unknown, password: string): string {
  const e = err as { message?: string; code?: string };
  return redact(e.message ?? String(err), password);
}

async function connect(db: DbSettings, database: string): Promise<Client> {
  // PGSSLMODE as libpq (and so psql) means it; allow/prefer fall back with a second attempt.
  const attempts = pgSslAttempts(db.tls, (file) => readFileSync(file, 'utf8'));
  try {
    for (let i = 0; ; i++) {
      const client = new Client({ ...clientConfig(db, database), ssl: attempts[i] ?? false });
      // An idle connection dropping mid-restore must reach us as a failed query, not crash the process.
      client.on('error', () => undefined);
      try {
        await client.connect();
        return client;
      } catch (err) {
        await client.end().catch(() => undefined);
        if (i + 1 >= attempts.length || !refusedForEncryption(err)) throw err;
      }
    }
  } catch (err) {
    const code = (err as { code?: string }).code;
    const login = code === '28P01' || code === '28000';
    throw new CliError(
      ExitCode.USAGE,
      `cannot ${login ? 'log in to' : 'connect to'} PostgreSQL at ${db.host}:${db.port} (database ${database}) as ${db.user}: ${pgMessage(err, db.password)}. Check DB_HOST, DB_PORT, DB_USER and DB_PASSWORD.`,
      { cause: err, databaseState: 'untouched' },
    );
  }
}

async function describeTarget(client: Client, target: string, versionNum: number): Promise<ExistingDatabase | null> {
  const provider = versionNum >= 150000 ? 'd.datlocprovider::text' : 'NULL::text';
  const locale = versionNum >= 170000 ? 'd.datlocale' : versionNum >= 150000 ? 'd.daticulocale' : 'NULL::text';
  const rules = versionNum >= 160000 ? 'd.daticurules' : 'NULL::text';
  const { rows } = await client.query<{
    owner: string;
    can_set_owner: boolean;
    encoding: string;
    datcollate: string;
    datctype: string;
    provider: string | null;
    provider_locale: string | null;
    icu_rules: string | null;
    datallowconn: boolean;
    size_bytes: string | null;
    sessions: string;
  }>(
    `SELECT pg_get_userbyid(d.datdba) AS owner,
            pg_has_role(current_user, d.datdba, 'MEMBER') AS can_set_owner,
            pg_encoding_to_char(d.encoding) AS encoding, d.datcollate, d.datctype,
            ${provider} AS provider, ${locale} AS provider_locale, ${rules} AS icu_rules,
            d.datallowconn,
            CASE WHEN has_database_privilege(d.oid, 'CONNECT') THEN pg_database_size(d.oid) END AS size_bytes,
            (SELECT count(*) FROM pg_stat_activity a WHERE a.datid = d.oid AND a.pid <> pg_backend_pid()) AS sessions
       FROM pg_database d WHERE d.datname = $1`,
    [target],
  );
  const row = rows[0];
  if (!row) return null;
  return {
    name: target,
    owner: row.owner,
    canSetOwner: row.can_set_owner,
    encoding: row.encoding,
    collate: row.datcollate,
    ctype: row.datctype,
    localeProvider: row.provider,
    providerLocale: row.provider_locale,
    icuRules: row.icu_rules,
    allowConnections: row.datallowconn,
    sizeBytes: row.size_bytes === null ? null : Number(row.size_bytes),
    sessions: Number(row.sessions),
  };
}

/**
 * Connects, checks the role may do what a restore needs, and describes the target. Runs before
 * the countdown, so a wrong password or a missing privilege stops db-restore before it downloads.
 */
export async function inspectTarget(db: DbSettings): Promise<TargetInfo> {
  validateDatabaseName(db.database);
  const client = await connectMaintenance(db);
  try {
    const { rows } = await client.query<{ version: string; version_num: string; current_user: string; rolsuper: boolean; rolcreatedb: boolean }>(
      `SELECT current_setting('server_version') AS version, current_setting('server_version_num') AS version_num,
              current_user, r.rolsuper, r.rolcreatedb
         FROM pg_roles r WHERE r.rolname = current_user`,
    );
    const me = rows[0];
    if (!me) throw new CliError(ExitCode.UNEXPECTED, 'cannot read the current role from pg_roles');
    const versionNum = Number(me.version_num);
    const target = await describeTarget(client, db.database, versionNum);
    if (!me.rolsuper && !me.rolcreatedb) {
      throw new CliError(ExitCode.USAGE, `role ${me.current_user} may not create databases: grant it CREATEDB (ALTER ROLE ${escapeIdentifier(me.current_user)} CREATEDB) or use a superuser as DB_USER.`, {
        databaseState: 'untouched',
      });
    }
    if (target && !me.rolsuper && !target.canSetOwner) {
      throw new CliError(ExitCode.USAGE, `role ${me.current_user} does not own database ${db.database} (owner: ${target.owner}), so it may not drop or rename it. Use the owner or a superuser as DB_USER.`, {
        databaseState: 'untouched',
      });
    }
    return { serverVersion: me.version, serverVersionNum: versionNum, currentUser: me.current_user, target };
  } finally {
    await client.end().catch(() => undefined);
  }
}

export interface RestoreOptions {
  readonly db: DbSettings;
  readonly mode: RestoreMode;
  readonly psqlPath: string;
  readonly dump: FileHandle;
  /** Cancels the restore (Ctrl-C): psql is stopped and the database left as the mode promises. */
  readonly signal: AbortSignal;
  /** Called around the few statements that must not be interrupted (the swap). */
  readonly critical: <T>(fn: () => Promise<T>) => Promise<T>;
  readonly onProgress?: (bytes: number) => void;
  readonly warn: (message: string) => void;
}

export interface RestoreOutcome {
  readonly database: string;
  readonly mode: RestoreMode;
  /** Whether a database of that name existed before. */
  readonly replaced: boolean;
}

/** `CREATE DATABASE` options that give a new database the target's encoding and locale. */
function createOptions(existing: ExistingDatabase | null, owner: string | null): string {
  const parts = ['TEMPLATE template0'];
  if (existing) {
    parts.push(`ENCODING ${escapeLiteral(existing.encoding)}`, `LC_COLLATE ${escapeLiteral(existing.collate)}`, `LC_CTYPE ${escapeLiteral(existing.ctype)}`);
    if (existing.localeProvider === 'i' && existing.providerLocale !== null) {
      parts.push('LOCALE_PROVIDER icu', `ICU_LOCALE ${escapeLiteral(existing.providerLocale)}`);
      if (existing.icuRules !== null) parts.push(`ICU_RULES ${escapeLiteral(existing.icuRules)}`);
    } else if (existing.localeProvider === 'b' && existing.providerLocale !== null) {
      parts.push('LOCALE_PROVIDER builtin', `BUILTIN_LOCALE ${escapeLiteral(existing.providerLocale)}`);
    }
  }
  if (owner !== null) parts.push(`OWNER ${escapeIdentifier(owner)}`);
  return parts.join(' ');
}

/** Ends the other sessions on `database` that this role may end; returns how many it signalled. */
async function terminateSessions(client: Client, database: string): Promise<number> {
  const { rows } = await client.query<{ n: string }>(
    `SELECT count(pg_terminate_backend(a.pid)) AS n
       FROM pg_stat_activity a
      WHERE a.datname = $1 AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'
        AND ((SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
             OR (a.usesysid IS NOT NULL
                 AND NOT (SELECT rolsuper FROM pg_roles WHERE oid = a.usesysid)
                 AND (pg_has_role(current_user, a.usesysid, 'MEMBER') OR pg_has_role(current_user, 'pg_signal_backend', 'MEMBER'))))`,
    [database],
  );
  return Number(rows[0]?.n ?? 0);
}

const OBJECT_IN_USE = '55006';

/** Retries `fn` while other sessions still hold the database (they may reconnect between attempts). */
async function whileInUse<T>(client: Client, database: string, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    await terminateSessions(client, database);
    try {
      return await fn();
    } catch (err) {
      if ((err as { code?: string }).code !== OBJECT_IN_USE || attempt >= 3) throw err;
      await delay(250);
    }
  }
}

/**
 * Restores the verified dump into `db.database`, all or nothing (invariant 8).
 *
 * swap (default): the dump goes into a new database `<target>__restore_<random>`; only when psql
 * succeeded is the target renamed away and the new one renamed into its place, both renames in one
 * transaction; the old copy is dropped last. Any failure before the swap drops the new database
 * and leaves the target exactly as it was.
 *
 * in-place: the target is dropped and recreated, the dump restored into it; on failure it is
 * dropped and recreated again, so it is left empty rather than half-imported.
 */
export async function restoreDatabase(opts: RestoreOptions): Promise<RestoreOutcome> {
  const { db } = opts;
  const target = db.database;
  const client = await connectMaintenance(db);
  try {
    // Two db-restore runs on one target would swap each other's work away.
    const { rows: lock } = await client.query<{ ok: boolean }>(`SELECT pg_try_advisory_lock(hashtext('db-restore'), hashtext($1)) AS ok`, [target]);
    if (!lock[0]?.ok) {
      throw new CliError(ExitCode.RESTORE_FAILED, `another db-restore is restoring ${target} right now; nothing was changed`, { databaseState: 'untouched' });
    }
    const { rows } = await client.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`);
    const versionNum = Number(rows[0]?.v ?? 0);
    const existing = await describeTarget(client, target, versionNum);
    const force = versionNum >= 130000 ? ' WITH (FORCE)' : '';
    const owner = existing && existing.canSetOwner ? existing.owner : null;
    return opts.mode === 'swap'
      ? await swapRestore(client, opts, existing, owner, force)
      : await inPlaceRestore(client, opts, existing, owner, force);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Streams the verified dump through psql into `database` (both restore modes do this once). */
function restoreDumpInto(opts: RestoreOptions, database: string): Promise<void> {
  return runPsqlRestore({
    psqlPath: opts.psqlPath,
    connection: opts.db,
    database,
    dump: opts.dump,
    signal: opts.signal,
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  });
}

function failure(opts: RestoreOptions, what: string, err: unknown, state: DatabaseState, stateText: string): CliError {
  if (opts.signal.aborted) {
    return new CliError(ExitCode.CANCELLED, `cancelled during ${what}; ${stateText}`, { cause: err, databaseState: state });
  }
  const detail = err instanceof PsqlFailed ? `${err.message}${err.stderrTail ? `:\n${err.stderrTail}` : ''}` : pgMessage(err, opts.db.password);
  return new CliError(ExitCode.RESTORE_FAILED, `restore failed during ${what}: ${detail}\n${stateText}`, { cause: err, databaseState: state });
}

async function swapRestore(client: Client, opts: RestoreOptions, existing: ExistingDatabase | null, owner: string | null, force: string): Promise<RestoreOutcome> {
  const target = opts.db.database;
  const scratch = sideDatabaseName(target, 'restore');
  const targetText = existing ? `database ${target} is unchanged` : `database ${target} still does not exist`;

  const stalePrefix = sideDatabaseName(target, 'restore', '00000000').slice(0, -8);
  const { rows: stale } = await client.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY datname`, [stalePrefix]);
  if (stale.length > 0) {
    opts.warn(`left over from an interrupted restore (drop when no restore runs): ${stale.map((r) => r.datname).join(', ')}`);
  }

  try {
    opts.signal.throwIfAborted();
    await client.query(`CREATE DATABASE ${escapeIdentifier(scratch)} ${createOptions(existing, null)}`);
  } catch (err) {
    throw failure(opts, `CREATE DATABASE ${scratch}`, err, 'unchanged', targetText);
  }

  const dropScratch = async (): Promise<string> => {
    try {
      await client.query(`DROP DATABASE IF EXISTS ${escapeIdentifier(scratch)}${force}`);
      return '';
    } catch (err) {
      return ` The scratch database ${scratch} could not be dropped (${pgMessage(err, opts.db.password)}): drop it by hand.`;
    }
  };

  try {
    await restoreDumpInto(opts, scratch);
  } catch (err) {
    const leftover = await dropScratch();
    throw failure(opts, 'psql', err, 'unchanged', `${targetText}; the scratch database was dropped.${leftover}`);
  }

  // From here on, Ctrl-C waits: the swap is a few statements and must not stop halfway.
  return opts.critical(async () => {
    if (owner !== null) {
      await client.query(`ALTER DATABASE ${escapeIdentifier(scratch)} OWNER TO ${escapeIdentifier(owner)}`).catch((err: unknown) => {
        opts.warn(`could not keep ${owner} as the owner of ${target}: ${pgMessage(err, opts.db.password)}`);
      });
    }
    if (existing === null) {
      try {
        await client.query(`ALTER DATABASE ${escapeIdentifier(scratch)} RENAME TO ${escapeIdentifier(target)}`);
      } catch (err) {
        const leftover = await dropScratch();
        throw failure(opts, `ALTER DATABASE ${scratch} RENAME TO ${target}`, err, 'unchanged', `${targetText}; the scratch database was dropped.${leftover}`);
      }
      return { database: target, mode: 'swap', replaced: false };
    }

    const old = sideDatabaseName(target, 'old');
    try {
      // No new sessions while we end the current ones: the rename needs the target to be idle.
      await client.query(`ALTER DATABASE ${escapeIdentifier(target)} WITH ALLOW_CONNECTIONS false`);
      await whileInUse(client, target, async () => {
        await client.query('BEGIN');
        try {
          // One transaction: readers see the old database or the new one, never none.
          await client.query(`ALTER DATABASE ${escapeIdentifier(target)} RENAME TO ${escapeIdentifier(old)}`);
          await client.query(`ALTER DATABASE ${escapeIdentifier(scratch)} RENAME TO ${escapeIdentifier(target)}`);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw err;
        }
      });
    } catch (err) {
      await client.query(`ALTER DATABASE ${escapeIdentifier(target)} WITH ALLOW_CONNECTIONS ${existing.allowConnections}`).catch(() => undefined);
      const leftover = await dropScratch();
      const busy = (err as { code?: string }).code === OBJECT_IN_USE ? ' (sessions this role may not end are still connected to it)' : '';
      throw failure(opts, `the swap${busy}`, err, 'unchanged', `${targetText}; the scratch database was dropped.${leftover}`);
    }
    try {
      await client.query(`DROP DATABASE ${escapeIdentifier(old)}${force}`);
    } catch (err) {
      opts.warn(`restored, but the previous copy remains as database ${old} (${pgMessage(err, opts.db.password)}); drop it with: DROP DATABASE ${escapeIdentifier(old)};`);
    }
    return { database: target, mode: 'swap', replaced: true };
  });
}

async function inPlaceRestore(client: Client, opts: RestoreOptions, existing: ExistingDatabase | null, owner: string | null, force: string): Promise<RestoreOutcome> {
  const target = opts.db.database;
  const t = escapeIdentifier(target);
  const recreate = async (): Promise<void> => {
    await whileInUse(client, target, () => client.query(`DROP DATABASE IF EXISTS ${t}${force}`));
    await client.query(`CREATE DATABASE ${t} ${createOptions(existing, owner)}`);
  };

  if (opts.signal.aborted) throw failure(opts, 'the start', opts.signal.reason, 'untouched', `database ${target} was not touched`);
  await opts.critical(async () => {
    try {
      await whileInUse(client, target, () => client.query(`DROP DATABASE IF EXISTS ${t}${force}`));
    } catch (err) {
      throw failure(opts, `DROP DATABASE ${target}`, err, 'unchanged', `database ${target} is unchanged`);
    }
    try {
      await client.query(`CREATE DATABASE ${t} ${createOptions(existing, owner)}`);
    } catch (err) {
      throw failure(opts, `CREATE DATABASE ${target}`, err, 'unknown', `database ${target} was dropped and could not be created again: create it by hand`);
    }
  });

  try {
    await restoreDumpInto(opts, target);
  } catch (err) {
    // A dump with large objects may have committed part of itself: start from empty again.
    const state = await opts.critical(() =>
      recreate().then(
        () => ({ state: 'empty' as const, text: `database ${target} was left empty (dropped and recreated).` }),
        (e: unknown) => ({ state: 'unknown' as const, text: `database ${target} could not be emptied again (${pgMessage(e, opts.db.password)}): it may hold part of the dump; drop and recreate it by hand.` }),
      ),
    );
    throw failure(opts, 'psql', err, state.state, state.text);
  }
  return { database: target, mode: 'in-place', replaced: existing !== null };
}
