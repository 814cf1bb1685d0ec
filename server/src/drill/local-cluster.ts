// The throwaway PostgreSQL cluster a drill restores into when RESTORE_DRILL_TARGET=local.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { appendFile, chown, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseToolVersion, type PgVersion } from '@db-backup-service/restore';
import type { DbServer } from '../config/config.js';

const execFileAsync = promisify(execFile);

/** Every cluster directory starts with this, so a later start recognises what a killed service left. */
export const CLUSTER_DIR_PREFIX = 'db-backup-service-drill-';
/** Inside a cluster directory: the pid of the service that made it (a live owner's cluster is not stale). */
const OWNER_FILE = 'service.pid';
const SUPERUSER = 'postgres';
/** The socket file's name only: there is no TCP listener. */
const SOCKET_PORT = 5432;
const START_TIMEOUT_S = 60;

export interface LocalCluster {
  /** Where to connect: the socket directory, the superuser and its random password. */
  readonly server: DbServer;
  readonly version: PgVersion;
  /** Stops the server (immediate: nothing in it is worth a checkpoint) and deletes its directory. */
  destroy(): Promise<void>;
}

export interface LocalClusterOptions {
  /** A `<major>/bin` with initdb, pg_ctl and postgres. */
  readonly binDir: string;
  /** The environment the server tools run in (the service's without its secrets). */
  readonly env: Readonly<Record<string, string>>;
  /** Default: TMPDIR (os.tmpdir()). */
  readonly parentDir?: string;
  /** The binaries' version when the caller has asked it already (localServerVersion); else asked here. */
  readonly version?: PgVersion;
}

/** The server binaries' version (`postgres --version`), asked before anything is created. */
export async function localServerVersion(opts: Pick<LocalClusterOptions, 'binDir' | 'env'>): Promise<PgVersion> {
  const { stdout } = await execFileAsync(path.join(opts.binDir, 'postgres'), ['--version'], { env: { ...opts.env }, timeout: 10_000 });
  const version = parseToolVersion(stdout);
  if (version === null) throw new Error(`cannot read the version of ${path.join(opts.binDir, 'postgres')} from ${JSON.stringify(stdout.trim().slice(0, 200))}`);
  return version;
}

/**
 * initdb in a fresh directory and start the server on a Unix socket only (listen_addresses ''),
 * with a random superuser password and memory settings for a small throwaway: fsync off, since a
 * crash loses nothing anyone keeps. As root, the server runs as `postgres` (else `nobody`): it
 * refuses root. On any failure the directory is removed before the error is thrown.
 */
export async function startLocalCluster(opts: LocalClusterOptions): Promise<LocalCluster> {
  const version = opts.version ?? (await localServerVersion(opts));
  const runAs = serverUser();
  const baseDir = await mkdtemp(path.join(opts.parentDir ?? tmpdir(), CLUSTER_DIR_PREFIX));
  const dataDir = path.join(baseDir, 'data');
  const password = randomBytes(24).toString('base64url');
  const run = (tool: string, args: string[]) =>
    execFileAsync(path.join(opts.binDir, tool), args, {
      cwd: baseDir,
      env: { ...opts.env, LC_ALL: 'C', TZ: 'UTC' },
      timeout: (START_TIMEOUT_S + 30) * 1000,
      ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
    });
  const destroy = async () => {
    await stopServer(dataDir, run);
    await rm(baseDir, { recursive: true, force: true, maxRetries: 3 });
  };
  try {
    await writeFile(path.join(baseDir, OWNER_FILE), `${process.pid}\n`);
    const pwfile = path.join(baseDir, 'pwfile');
    await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
    if (runAs) {
      // mkdtemp makes the directory 0700 for us; the server's user must own it to create data/.
      await chown(baseDir, runAs.uid, runAs.gid);
      await chown(pwfile, runAs.uid, runAs.gid);
    }
    try {
      await run('initdb', ['-D', dataDir, '-U', SUPERUSER, `--pwfile=${pwfile}`, '--auth=scram-sha-256', '-E', 'UTF8', '--locale=C', '--no-sync']);
    } finally {
      await rm(pwfile, { force: true });
    }
    await appendFile(
      path.join(dataDir, 'postgresql.conf'),
      [
        '',
        '# db-backup-service restore drill: throwaway, Unix socket only',
        "listen_addresses = ''",
        `unix_socket_directories = '${baseDir}'`,
        `port = ${SOCKET_PORT}`,
        'fsync = off',
        'full_page_writes = off',
        'synchronous_commit = off',
        'shared_buffers = 32MB',
        'work_mem = 4MB',
        'maintenance_work_mem = 64MB',
        'max_connections = 20',
        'max_wal_size = 1GB',
        // Shared memory as files under the data directory: a killed cluster leaves nothing in /dev/shm.
        'dynamic_shared_memory_type = mmap',
        "log_min_messages = 'warning'",
        '',
      ].join('\n'),
    );
    await run('pg_ctl', ['-D', dataDir, '-l', path.join(baseDir, 'server.log'), '-w', '-t', String(START_TIMEOUT_S), 'start']);
  } catch (error) {
    const log = await readFile(path.join(baseDir, 'server.log'), 'utf8').catch(() => '');
    await destroy().catch(() => undefined);
    const output = [(error as { stderr?: string }).stderr ?? '', log].join('\n').trim().split('\n').slice(-5).join(' / ');
    const hint = runAs ? ` (the server runs as ${runAs.name}, who must be able to enter ${path.dirname(baseDir)}: check TMPDIR)` : '';
    throw new Error(`could not start the local drill server (PostgreSQL ${version.text} in ${opts.binDir}): ${output || (error as Error).message.split('\n')[0]}${hint}`, { cause: error });
  }
  return {
    server: { host: baseDir, port: SOCKET_PORT, user: SUPERUSER, password, tls: { mode: 'disable', rootCert: null, cert: null, key: null } },
    version,
    destroy,
  };
}

/**
 * Removes the clusters a killed service left in `parentDir` (default TMPDIR): our directory
 * pattern, made by a service that is gone (or by an earlier life of this pid, since this one
 * has started none yet). Their postmaster, if it still runs as `postgres`, is shut down first.
 * Returns the directories removed.
 */
export async function removeStaleClusters(warn: (message: string) => void, parentDir = tmpdir()): Promise<string[]> {
  const removed: string[] = [];
  for (const entry of await readdir(parentDir).catch(() => [])) {
    if (!entry.startsWith(CLUSTER_DIR_PREFIX)) continue;
    const baseDir = path.join(parentDir, entry);
    const owner = Number((await readFile(path.join(baseDir, OWNER_FILE), 'utf8').catch(() => '')).trim());
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && isAlive(owner)) continue;
    try {
      const postmaster = await postmasterPid(path.join(baseDir, 'data'));
      if (postmaster !== null) await killPostmaster(postmaster);
      await rm(baseDir, { recursive: true, force: true, maxRetries: 3 });
      removed.push(baseDir);
    } catch (error) {
      warn(`could not remove the leftover drill cluster ${baseDir}: ${(error as Error).message}`);
    }
  }
  return removed;
}

async function stopServer(dataDir: string, run: (tool: string, args: string[]) => Promise<unknown>): Promise<void> {
  const pid = await postmasterPid(dataDir);
  if (pid === null) return;
  try {
    await run('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', '-t', '30', 'stop']);
  } catch {
    await killPostmaster(pid);
  }
}

/** The postmaster of a data directory when it still runs as a postgres process, else null. */
async function postmasterPid(dataDir: string): Promise<number | null> {
  const first = (await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8').catch(() => '')).split('\n')[0]?.trim() ?? '';
  const pid = Number(first);
  if (!/^\d+$/.test(first) || pid <= 0) return null;
  // A pid file outlives its server; the number may since belong to anything else: check the name.
  return isPostgres(pid) ? pid : null;
}

/** A live (not zombie) process named postgres. */
function isPostgres(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return name === 'postgres' && state !== 'Z';
  } catch {
    return false;
  }
}

/** SIGQUIT (immediate shutdown: the postmaster ends its backends and frees shared memory), then SIGKILL. */
async function killPostmaster(pid: number): Promise<void> {
  signal(pid, 'SIGQUIT');
  const deadline = Date.now() + 10_000;
  while (isPostgres(pid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  if (isPostgres(pid)) signal(pid, 'SIGKILL');
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // gone already
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** initdb and postgres refuse root: as root they run as `postgres` (Debian's server user), else `nobody`. */
function serverUser(): { name: string; uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const passwd = readFileSync('/etc/passwd', 'utf8').split('\n');
  for (const name of ['postgres', 'nobody']) {
    const fields = passwd.find((line) => line.startsWith(`${name}:`))?.split(':');
    if (fields?.[2] !== undefined && fields[3] !== undefined) return { name, uid: Number(fields[2]), gid: Number(fields[3]) };
  }
  throw new Error('running as root, but neither a "postgres" nor a "nobody" user exists to run the drill server as');
}
