import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { pgSslAttempts, refusedForEncryption } from '@db-backup-service/contract';
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

interface ConnectOptions {
  timeoutMs?: number;
  keepAlive?: boolean;
  queryTimeoutMs?: number;
}

/** A client with the configured credentials (the password in the client config, never argv). */
function newClient(db: DbConfig, ssl: false | ConnectionOptions, opts: ConnectOptions): pg.Client {
  return new pg.Client({
    host: db.host,
    port: db.port,
    user: db.user,
    password: db.password,
    database: db.name,
    application_name: APPLICATION_NAME,
    ssl,
    connectionTimeoutMillis: opts.timeoutMs ?? 10_000,
    keepAlive: opts.keepAlive ?? false,
    ...(opts.queryTimeoutMs === undefined ? {} : { query_timeout: opts.queryTimeoutMs }),
  });
}

/**
 * A connected client, with the TLS semantics of libpq's sslmode (pgSslAttempts): for allow and
 * prefer a refused first attempt is retried the other way, as libpq does. `onError` is attached
 * before connecting: without a listener a dropped connection is an unhandled 'error' and kills the
 * process.
 */
export async function openClient(db: DbConfig, onError: (error: Error) => void, opts: ConnectOptions = {}): Promise<pg.Client> {
  const attempts = pgSslAttempts(db.tls, (file) => readFileSync(file, 'utf8'));
  for (let i = 0; ; i++) {
    const client = newClient(db, attempts[i] ?? false, opts);
    client.on('error', onError);
    try {
      await client.connect();
      return client;
    } catch (error) {
      // A failed attempt is not the caller's connection: its late errors are not theirs either.
      client.removeListener('error', onError);
      client.on('error', () => undefined);
      await client.end().catch(() => undefined);
      if (i + 1 >= attempts.length || !refusedForEncryption(error)) throw error;
    }
  }
}

/** /health's database probe: the configured role can connect and run `SELECT 1`. */
export async function checkDatabase(db: DbConfig, signal: AbortSignal): Promise<void> {
  let client: pg.Client | null = null;
  const aborted = new Promise<never>((_, reject) => {
    signal.addEventListener('abort', () => reject(new Error('database check timed out')), { once: true });
  });
  const check = (async () => {
    // An idle-connection error after the check is irrelevant.
    client = await openClient(db, () => undefined, { timeoutMs: 3_000 });
    await client.query('SELECT 1');
  })();
  try {
    await Promise.race([check, aborted]);
  } finally {
    // The check may still be connecting when the signal fires: close whatever it opens.
    void check.catch(() => undefined).finally(() => void (client as pg.Client | null)?.end().catch(() => undefined));
  }
}

/**
 * Runs `fn` while holding the backup advisory lock (the one every backup holds while it dumps),
 * i.e. only when no backup of this database runs in any instance. Resolves false, without running
 * `fn`, when the lock is taken; throws when the database cannot be reached.
 */
export async function runExclusive(db: DbConfig, fn: () => Promise<void>): Promise<boolean> {
  // A dropped connection releases the lock by itself; `fn`'s own errors surface below. The
  // queries are bounded: a server that stops answering must not hold the caller (invariant 12).
  const client = await openClient(db, () => undefined, { queryTimeoutMs: 30_000 });
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
