import {
  chooseClientFor,
  describeClients,
  findPgClients,
  majorOfVersionNum,
  PgClientsError,
  type PgClient,
} from '@db-backup-service/restore';
import type { ClientBase } from 'pg';
import type { Config } from '../config/config.js';
import { BackupError } from './backup-error.js';
import { pgClientEnv } from './child-env.js';

/** The pg_dump chosen for one backup. */
export interface PgTools {
  readonly pgDumpPath: string;
  readonly binDir: string;
  /** e.g. '15.18'. */
  readonly pgDumpVersion: string;
  /** e.g. 15 (9.6 for a pre-10 client). */
  readonly pgDumpMajor: number;
}

/** Every pg_dump found at start-up, oldest first; `pinned` when PG_BIN_DIR chose the one. */
export interface PgDumpClients {
  readonly clients: readonly PgClient[];
  readonly pinned: boolean;
}

export interface ServerVersion {
  /** e.g. '16.4' (the first word of `server_version`). */
  readonly version: string;
  /** e.g. 160004. */
  readonly versionNum: number;
  /** e.g. 16 (9.6 for a pre-10 server). */
  readonly major: number;
}

/** From config: PG_BIN_DIR, PG_CLIENTS_DIR, the PATH searched last, and the environment the tools run in. */
export type PgToolsConfig = Pick<Config, 'pgBinDir' | 'pgClientsDir'> & { readonly runtime: Pick<Config['runtime'], 'path' | 'childEnv'> };

// pg_dump 15-18 refuse servers older than 9.2.
const OLDEST_DUMPABLE_SERVER_NUM = 90200;

/**
 * Finds the pg_dump binaries this service may use: PG_BIN_DIR alone when set (an explicit choice,
 * no fallback), else every `<PG_CLIENTS_DIR>/<major>/bin/pg_dump`, else the one on PATH.
 */
export async function discoverPgDumps(config: PgToolsConfig): Promise<PgDumpClients> {
  try {
    const clients = await findPgClients({
      tool: 'pg_dump',
      binDir: config.pgBinDir,
      clientsDir: config.pgClientsDir,
      path: config.runtime.path,
      env: pgClientEnv(config.runtime.childEnv),
    });
    return { clients, pinned: config.pgBinDir !== null };
  } catch (error) {
    if (error instanceof PgClientsError) throw new BackupError('PG_DUMP_NOT_FOUND', error.message, { cause: error });
    throw error;
  }
}

/**
 * The pg_dump for this server: the one of its major, else the oldest newer one (chooseClientFor:
 * a dump of the same major restores into that server with its own psql as it is). Throws
 * PG_VERSION_MISMATCH, naming the server and the clients found, when none can dump it: pg_dump
 * refuses a server of a newer major, and this says so before running it.
 */
export function choosePgDump(found: PgDumpClients, server: ServerVersion): PgTools {
  const chosen = chooseClientFor(found.clients, server.major);
  if (server.versionNum < OLDEST_DUMPABLE_SERVER_NUM) {
    throw new BackupError(
      'PG_VERSION_MISMATCH',
      `no pg_dump here can dump a PostgreSQL ${server.version} server: pg_dump supports servers from 9.2 on (clients found: ${describeClients(found.clients)}). ` +
        'Set PG_BIN_DIR to an older PostgreSQL client that still supports this server.',
    );
  }
  if (chosen === null) {
    const fix = found.pinned
      ? `Set PG_BIN_DIR to a PostgreSQL ${server.major}+ client, or unset it to choose among the clients installed under PG_CLIENTS_DIR.`
      : `Install the PostgreSQL ${server.major} client (e.g. postgresql-client-${server.major}) or use the image, which has clients 13 to 18.`;
    throw new BackupError(
      'PG_VERSION_MISMATCH',
      `no pg_dump here can dump a PostgreSQL ${server.version} server: pg_dump must be at least the server's major version, ` +
        `and the ${found.pinned ? 'one PG_BIN_DIR names is' : 'clients found are'} ${describeClients(found.clients)}. ${fix}`,
    );
  }
  return { pgDumpPath: chosen.path, binDir: chosen.binDir, pgDumpVersion: chosen.version.text, pgDumpMajor: chosen.version.major };
}

/** Reads the version of the server `client` is connected to. */
export async function readServerVersion(client: Pick<ClientBase, 'query'>): Promise<ServerVersion> {
  const num = await client.query<{ server_version_num: string }>('SHOW server_version_num');
  const text = await client.query<{ server_version: string }>('SHOW server_version');
  const versionNum = Number(num.rows[0]?.server_version_num);
  const version = (text.rows[0]?.server_version ?? '').trim().split(/\s+/)[0] ?? '';
  if (!Number.isInteger(versionNum) || versionNum <= 0) {
    throw new Error(`unexpected server_version_num ${JSON.stringify(num.rows[0]?.server_version_num)}`);
  }
  return { version, versionNum, major: majorOfVersionNum(versionNum) };
}
