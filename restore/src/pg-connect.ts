import { readFileSync } from 'node:fs';
import { pgSslAttempts, redact, refusedForEncryption, type PgTlsSettings } from '@db-backup-service/contract';
import { Client, type ClientConfig } from 'pg';
import { RestoreError } from './errors.js';

/** A PostgreSQL server and the role to use on it. `host` is a host name or a Unix socket directory. */
export interface PgServer {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  /** PGSSLMODE and friends, with libpq's meaning (as the service and psql read them). */
  readonly tls: PgTlsSettings;
}

/** A server and the database a restore is about (db-restore's target, a drill's scratch). */
export interface PgDatabase extends PgServer {
  readonly database: string;
}

/** application_name of our sessions unless a caller names its own (db-restore's tests look for it). */
export const DEFAULT_APPLICATION_NAME = 'db-restore';

/** A node-postgres error's message with the password taken out (invariant 6). */
export function pgMessage(err: unknown, password: string): string {
  const e = err as { message?: string };
  return redact(e.message ?? String(err), password);
}

function clientConfig(server: PgServer, database: string, applicationName: string): ClientConfig {
  return {
    host: server.host,
    port: server.port,
    user: server.user,
    password: server.password,
    database,
    application_name: applicationName,
    connectionTimeoutMillis: 15_000,
  };
}

/**
 * Connects to `database`. PGSSLMODE as libpq (and so psql) means it; allow/prefer fall back with a
 * second attempt. A failure is a RestoreError `usage` naming the server and role, never the password.
 */
export async function connect(server: PgServer, database: string, applicationName = DEFAULT_APPLICATION_NAME): Promise<Client> {
  const attempts = pgSslAttempts(server.tls, (file) => readFileSync(file, 'utf8'));
  try {
    for (let i = 0; ; i++) {
      const client = new Client({ ...clientConfig(server, database, applicationName), ssl: attempts[i] ?? false });
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
    throw new RestoreError(
      'usage',
      `cannot ${login ? 'log in to' : 'connect to'} PostgreSQL at ${server.host}:${server.port} (database ${database}) as ${server.user}: ${pgMessage(err, server.password)}. Check DB_HOST, DB_PORT, DB_USER and DB_PASSWORD.`,
      { cause: err, databaseState: 'untouched' },
    );
  }
}

/**
 * A connection for CREATE/DROP/RENAME: to `postgres`, never the target itself; `template1` when
 * the target is `postgres` or a server has no `postgres` database.
 */
export async function connectMaintenance(server: PgServer, target: string, applicationName = DEFAULT_APPLICATION_NAME): Promise<Client> {
  if (target === 'postgres') return connect(server, 'template1', applicationName);
  try {
    return await connect(server, 'postgres', applicationName);
  } catch (err) {
    if ((err as { cause?: { code?: string } }).cause?.code !== '3D000') throw err;
    return connect(server, 'template1', applicationName);
  }
}
