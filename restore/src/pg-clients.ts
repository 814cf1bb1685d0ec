// The PostgreSQL client installations on this machine, and which one to use for a server.
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, readdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseToolVersion, type PgVersion } from './pg-version.js';

const execFileAsync = promisify(execFile);

/** Where Debian's and the PostgreSQL project's packages install each major: `<dir>/<major>/bin`. */
export const DEFAULT_CLIENTS_DIR = '/usr/lib/postgresql';

export type ClientTool = 'pg_dump' | 'psql';

/** One installed client: the tool's path, its bin directory and its version. */
export interface PgClient {
  readonly tool: ClientTool;
  readonly path: string;
  readonly binDir: string;
  readonly version: PgVersion;
  /** How it was found: 'PG_BIN_DIR', the clients directory, or 'PATH'. */
  readonly via: string;
}

export interface FindClientsOptions {
  readonly tool: ClientTool;
  /** PG_BIN_DIR: one explicit client, no search. */
  readonly binDir: string | null;
  /** PG_CLIENTS_DIR: one `<major>/bin` per installed client; null: defaultClientsDir, else PATH. */
  readonly clientsDir: string | null;
  /** Where clients are looked for when PG_CLIENTS_DIR is unset (default /usr/lib/postgresql). */
  readonly defaultClientsDir?: string;
  /** Searched when the default clients directory has none. */
  readonly path: string;
  /** The environment `<tool> --version` runs in. */
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** No usable client, or one that cannot say its version. `message` says what was searched and what to do. */
export class PgClientsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PgClientsError';
  }
}

/**
 * Every installed `tool`, oldest first: PG_BIN_DIR alone when set (an explicit choice); else each
 * `<clientsDir>/<major>/bin` that has it; else (PG_CLIENTS_DIR unset) the first on PATH. Each one's version is asked of
 * the binary itself (`--version`), since a directory's name is only a convention.
 */
export async function findPgClients(opts: FindClientsOptions): Promise<PgClient[]> {
  const clientsDir = opts.clientsDir ?? opts.defaultClientsDir ?? DEFAULT_CLIENTS_DIR;
  if (opts.binDir !== null) {
    const file = path.join(opts.binDir, opts.tool);
    if (!(await isExecutable(file))) {
      throw new PgClientsError(
        `PG_BIN_DIR is ${opts.binDir}, but there is no executable ${opts.tool} in it. ` +
          `Point PG_BIN_DIR at a PostgreSQL client bin directory (e.g. ${clientsDir}/17/bin), or unset it to use every client under ${clientsDir}.`,
      );
    }
    return [await describe(file, opts, 'PG_BIN_DIR')];
  }
  const found: PgClient[] = [];
  for (const entry of await listMajors(clientsDir)) {
    const file = path.join(clientsDir, entry, 'bin', opts.tool);
    if (await isExecutable(file)) found.push(await describe(file, opts, clientsDir));
  }
  if (found.length === 0 && opts.clientsDir !== null) {
    // Set on purpose: a typo must not quietly fall back to whatever is on PATH.
    throw new PgClientsError(
      `PG_CLIENTS_DIR is ${clientsDir}, but there is no <major>/bin/${opts.tool} in it. ` +
        `Point PG_CLIENTS_DIR at a directory holding one <major>/bin per client (like ${DEFAULT_CLIENTS_DIR}), or unset it.`,
    );
  }
  if (found.length === 0) {
    const onPath = await findOnPath(opts.tool, opts.path);
    if (onPath !== null) found.push(await describe(onPath, opts, 'PATH'));
  }
  if (found.length === 0) {
    throw new PgClientsError(
      `${opts.tool} not found: PG_BIN_DIR is not set, there is none under ${clientsDir}/<major>/bin and none on PATH. ` +
        'Install the PostgreSQL client tools (e.g. apt-get install postgresql-client) or set PG_BIN_DIR.',
    );
  }
  return found.sort((a, b) => a.version.num - b.version.num);
}

/**
 * The client for a server of major `serverMajor`: the one of the same major, else the oldest newer
 * one; null when all are older. pg_dump refuses servers newer than itself, and the same major
 * writes a dump that the server's own psql restores as it is (a newer pg_dump adds lines such as
 * 17's `SET transaction_timeout`, which older servers reject).
 */
export function chooseClientFor<C extends Pick<PgClient, 'version'>>(clients: readonly C[], serverMajor: number): C | null {
  const usable = clients.filter((c) => c.version.major >= serverMajor).sort((a, b) => a.version.num - b.version.num);
  return usable.find((c) => c.version.major === serverMajor) ?? usable[0] ?? null;
}

/** "15.18 (/usr/lib/postgresql/15/bin), 17.12 (...)", for messages. */
export function describeClients(clients: readonly Pick<PgClient, 'version' | 'binDir'>[]): string {
  return clients.map((c) => `${c.version.text} (${c.binDir})`).join(', ');
}

async function describe(file: string, opts: FindClientsOptions, via: string): Promise<PgClient> {
  let stdout: string;
  try {
    ({ stdout } = await execFileAsync(file, ['--version'], { timeout: 10_000, env: { ...opts.env } }));
  } catch (error) {
    throw new PgClientsError(`cannot run ${file} --version: ${(error as Error).message}`);
  }
  const version = parseToolVersion(stdout);
  if (version === null) throw new PgClientsError(`cannot read the version of ${file} from ${JSON.stringify(stdout.trim().slice(0, 200))}`);
  return { tool: opts.tool, path: file, binDir: path.dirname(file), version, via };
}

async function listMajors(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((e) => /^\d+(\.\d+)?$/.test(e));
  } catch {
    return [];
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

async function findOnPath(name: string, pathEnv: string): Promise<string | null> {
  for (const dir of pathEnv.split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, name);
    if (await isExecutable(candidate)) return candidate;
  }
  return null;
}
