import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Config } from './config/config.js';

type DbConfig = Config['db'];

export const APPLICATION_NAME = 'db-backup-service';

/**
 * The advisory lock every instance takes on the database it backs up: the first 8 bytes of
 * SHA-256('db-backup-service') as a signed 64-bit key, fixed so that separately deployed
 * instances (and versions of this service) agree on it.
 */
export const ADVISORY_LOCK_KEY: bigint = createHash('sha256').update(APPLICATION_NAME).digest().readBigInt64BE(0);

/** A connection with the configured credentials (the password in the client config, never argv). */
export function connect(db: DbConfig, opts: { timeoutMs?: number; keepAlive?: boolean; queryTimeoutMs?: number } = {}): pg.Client {
  return new pg.Client({
    host: db.host,
    port: db.port,
    user: db.user,
    password: db.password,
    database: db.name,
    application_name: APPLICATION_NAME,
    connectionTimeoutMillis: opts.timeoutMs ?? 10_000,
    keepAlive: opts.keepAlive ?? false,
    ...(opts.queryTimeoutMs === undefined ? {} : { query_timeout: opts.queryTimeoutMs }),
  });
}

/** /health's database probe: the configured role can connect and run `SELECT 1`. */
export async function checkDatabase(db: DbConfig, signal: AbortSignal): Promise<void> {
  const client = connect(db, { timeoutMs: 3_000 });
  client.on('error', () => {
    // An idle-connection error after the check is irrelevant; without a listener it would crash.
  });
  const aborted = new Promise<never>((_, reject) => {
    signal.addEventListener('abort', () => reject(new Error('database check timed out')), { once: true });
  });
  try {
    await Promise.race([(async () => {
      await client.connect();
      await client.query('SELECT 1');
    })(), aborted]);
  } finally {
    void client.end().catch(() => undefined);
  }
}

/**
 * Runs `fn` while holding the backup advisory lock (the one every backup holds while it dumps),
 * i.e. only when no backup of this database runs in any instance. Resolves false, without running
 * `fn`, when the lock is taken; throws when the database cannot be reached.
 */
export async function runExclusive(db: DbConfig, fn: () => Promise<void>): Promise<boolean> {
  const client = connect(db);
  client.on('error', () => {
    // A dropped connection releases the lock by itself; `fn`'s own errors surface below.
  });
  await client.connect();
  try {
    const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [ADVISORY_LOCK_KEY.toString()]);
    if (!rows[0]?.locked) return false;
    try {
      await fn();
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [ADVISORY_LOCK_KEY.toString()]).catch(() => undefined);
    }
    return true;
  } finally {
    await client.end().catch(() => undefined);
  }
}
