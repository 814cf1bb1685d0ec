import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { escapeIdentifier, escapeLiteral, type Client } from 'pg';
import type { CompressionFormat } from '@db-backup-service/contract';
import { RestoreError, type DatabaseState } from './errors.js';
import { connectMaintenance, pgMessage, type PgDatabase } from './pg-connect.js';
import type { DumpExpectations, VerifiedDump } from './dump-check.js';
import type { DumpDecryption } from './dump-decoder.js';
import { DumpVerificationFailed, PsqlFailed, runPsqlRestore, type PreambleAdaptation } from './psql.js';

export type RestoreMode = 'swap' | 'in-place';

/**
 * The points of a swap where db-restore can be stopped (RestoreOptions.onStage), in order; tests
 * kill it or break its connection there to prove that every crash point is recoverable.
 */
export const SWAP_STAGES = ['scratch-restored', 'intent-recorded', 'connections-disallowed', 'renamed', 'swapped'] as const;
export type SwapStage = (typeof SWAP_STAGES)[number];

/** What the server and the target look like before anything is changed (for the plan). */
export interface TargetInfo {
  readonly serverVersion: string;
  readonly serverVersionNum: number;
  readonly currentUser: string;
  readonly target: ExistingDatabase | null;
  /** The server's parameter names (pg_settings), for adapting a newer pg_dump's preamble. */
  readonly parameters: readonly string[];
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

/** The databases a restore or a drill makes beside a target: `<target>__<kind>_<8 hex>`. */
export type SideKind = 'restore' | 'old' | 'drill';

/** `<target>__<kind>_<random>`, the target part shortened (by whole characters) to fit 63 bytes. */
export function sideDatabaseName(target: string, kind: SideKind, random = randomBytes(4).toString('hex')): string {
  const suffix = `__${kind}_${random}`;
  const chars = Array.from(target);
  while (chars.length > 0 && Buffer.byteLength(chars.join('') + suffix) > MAX_IDENTIFIER_BYTES) chars.pop();
  return chars.join('') + suffix;
}

export function validateDatabaseName(name: string): void {
  if (name === '' || Buffer.byteLength(name) > MAX_IDENTIFIER_BYTES || name.includes('\0')) {
    throw new RestoreError('usage', `"${name.slice(0, 80)}" is not a usable database name (1-63 bytes)`);
  }
  if (name === 'template0' || name === 'template1') throw new RestoreError('usage', `refusing to restore into ${name}`);
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
export async function inspectTarget(db: PgDatabase): Promise<TargetInfo> {
  validateDatabaseName(db.database);
  const client = await connectMaintenance(db, db.database);
  try {
    const { rows } = await client.query<{ version: string; version_num: string; current_user: string; rolsuper: boolean; rolcreatedb: boolean }>(
      `SELECT current_setting('server_version') AS version, current_setting('server_version_num') AS version_num,
              current_user, r.rolsuper, r.rolcreatedb
         FROM pg_roles r WHERE r.rolname = current_user`,
    );
    const me = rows[0];
    if (!me) throw new RestoreError('unexpected', 'cannot read the current role from pg_roles');
    const versionNum = Number(me.version_num);
    const target = await describeTarget(client, db.database, versionNum);
    if (!me.rolsuper && !me.rolcreatedb) {
      throw new RestoreError('usage', `role ${me.current_user} may not create databases: grant it CREATEDB (ALTER ROLE ${escapeIdentifier(me.current_user)} CREATEDB) or use a superuser as DB_USER.`, {
        databaseState: 'untouched',
      });
    }
    if (target && !me.rolsuper && !target.canSetOwner) {
      throw new RestoreError('usage', `role ${me.current_user} does not own database ${db.database} (owner: ${target.owner}), so it may not drop or rename it. Use the owner or a superuser as DB_USER.`, {
        databaseState: 'untouched',
      });
    }
    const settings = await client.query<{ name: string }>('SELECT name FROM pg_catalog.pg_settings');
    return { serverVersion: me.version, serverVersionNum: versionNum, currentUser: me.current_user, target, parameters: settings.rows.map((r) => r.name) };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Two db-restore runs on one target would swap each other's work away: one session lock per target. */
async function tryLockTarget(client: Client, target: string): Promise<void> {
  const { rows } = await client.query<{ ok: boolean }>(`SELECT pg_try_advisory_lock(hashtext('db-restore'), hashtext($1)) AS ok`, [target]);
  if (!rows[0]?.ok) {
    throw new RestoreError('failed', `another db-restore is restoring ${target} right now; nothing was changed`, { databaseState: 'untouched' });
  }
}

/**
 * The intent a swap records before it disables connections to the target (H1).
 *
 * `ALTER DATABASE ... ALLOW_CONNECTIONS false` has to commit on its own, before the renames
 * (inside their transaction new sessions would not see it), so a db-restore that dies or loses
 * its connection in between leaves production refusing connections. A rerun may only switch them
 * back on if it knows that db-restore switched them off: the target may refuse them on purpose.
 * The proof is this comment on the scratch database, written before the ALTER:
 * - it lives in the server's catalog, so it survives SIGKILL, OOM and a dropped connection, and any
 *   later run on any machine sees it (a local state file would not survive the container);
 * - it is on a database that is ours alone: the target's own comment is never touched;
 * - it names the full target (long names share a shortened scratch prefix);
 * - the rename transaction clears it, so it is gone exactly when the swap committed, and the
 *   failure path drops the scratch (and with it the comment) once connections are back on;
 * - it is written only when the target did accept connections, so a repair restores that and
 *   nothing else.
 */
function swapIntent(target: string): string {
  return `db-restore: swap into database ${JSON.stringify(target)} in progress; db-restore disabled its connections`;
}

/** `ALTER DATABASE x WITH ALLOW_CONNECTIONS true;`, quoted, for messages and for the repair itself. */
export function allowConnectionsSql(database: string): string {
  return `ALTER DATABASE ${escapeIdentifier(database)} WITH ALLOW_CONNECTIONS true;`;
}

/** `DROP DATABASE x;`, quoted, for the messages that name a leftover. */
export function dropDatabaseSql(database: string): string {
  return `DROP DATABASE ${escapeIdentifier(database)};`;
}

/** Databases named `<target>__<kind>_<8 hex>`, as sideDatabaseName makes them. */
export function isSideDatabase(name: string, target: string, kind: SideKind): boolean {
  const prefix = sideDatabaseName(target, kind, '00000000').slice(0, -8);
  return name.startsWith(prefix) && /^[0-9a-f]{8}$/.test(name.slice(prefix.length));
}

/**
 * Runs before the plan of every restore: undoes what an interrupted swap left (H1) and names
 * every leftover with the command that removes it (M6). Holding the target's lock, no other
 * db-restore is between recording its intent and committing its swap, so a recorded intent
 * found now belongs to a run that is gone and its target may be switched back on.
 */
export async function recoverInterruptedSwap(db: PgDatabase, warn: (message: string) => void): Promise<void> {
  validateDatabaseName(db.database);
  const target = db.database;
  const client = await connectMaintenance(db, db.database);
  try {
    await tryLockTarget(client, target);
    const { rows } = await client.query<{ datname: string; datallowconn: boolean; comment: string | null }>(
      `SELECT datname, datallowconn, shobj_description(oid, 'pg_database') AS comment FROM pg_database
        WHERE datname = $1 OR starts_with(datname, $2) OR starts_with(datname, $3) ORDER BY datname`,
      [target, sideDatabaseName(target, 'restore', '00000000').slice(0, -8), sideDatabaseName(target, 'old', '00000000').slice(0, -8)],
    );
    const scratches = rows.filter((r) => isSideDatabase(r.datname, target, 'restore'));
    const olds = rows.filter((r) => isSideDatabase(r.datname, target, 'old'));
    const marked = scratches.filter((r) => r.comment === swapIntent(target));
    const refusing = rows.some((r) => r.datname === target && !r.datallowconn);

    if (refusing && marked.length > 0) {
      await client.query(allowConnectionsSql(target)).catch((err: unknown) => {
        throw new RestoreError(
          'failed',
          `database ${target} refuses connections since a db-restore swap was interrupted, and enabling them failed (${pgMessage(err, db.password)}): run ${allowConnectionsSql(target)} as its owner or a superuser`,
          { cause: err, databaseState: 'unknown' },
        );
      });
      warn(`database ${target} was refusing connections since a db-restore swap was interrupted (killed or disconnected); they are enabled again`);
    } else if (refusing && scratches.length + olds.length > 0) {
      warn(
        `database ${target} does not accept connections, next to databases left by an interrupted restore. If that restore disabled them (older db-restore versions left no record of it), enable them with: ${allowConnectionsSql(target)}`,
      );
    }
    // The intent is settled either way: a stale one must not re-enable a target someone disables later.
    for (const m of marked) {
      await client.query(`COMMENT ON DATABASE ${escapeIdentifier(m.datname)} IS NULL`).catch((err: unknown) => {
        warn(`could not clear db-restore's swap record on ${m.datname} (${pgMessage(err, db.password)}); drop that database before disabling connections to ${target} on purpose`);
      });
    }

    for (const r of scratches) {
      warn(`${r.datname} is left over from an interrupted restore (a copy never swapped in); drop it with: ${dropDatabaseSql(r.datname)}`);
    }
    for (const r of olds) {
      warn(`${r.datname} is a previous content of ${target}, replaced by a restore; drop it when no longer needed: ${dropDatabaseSql(r.datname)}`);
    }
  } finally {
    await client.end().catch(() => undefined);
  }
}

export interface RestoreOptions {
  readonly db: PgDatabase;
  readonly mode: RestoreMode;
  /** swap: keep the replaced database as `<target>__old_<random>` instead of dropping it (M6). */
  readonly keepOld: boolean;
  readonly psqlPath: string;
  /** The stored .sql.gz / .sql.zst from its first byte: hashed, decompressed and fed to psql as it streams. */
  readonly dump: Readable;
  /** How `dump` is compressed: from the backup id's (or the file's) extension. */
  readonly format: CompressionFormat;
  /** An age-encrypted dump: decrypted while it streams (runPsqlRestore); null: a plain one. */
  readonly decrypt: DumpDecryption | null;
  /** What the dump must match; swap: a mismatch found at its end drops the scratch, the target untouched. */
  readonly expected: DumpExpectations;
  /** Names the dump in messages (the backup id or file). */
  readonly label: string;
  /** Drop the preamble's SET lines for parameters other than these (a dump by a newer pg_dump); null: restore as it is. */
  readonly adaptTo: PreambleAdaptation | null;
  /** Cancels the restore (Ctrl-C): psql is stopped and the database left as the mode promises. */
  readonly signal: AbortSignal;
  /** Called around the few statements that must not be interrupted (the swap). */
  readonly critical: <T>(fn: () => Promise<T>) => Promise<T>;
  readonly onProgress?: (bytes: number) => void;
  readonly warn: (message: string) => void;
  /** Awaited at each stage of a swap: the injection point for crash tests. */
  readonly onStage?: (stage: SwapStage) => Promise<void>;
}

export interface RestoreOutcome {
  readonly database: string;
  readonly mode: RestoreMode;
  /** Whether a database of that name existed before. */
  readonly replaced: boolean;
  /** With keepOld: the database that holds the replaced content. */
  readonly keptOld: string | null;
  /** The dump as it was read while restoring. */
  readonly verified: VerifiedDump;
}

/** `CREATE DATABASE` options that give a new database the target's encoding and locale. */
export function createOptions(existing: ExistingDatabase | null, owner: string | null): string {
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
export async function terminateSessions(client: Client, database: string): Promise<number> {
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
  const client = await connectMaintenance(db, target);
  try {
    await tryLockTarget(client, target);
    const { rows } = await client.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`);
    const versionNum = Number(rows[0]?.v ?? 0);
    const existing = await describeTarget(client, target, versionNum);
    const force = forceClause(versionNum);
    const owner = existing && existing.canSetOwner ? existing.owner : null;
    return opts.mode === 'swap'
      ? await swapRestore(client, opts, existing, owner, force)
      : await inPlaceRestore(client, opts, existing, owner, force);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** DROP DATABASE's `WITH (FORCE)` (13+): ends the sessions a drop would otherwise fail on. */
export function forceClause(versionNum: number): string {
  return versionNum >= 130000 ? ' WITH (FORCE)' : '';
}

/** Streams the dump through psql into `database` (both restore modes do this once). */
function restoreDumpInto(opts: RestoreOptions, database: string): Promise<VerifiedDump> {
  return runPsqlRestore({
    psqlPath: opts.psqlPath,
    connection: opts.db,
    database,
    dump: opts.dump,
    format: opts.format,
    decrypt: opts.decrypt,
    expected: opts.expected,
    label: opts.label,
    adaptTo: opts.adaptTo,
    signal: opts.signal,
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  });
}

/** psql's failure with the tail of its stderr, or the server's message (password redacted). */
export function failureDetail(err: unknown, password: string): string {
  if (err instanceof PsqlFailed) return `${err.message}${err.stderrTail ? `:\n${err.stderrTail}` : ''}`;
  if (err instanceof RestoreError) return err.message;
  return pgMessage(err, password);
}

function failure(opts: RestoreOptions, what: string, err: unknown, state: DatabaseState, stateText: string): RestoreError {
  if (opts.signal.aborted) {
    return new RestoreError('cancelled', `cancelled during ${what}; ${stateText}`, { cause: err, databaseState: state });
  }
  if (err instanceof DumpVerificationFailed) {
    return new RestoreError('verification', `${err.message}. ${stateText}`, { cause: err, databaseState: state });
  }
  // A wrong identity: the configuration, not the restore, failed (and stays the operator's to fix).
  if (err instanceof RestoreError && err.kind === 'usage') {
    return new RestoreError('usage', `${err.message}. ${stateText}`, { cause: err, databaseState: state });
  }
  return new RestoreError('failed', `restore failed during ${what}: ${failureDetail(err, opts.db.password)}\n${stateText}`, { cause: err, databaseState: state });
}

async function swapRestore(client: Client, opts: RestoreOptions, existing: ExistingDatabase | null, owner: string | null, force: string): Promise<RestoreOutcome> {
  const target = opts.db.database;
  const scratch = sideDatabaseName(target, 'restore');
  const targetText = existing ? `database ${target} is unchanged` : `database ${target} still does not exist`;

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

  let verified: VerifiedDump;
  try {
    verified = await restoreDumpInto(opts, scratch);
  } catch (err) {
    const leftover = await dropScratch();
    // A dump that is not what its sidecar says never got near the target: only a scratch existed.
    const state: DatabaseState = err instanceof DumpVerificationFailed || (err instanceof RestoreError && err.kind === 'usage') ? 'untouched' : 'unchanged';
    throw failure(opts, 'psql', err, state, `${targetText}; the scratch database was dropped.${leftover}`);
  }

  await opts.onStage?.('scratch-restored');
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
      return { database: target, mode: 'swap', replaced: false, keptOld: null, verified };
    }

    const old = sideDatabaseName(target, 'old');
    const t = escapeIdentifier(target);
    // A target that refuses connections already needs no blocking, and must not be re-enabled.
    const disallow = existing.allowConnections;
    let disallowed = false;
    try {
      if (disallow) {
        await client.query(`COMMENT ON DATABASE ${escapeIdentifier(scratch)} IS ${escapeLiteral(swapIntent(target))}`);
        await opts.onStage?.('intent-recorded');
        // No new sessions while we end the current ones: the rename needs the target to be idle.
        disallowed = true;
        await client.query(`ALTER DATABASE ${t} WITH ALLOW_CONNECTIONS false`);
        await opts.onStage?.('connections-disallowed');
      }
      await whileInUse(client, target, async () => {
        await client.query('BEGIN');
        try {
          // One transaction: readers see the old database or the new one, never none; the
          // recorded intent goes with the commit (the scratch is the target by then).
          await client.query(`ALTER DATABASE ${t} RENAME TO ${escapeIdentifier(old)}`);
          await client.query(`ALTER DATABASE ${escapeIdentifier(scratch)} RENAME TO ${t}`);
          if (disallow) await client.query(`COMMENT ON DATABASE ${t} IS NULL`);
          // A kept copy is for inspection: it accepts connections as the target did.
          if (opts.keepOld && disallow) await client.query(`ALTER DATABASE ${escapeIdentifier(old)} WITH ALLOW_CONNECTIONS true`);
          await opts.onStage?.('renamed');
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw err;
        }
      });
    } catch (err) {
      const busy = (err as { code?: string }).code === OBJECT_IN_USE ? ' (sessions this role may not end are still connected to it)' : '';
      const reenabled = disallowed
        ? await client.query(allowConnectionsSql(target)).then(
            () => null,
            (e: unknown) => pgMessage(e, opts.db.password),
          )
        : null;
      if (reenabled !== null) {
        // The scratch and its recorded intent stay: they let the next run repair the target.
        throw failure(
          opts,
          `the swap${busy}`,
          err,
          'unknown',
          `the state of database ${target} is unknown: enabling its connections again failed (${reenabled}), so it may refuse every connection now. ` +
            `Repair it with: ${allowConnectionsSql(target)} (running db-restore again does this first). ` +
            `The restored copy ${scratch} may be left over; drop it with: ${dropDatabaseSql(scratch)}`,
        );
      }
      const leftover = await dropScratch();
      throw failure(opts, `the swap${busy}`, err, 'unchanged', `${targetText}; the scratch database was dropped.${leftover}`);
    }
    await opts.onStage?.('swapped');
    if (opts.keepOld) return { database: target, mode: 'swap', replaced: true, keptOld: old, verified };
    try {
      await client.query(`DROP DATABASE ${escapeIdentifier(old)}${force}`);
    } catch (err) {
      opts.warn(`restored, but the previous copy remains as database ${old} (${pgMessage(err, opts.db.password)}); drop it with: ${dropDatabaseSql(old)}`);
    }
    return { database: target, mode: 'swap', replaced: true, keptOld: null, verified };
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

  let verified: VerifiedDump;
  try {
    verified = await restoreDumpInto(opts, target);
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
  return { database: target, mode: 'in-place', replaced: existing !== null, keptOld: null, verified };
}
