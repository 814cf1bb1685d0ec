import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, readdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { ClientBase } from 'pg';
import type { Config } from '../config/config.js';
import { BackupError } from './backup-error.js';
import { pgClientEnv } from './child-env.js';

const execFileAsync = promisify(execFile);

/** The PostgreSQL client tools the service runs, and the pg_dump version found. */
export interface PgTools {
  readonly pgDumpPath: string;
  /** psql beside pg_dump, else on PATH; null when there is none. */
  readonly psqlPath: string | null;
  readonly binDir: string;
  /** e.g. '15.18'. */
  readonly pgDumpVersion: string;
  /** e.g. 15 (9.6 for a pre-10 client). */
  readonly pgDumpMajor: number;
}

export interface ServerVersion {
  /** e.g. '16.4' (the first word of `server_version`). */
  readonly version: string;
  /** e.g. 160004. */
  readonly versionNum: number;
  /** e.g. 16 (9.6 for a pre-10 server). */
  readonly major: number;
}

export interface DiscoverOptions {
  /** Where distribution packages install versioned client tools. */
  readonly versionedRoot?: string;
}

/** From config.runtime: the PATH searched last, and the environment `pg_dump --version` runs in. */
export type PgToolsRuntime = Pick<Config['runtime'], 'path' | 'childEnv'>;

const DEFAULT_VERSIONED_ROOT = '/usr/lib/postgresql';
// pg_dump 15-17 refuse servers older than 9.2.
const OLDEST_DUMPABLE_SERVER_NUM = 90200;

/**
 * Finds pg_dump: PG_BIN_DIR when set (an explicit choice, so no fallback), else the newest
 * `/usr/lib/postgresql/<major>/bin`, else PATH. Newest first because pg_dump must be at least the
 * server's major version and newer clients dump older servers fine.
 */
export async function discoverPgTools(pgBinDir: string | null, runtime: PgToolsRuntime, opts: DiscoverOptions = {}): Promise<PgTools> {
  let pgDumpPath: string | null = null;
  if (pgBinDir !== null) {
    pgDumpPath = path.join(pgBinDir, 'pg_dump');
    if (!(await isExecutable(pgDumpPath))) {
      throw new BackupError(
        'PG_DUMP_NOT_FOUND',
        `PG_BIN_DIR is ${pgBinDir}, but there is no executable pg_dump in it. ` +
          'Point PG_BIN_DIR at a PostgreSQL client bin directory (e.g. /usr/lib/postgresql/17/bin) or unset it.',
      );
    }
  } else {
    pgDumpPath =
      (await findNewestVersioned(opts.versionedRoot ?? DEFAULT_VERSIONED_ROOT)) ??
      (await findOnPath('pg_dump', runtime.path));
    if (pgDumpPath === null) {
      throw new BackupError(
        'PG_DUMP_NOT_FOUND',
        `pg_dump not found: PG_BIN_DIR is not set, there is none under ${opts.versionedRoot ?? DEFAULT_VERSIONED_ROOT}/<major>/bin and none on PATH. ` +
          'Install the PostgreSQL client tools or set PG_BIN_DIR.',
      );
    }
  }
  const binDir = path.dirname(pgDumpPath);
  const siblingPsql = path.join(binDir, 'psql');
  const psqlPath = (await isExecutable(siblingPsql)) ? siblingPsql : await findOnPath('psql', runtime.path);
  const { version, major } = await readPgDumpVersion(pgDumpPath, runtime.childEnv);
  return { pgDumpPath, psqlPath, binDir, pgDumpVersion: version, pgDumpMajor: major };
}

async function readPgDumpVersion(pgDumpPath: string, childEnv: Readonly<Record<string, string>>): Promise<{ version: string; major: number }> {
  let stdout: string;
  try {
    ({ stdout } = await execFileAsync(pgDumpPath, ['--version'], { timeout: 10_000, env: pgClientEnv(childEnv) }));
  } catch (error) {
    throw new BackupError('PG_DUMP_NOT_FOUND', `cannot run ${pgDumpPath} --version: ${(error as Error).message}`, { cause: error });
  }
  const parsed = parsePgDumpVersion(stdout);
  if (parsed === null) {
    throw new BackupError('PG_DUMP_NOT_FOUND', `cannot read the version of ${pgDumpPath} from ${JSON.stringify(stdout.trim().slice(0, 200))}`);
  }
  return parsed;
}

/** Parses `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` into { version: '15.18', major: 15 }. */
export function parsePgDumpVersion(output: string): { version: string; major: number } | null {
  const match = /\(PostgreSQL\)\s+((\d+)(?:\.(\d+))?(?:\.\d+)?(?:[a-z]+\d*)?)/.exec(output);
  if (!match) return null;
  const first = Number(match[2]);
  const second = Number(match[3] ?? 0);
  return { version: match[1] ?? '', major: first >= 10 ? first : first + second / 10 };
}

/** The major version of a `server_version_num`: 160004 -> 16, 90624 -> 9.6. */
export function majorOfVersionNum(versionNum: number): number {
  return versionNum >= 100000 ? Math.floor(versionNum / 10000) : Math.floor(versionNum / 10000) + (Math.floor(versionNum / 100) % 100) / 10;
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

/**
 * Throws PG_VERSION_MISMATCH when this pg_dump cannot dump that server: pg_dump refuses a server of
 * a newer major version, and the error says so up front instead of after a failed pg_dump run.
 */
export function checkVersionCompatibility(pgDump: Pick<PgTools, 'pgDumpVersion' | 'pgDumpMajor'>, server: ServerVersion): void {
  if (server.major > pgDump.pgDumpMajor) {
    throw new BackupError(
      'PG_VERSION_MISMATCH',
      `pg_dump ${pgDump.pgDumpVersion} cannot dump a PostgreSQL ${server.version} server: ` +
        "pg_dump must be at least the server's major version. " +
        `Set PG_BIN_DIR to a PostgreSQL ${server.major}+ client or use an image with a newer client.`,
    );
  }
  if (server.versionNum < OLDEST_DUMPABLE_SERVER_NUM) {
    throw new BackupError(
      'PG_VERSION_MISMATCH',
      `pg_dump ${pgDump.pgDumpVersion} cannot dump a PostgreSQL ${server.version} server: it supports servers from 9.2 on. ` +
        'Set PG_BIN_DIR to an older PostgreSQL client that still supports this server.',
    );
  }
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function findNewestVersioned(root: string): Promise<string | null> {
  let entries: string[];
  try {
    entries = await readdir(root);
  } catch {
    return null;
  }
  const majors = entries.filter((e) => /^\d+(\.\d+)?$/.test(e)).sort((a, b) => Number(b) - Number(a));
  for (const major of majors) {
    const candidate = path.join(root, major, 'bin', 'pg_dump');
    if (await isExecutable(candidate)) return candidate;
  }
  return null;
}

async function findOnPath(name: string, pathEnv: string): Promise<string | null> {
  for (const dir of pathEnv.split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, name);
    if (await isExecutable(candidate)) return candidate;
  }
  return null;
}
