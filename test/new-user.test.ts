// What a new user runs, in a fresh `git clone` of this repository (its committed HEAD, as a user's
// clone would hold): the README's `npm run demo`, stopped with SIGTERM as `timeout` or a supervisor
// would; the demo run directly; and the service started with `npx db-backup-service`.
//
// node_modules: `npm ci` here would extract ~550 MB again (a minute). The clone gets the packages
// this checkout's `npm ci` extracted from the same lockfile (hard links, a copy where they cannot
// be made) but no node_modules/.bin, and `npm rebuild` links the bins from the clone's own
// manifests as `npm ci` does after extracting. Everything after that is what the user runs.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, freePort, pollUntil, registerExitCleanup, startPostgres, startService, type PostgresCluster } from './harness/index.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));

/**
 * The environment of a user's shell: none of the npm_* or VITEST* variables of an enclosing
 * `npm test`, and no node_modules/.bin of this checkout on PATH (npm puts the clone's own first).
 */
function userEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !/^(npm_|VITEST)/i.test(k) && k !== 'NODE_OPTIONS') env[k] = v;
  env.PATH = (process.env.PATH ?? '/usr/bin:/bin')
    .split(delimiter)
    .filter((dir) => !/node_modules[\\/]\.bin$|node-gyp-bin$/.test(dir))
    .join(delimiter);
  return env;
}

/** Runs a command to its end; rejects with its output when it exits non-zero. */
function run(file: string, args: string[], cwd: string, input?: string): Promise<string> {
  return new Promise((done, fail) => {
    const child = spawn(file, args, { cwd, env: userEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr.on('data', (b: Buffer) => (output += b.toString()));
    child.stdin.end(input);
    child.once('error', fail);
    child.once('close', (code, signal) => (code === 0 ? done(output) : fail(new Error(`${file} ${args.join(' ')} exited ${code ?? signal}\n${output}`))));
  });
}

/** Pids of every live descendant of `pid` (from /proc), with their command lines. */
function descendants(pid: number): Map<number, string> {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // exited while we looked
    }
  }
  const found = new Map<number, string>();
  const queue = [...(children.get(pid) ?? [])];
  for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
    try {
      found.set(p, readFileSync(`/proc/${p}/cmdline`, 'utf8').replaceAll('\0', ' ').trim());
    } catch {
      continue;
    }
    queue.push(...(children.get(p) ?? []));
  }
  return found;
}

/** Gone, or a zombie waiting for a parent that no longer exists to reap it. */
function gone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

interface DemoRun {
  child: ChildProcess;
  output: () => string;
  /** Its stdout and stderr have ended: nothing it started still holds them. */
  closed: () => boolean;
}

/** Starts a demo in the clone in its own process group, so a test that dies still stops it. */
function startDemo(file: string, args: string[]): DemoRun {
  const child = spawn(file, args, { cwd: clone, env: userEnv(), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  let closed = false;
  child.stdout!.on('data', (b: Buffer) => (output += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (output += b.toString()));
  const unregister = registerExitCleanup(() => process.kill(-child.pid!, 'SIGTERM'));
  child.once('exit', unregister);
  child.once('close', () => (closed = true));
  return { child, output: () => output, closed: () => closed };
}

interface Ready {
  pids: Map<number, string>;
  clusterDir: string;
  backupDir: string;
  backupId: string;
  output: string;
}

/** Waits for the demo's banner; returns what it printed and the processes it started by then. */
async function waitReady(demo: DemoRun, timeoutMs: number): Promise<Ready> {
  const output = await pollUntil(async () => (demo.output().includes('Ctrl-C stops the service') ? demo.output() : undefined), {
    timeoutMs,
    intervalMs: 200,
    what: 'the demo to print its banner',
    abortIf: () => {
      if (demo.child.exitCode !== null) throw new Error(`the demo exited (${demo.child.exitCode}):\n${demo.output()}`);
    },
  });
  const first = /First backup: (\S+)\/(backup_\S+\.sql\.gz)/.exec(output);
  const cluster = /throwaway cluster is in (\S+)\.\n/.exec(output);
  if (!first || !cluster) throw new Error(`unexpected demo banner:\n${output}`);
  return { pids: descendants(demo.child.pid!), clusterDir: cluster[1]!, backupDir: first[1]!, backupId: first[2]!, output };
}

/** SIGTERM to the demo's own process only, then what it left behind. */
async function terminate(demo: DemoRun, ready: Ready): Promise<{ code: number | null; output: string }> {
  // It started both: proof that the leftover check below looks at the right processes.
  expect([...ready.pids.values()].some((cmd) => cmd.includes('/postgres -D'))).toBe(true);
  expect([...ready.pids.values()].some((cmd) => cmd.includes('db-backup-service'))).toBe(true);
  demo.child.kill('SIGTERM');
  const code = await pollUntil(async () => (demo.child.exitCode !== null || demo.child.signalCode !== null ? { code: demo.child.exitCode } : undefined), {
    timeoutMs: 30_000,
    intervalMs: 100,
    what: 'the demo to exit after SIGTERM',
  }).then((exit) => exit.code);
  // Its output is complete once the pipes close, which a leftover process would keep open.
  await pollUntil(async () => (demo.closed() && [...ready.pids.keys()].every(gone) && !existsSync(ready.clusterDir) ? true : undefined), {
    timeoutMs: 15_000,
    intervalMs: 100,
    what: 'the demo\'s processes and its cluster\'s temp dir to be gone',
  }).catch((err: Error) => {
    const left = [...ready.pids].filter(([pid]) => !gone(pid)).map(([pid, cmd]) => `${pid} ${cmd}`);
    throw new Error(`${err.message}\nstill running: ${left.join('; ') || 'none'}; ${ready.clusterDir} ${existsSync(ready.clusterDir) ? 'exists' : 'removed'}\n${demo.output()}`);
  });
  return { code, output: demo.output() };
}

let work: string;
let clone: string;
let cluster: PostgresCluster | undefined;
const demos: DemoRun[] = [];
const started = new Set<number>();
// The fixture's `npm run demo`, run once: its build is also what the other tests use.
let viaNpm: { ready: Ready; restoreOutput: string; code: number | null; output: string };

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'new-user-'));
  clone = join(work, 'repo');
  const serving = startPostgres({ database: 'app' }).then((pg) => (cluster = pg));
  await run('git', ['clone', '--quiet', REPO, clone], work);
  const packages = (await readdir(join(REPO, 'node_modules'))).filter((e) => e !== '.bin').map((e) => join(REPO, 'node_modules', e));
  const modules = join(clone, 'node_modules');
  await mkdir(modules);
  await run('cp', ['-al', '-t', modules, ...packages], work).catch(async () => {
    // Another file system: copy instead (into an empty dir, never over a hard link into REPO).
    await rm(modules, { recursive: true, force: true });
    await mkdir(modules);
    await run('cp', ['-a', '-t', modules, ...packages], work);
  });
  await run('npm', ['rebuild', '--ignore-scripts', '--offline', '--loglevel=error'], clone);

  // README command 1: builds everything, then starts the demo.
  const demo = startDemo('npm', ['run', 'demo']);
  demos.push(demo);
  const ready = await waitReady(demo, 200_000);
  for (const pid of ready.pids.keys()) started.add(pid);
  // The printed db-restore lines, pasted into bash as they are (stdin, not argv).
  const block = /^ {2}export DB_HOST=[\s\S]*?^ {2}db-restore$/m.exec(ready.output)?.[0];
  if (!block) throw new Error(`no db-restore commands in:\n${ready.output}`);
  const restoreOutput = await run('bash', ['-s'], work, `set -e\n${block}\n`);
  viaNpm = { ready, restoreOutput, ...(await terminate(demo, ready)) };
  await serving;
}, 300_000);

afterAll(async () => {
  for (const demo of demos) if (demo.child.exitCode === null && demo.child.signalCode === null) process.kill(-demo.child.pid!, 'SIGKILL');
  for (const pid of started) if (!gone(pid)) process.kill(pid, 'SIGKILL');
  await cluster?.destroy();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('a new user in a fresh clone', () => {
  it('npm run demo: SIGTERM to npm stops the service and PostgreSQL, removes the temp dir and keeps the backups it names', () => {
    const { ready, code, output } = viaNpm;
    expect(code).toBe(0);
    expect(ready.backupDir).toBe(join(clone, 'demo-data/backups'));
    expect(output).toContain(`the backups stay in ${ready.backupDir}`);
    expect(existsSync(join(ready.backupDir, ready.backupId))).toBe(true);
    expect(existsSync(join(ready.backupDir, `${ready.backupId}.meta.json`))).toBe(true);
  });

  it('npm run demo prints db-restore commands that work when pasted', () => {
    expect(viaNpm.restoreOutput).toContain(viaNpm.ready.backupId);
  });

  it('the demo run directly: SIGTERM cleans up the same way, and the earlier run\'s backups stay', async () => {
    const before = readdirSync(viaNpm.ready.backupDir);
    expect(before.length).toBeGreaterThan(0);
    const demo = startDemo(join(clone, 'node_modules/.bin/node'), ['build/tools/scripts/demo.js']);
    demos.push(demo);
    const ready = await waitReady(demo, 60_000);
    for (const pid of ready.pids.keys()) started.add(pid);
    expect(ready.output).toContain('of earlier demo runs are listed too');
    const { code, output } = await terminate(demo, ready);
    expect(code).toBe(0);
    expect(output).toContain(`the backups stay in ${ready.backupDir}`);
    const after = readdirSync(ready.backupDir);
    expect(after).toEqual(expect.arrayContaining([...before, ready.backupId, `${ready.backupId}.meta.json`]));
  });

  it('npx --no-install db-backup-service starts the built service with the README\'s environment', async () => {
    const dir = join(work, 'backups');
    await mkdir(dir);
    const token = randomBytes(32).toString('hex');
    const svc = await startService(
      {
        PATH: userEnv().PATH!,
        DB_HOST: cluster!.host, DB_PORT: String(cluster!.port), DB_NAME: 'app', DB_USER: cluster!.user, DB_PASSWORD: cluster!.password,
        STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: dir, API_TOKEN: token, HTTP_PORT: String(await freePort()),
        BACKUP_CRON: '0 0 1 1 *', // no scheduled backup racing the test's own
      },
      { command: ['npx', '--no-install', 'db-backup-service'], cwd: clone, waitFor: 'healthy' },
    );
    try {
      // The command npm linked in the clone, not this checkout's build.
      expect([...descendants(svc.pid).values()]).toContainEqual(expect.stringContaining(join(clone, 'node_modules/.bin/db-backup-service')));
      const job = await api(svc.baseUrl, token).backup();
      expect(job).toMatchObject({ status: 'succeeded', triggeredBy: 'api' });
      expect(readdirSync(dir)).toEqual(expect.arrayContaining([job.backupId, `${job.backupId}.meta.json`]));
      // db-restore is linked the same way: without arguments it lists what it could restore.
      const list = spawnSync('npx', ['--no-install', 'db-restore'], {
        cwd: clone, encoding: 'utf8', timeout: 60_000,
        env: { PATH: userEnv().PATH!, DB_HOST: cluster!.host, DB_PORT: String(cluster!.port), DB_NAME: 'app', DB_USER: cluster!.user, DB_PASSWORD: cluster!.password, STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: dir },
      });
      expect(list.status, list.stderr).toBe(0);
      expect(list.stdout).toContain(job.backupId);
    } finally {
      // SIGTERM to npx, as a supervisor sends it: npm forwards it, the service drains and exits 0.
      const pids = [...descendants(svc.pid).keys()];
      expect(await svc.stop('SIGTERM', 30_000)).toEqual({ code: 0, signal: null });
      expect(svc.logs.some((line) => line.includes('"message":"stopped"'))).toBe(true);
      expect(pids.filter((pid) => !gone(pid))).toEqual([]);
    }
  });
});
