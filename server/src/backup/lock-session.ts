import { setTimeout as delay } from 'node:timers/promises';
import type pg from 'pg';
import { ADVISORY_LOCK_KEY, openClient } from '../db.js';
import type { Config } from '../config/config.js';
import type { Logger } from '../logger.js';
import { BackupError } from './backup-error.js';
import { describeError } from './describe-error.js';
import { readServerVersion } from './pg-tools.js';
import type { ServerVersion } from './pg-tools.js';
import { redact } from '@db-backup-service/contract';

const QUERY_TIMEOUT_MS = 30_000;
const CLOSE_TIMEOUT_MS = 5_000;

/**
 * A connection to the database being backed up that holds the advisory lock for the whole dump,
 * so that two instances (e.g. two replicas of the sidecar) never back up the same database at
 * once. The lock belongs to the session: it goes away with the connection, even on a crash.
 */
export class LockSession {
  readonly #client: pg.Client;
  readonly #logger: Logger;
  readonly #secrets: readonly string[];
  readonly #state: { closed: boolean };
  readonly #lost: AbortController;
  #locked = false;

  private constructor(
    client: pg.Client,
    logger: Logger,
    secrets: readonly string[],
    readonly server: ServerVersion,
    state: { closed: boolean },
    lost: AbortController,
  ) {
    this.#client = client;
    this.#logger = logger;
    this.#secrets = secrets;
    this.#state = state;
    this.#lost = lost;
  }

  /**
   * Aborted, with a DB_UNREACHABLE BackupError as its reason, when the connection (and so the
   * lock) is lost before close(): the backup must then fail, since another instance may already
   * have taken the lock and started a backup of its own (possibly under the same id).
   */
  get lost(): AbortSignal {
    return this.#lost.signal;
  }

  /** Connects and reads the server version; throws DB_UNREACHABLE (redacted pg reason) or ABORTED. */
  static async open(db: Config['db'], opts: { signal: AbortSignal; secrets: readonly string[]; logger: Logger }): Promise<LockSession> {
    const state = { closed: false };
    const lost = new AbortController();
    const onLost = (error: Error | null) => {
      if (state.closed || lost.signal.aborted) return;
      const why = error === null ? 'the server closed it' : redact(describeError(error), opts.secrets);
      opts.logger.warn('lost the lock connection to PostgreSQL', { error: why });
      lost.abort(new BackupError('DB_UNREACHABLE', `lost the connection to PostgreSQL that holds the backup lock (${why}); the backup is abandoned`));
    };
    let opened: pg.Client | null = null;
    const onAbort = () => void opened?.end().catch(() => undefined);
    opts.signal.addEventListener('abort', onAbort, { once: true });
    try {
      // Client-side query timeout: a server that stops answering (network gone, no RST) must not
      // hang the job.
      const opening = openClient(db, onLost, { keepAlive: true, queryTimeoutMs: QUERY_TIMEOUT_MS });
      const client = (opened = await Promise.race([opening, abortion(opts.signal, opening)]));
      client.on('end', () => onLost(null));
      const server = await readServerVersion(client);
      // An idle_session_timeout set by the DBA would end this (idle) session mid-dump and with it
      // the lock; the setting exists from PostgreSQL 14 on and any role may change it for itself.
      if (server.versionNum >= 140000) await client.query('SET idle_session_timeout = 0');
      opts.signal.throwIfAborted();
      return new LockSession(client, opts.logger, opts.secrets, server, state, lost);
    } catch (error) {
      state.closed = true;
      await (opened as pg.Client | null)?.end().catch(() => undefined);
      if (opts.signal.aborted) throw abortedError(opts.signal);
      throw new BackupError(
        'DB_UNREACHABLE',
        redact(
          `cannot connect to PostgreSQL at ${db.host}:${db.port} (database "${db.name}", user "${db.user}"): ${describeError(error)}`,
          opts.secrets,
        ),
        { cause: error },
      );
    } finally {
      opts.signal.removeEventListener('abort', onAbort);
    }
  }

  /** Takes the advisory lock without waiting; throws LOCKED_BY_OTHER_INSTANCE when another session holds it. */
  async lock(database: string): Promise<void> {
    const result = await this.#query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS locked', [
      ADVISORY_LOCK_KEY.toString(),
    ]);
    if (result.rows[0]?.locked !== true) {
      throw new BackupError(
        'LOCKED_BY_OTHER_INSTANCE',
        `another db-backup-service instance is backing up database ${database} ` +
          `(it holds advisory lock ${ADVISORY_LOCK_KEY}); try again once it has finished`,
      );
    }
    this.#locked = true;
  }

  /** pg_database_size of the current database: the storage's hint for sizing uploads. */
  async databaseSizeBytes(): Promise<number> {
    const result = await this.#query<{ size: string }>('SELECT pg_database_size(current_database())::text AS size');
    return Number(result.rows[0]?.size ?? 0);
  }

  async #query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> {
    try {
      return await this.#client.query<R>(text, values);
    } catch (error) {
      // pg's messages carry no password, but a query error is foreign text all the same.
      throw new BackupError('DB_UNREACHABLE', redact(`PostgreSQL query failed: ${describeError(error)}`, this.#secrets), { cause: error });
    }
  }

  /** Releases the lock and closes the connection; never throws (it runs in `finally`). */
  async close(): Promise<void> {
    if (this.#state.closed) return;
    this.#state.closed = true;
    if (this.#locked) {
      try {
        await this.#client.query('SELECT pg_advisory_unlock($1::bigint)', [ADVISORY_LOCK_KEY.toString()]);
      } catch (error) {
        // Closing the session below releases it anyway.
        this.#logger.debug('could not release the advisory lock explicitly', { error: describeError(error) });
      }
    }
    // Bounded: closing a connection to a server that vanished must not keep the job running.
    await Promise.race([this.#client.end().catch(() => undefined), delay(CLOSE_TIMEOUT_MS, undefined, { ref: false })]);
  }
}

/** Rejects when `signal` aborts; a client `opening` then delivers is closed at once. */
function abortion(signal: AbortSignal, opening: Promise<pg.Client>): Promise<never> {
  return new Promise<never>((_, reject) => {
    const onAbort = () => {
      void opening.then((client) => client.end(), () => undefined).catch(() => undefined);
      reject(signal.reason);
    };
    if (signal.aborted) onAbort();
    else {
      signal.addEventListener('abort', onAbort, { once: true });
      void opening.finally(() => signal.removeEventListener('abort', onAbort)).catch(() => undefined);
    }
  });
}

export function abortedError(signal: AbortSignal): BackupError {
  const reason: unknown = signal.reason;
  const why = reason instanceof Error && reason.name !== 'AbortError' && reason.message ? `: ${reason.message}` : '';
  return new BackupError('ABORTED', `backup aborted${why}`, { cause: reason });
}
