import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { registerExitCleanup } from './exit-cleanup.js';
import { pollUntil } from './wait.js';

export interface StartServiceOptions {
  /** 'listening' (default): any HTTP answer on GET /health. 'healthy': wait for a 200. */
  waitFor?: 'listening' | 'healthy';
  /** Deadline for the wait; default 20 s. */
  timeoutMs?: number;
  /** Script run with this Node; relative paths are from the repo root. Default server/dist/bin.js. */
  entry?: string;
  /**
   * A command to run instead of `node <entry>`, looked up on PATH: how a user starts the service
   * (e.g. `['npx', '--no-install', 'db-backup-service']`, run in `cwd`).
   */
  command?: readonly [string, ...string[]];
  /** Extra arguments after the script (or the command). */
  args?: string[];
  /** Working directory; default the repo root. */
  cwd?: string;
}

export interface ServiceExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServiceProcess {
  /** http://127.0.0.1:<HTTP_PORT> */
  readonly baseUrl: string;
  readonly port: number;
  readonly pid: number;
  /** stdout and stderr lines, in arrival order (interleaving between the two is approximate). */
  readonly logs: string[];
  readonly child: ChildProcess;
  /** Resolves (never rejects) when the process has exited. */
  readonly exited: Promise<ServiceExit>;
  /** Resolves with the first log line (already captured or future) matching pattern; rejects on exit or timeout. */
  waitForLog(pattern: RegExp | string, timeoutMs?: number): Promise<string>;
  /**
   * Sends `signal` and waits for the exit. If the process is still running after timeoutMs it is
   * SIGKILLed (with its process group) and this rejects: a graceful-shutdown test should fail then.
   */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<ServiceExit>;
  /** SIGKILL to the service process only (a crash: children such as pg_dump are not killed by us). */
  kill(): Promise<ServiceExit>;
}

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DEFAULT_ENTRY = 'server/dist/bin.js';

function withLogs(message: string, logs: readonly string[]): Error {
  const tail = logs.slice(-60);
  return new Error(`${message}\n--- service output (${tail.length} of ${logs.length} lines) ---\n${tail.join('\n')}`);
}

/**
 * Starts the built service (`node server/dist/bin.js`, with the Node running the tests, or
 * `opts.command`) as a child process, with exactly `env` plus PATH/HOME/LANG from this process, so
 * a test states every setting the service sees. Waits until GET /health on env.HTTP_PORT answers.
 */
export async function startService(env: Record<string, string>, opts: StartServiceOptions = {}): Promise<ServiceProcess> {
  const port = Number(env.HTTP_PORT);
  if (!Number.isInteger(port) || port <= 0) throw new Error('startService: env.HTTP_PORT must be set to a port (see freePort())');
  const entryRel = opts.entry ?? DEFAULT_ENTRY;
  const entry = isAbsolute(entryRel) ? entryRel : join(REPO_ROOT, entryRel);
  if (!opts.command && !existsSync(entry)) {
    throw new Error(`startService: ${entry} does not exist${opts.entry ? '' : ' (run `npm run build` first)'}`);
  }
  const [file, ...commandArgs] = opts.command ?? [process.execPath, entry];
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const waitFor = opts.waitFor ?? 'listening';
  const baseUrl = `http://127.0.0.1:${port}`;

  const inherited: Record<string, string> = {};
  for (const k of ['PATH', 'HOME', 'LANG'] as const) {
    const v = process.env[k];
    if (v !== undefined) inherited[k] = v;
  }

  const child = spawn(file, [...commandArgs, ...(opts.args ?? [])], {
    cwd: opts.cwd ?? REPO_ROOT,
    env: { ...inherited, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Own process group, so a timed-out stop() and the exit net also reach pg_dump & co.
    detached: true,
  });

  const logs: string[] = [];
  const lines = new EventEmitter();
  const echo = process.env.HARNESS_ECHO_LOGS === '1';
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
      logs.push(line);
      if (echo) console.log(`[service ${child.pid}] ${line}`);
      lines.emit('line', line);
    });
  }

  let exit: ServiceExit | undefined;
  let spawnError: Error | undefined;
  const exited = new Promise<ServiceExit>((resolve) => {
    child.once('error', (err) => {
      spawnError = err;
      // 'exit' may never come when the spawn itself failed.
      if (child.pid === undefined) {
        exit = { code: null, signal: null };
        resolve(exit);
      }
    });
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      unregister();
      lines.emit('exit');
      resolve(exit!);
    };
    // 'close' comes after 'exit' once all output is read, so logs are complete. But a grandchild
    // that inherited stdout/stderr (pg_dump after kill()) keeps the pipes open: then give up on
    // the remaining output after a bounded wait rather than hang.
    let closeTimer: NodeJS.Timeout | undefined;
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      closeTimer = setTimeout(finish, 2_000);
    });
    child.once('close', () => {
      clearTimeout(closeTimer);
      finish();
    });
  });

  const unregister = registerExitCleanup(() => {
    if (exit === undefined && child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
  });

  const killGroup = (): void => {
    if (exit !== undefined || child.pid === undefined) return;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };

  const waitForLog = (pattern: RegExp | string, waitMs = 10_000): Promise<string> => {
    const matches = (l: string): boolean => (typeof pattern === 'string' ? l.includes(pattern) : pattern.test(l));
    const found = logs.find(matches);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        lines.off('line', onLine);
        lines.off('exit', onExit);
      };
      const onLine = (l: string): void => {
        if (matches(l)) {
          done();
          resolve(l);
        }
      };
      const onExit = (): void => {
        done();
        reject(withLogs(`service exited (${JSON.stringify(exit)}) before logging ${String(pattern)}`, logs));
      };
      const timer = setTimeout(() => {
        done();
        reject(withLogs(`no log line matching ${String(pattern)} within ${waitMs} ms`, logs));
      }, waitMs);
      lines.on('line', onLine);
      if (exit !== undefined) onExit();
      else lines.on('exit', onExit);
    });
  };

  const stop = async (signal: NodeJS.Signals = 'SIGTERM', stopTimeoutMs = 10_000): Promise<ServiceExit> => {
    if (exit !== undefined) return exit;
    child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), stopTimeoutMs);
    });
    const result = await Promise.race([exited, timedOut]);
    clearTimeout(timer);
    if (result === 'timeout') {
      killGroup();
      await exited;
      throw withLogs(`service did not exit within ${stopTimeoutMs} ms after ${signal}; killed`, logs);
    }
    return result;
  };

  const kill = async (): Promise<ServiceExit> => {
    if (exit === undefined) child.kill('SIGKILL');
    return exited;
  };

  try {
    await pollUntil(
      async () => {
        const res = await fetch(`${baseUrl}/health`, { signal: AbortSignal.timeout(2_000) });
        await res.arrayBuffer(); // drain, so the keep-alive socket is released
        return waitFor === 'listening' || res.status === 200 ? true : undefined;
      },
      {
        timeoutMs,
        intervalMs: 100,
        what: `${waitFor === 'healthy' ? 'a 200 from' : 'an HTTP answer on'} ${baseUrl}/health`,
        abortIf: () => {
          if (spawnError) throw spawnError;
          if (exit !== undefined) throw new Error(`service exited early (code ${exit.code}, signal ${exit.signal})`);
        },
      },
    );
  } catch (err) {
    killGroup();
    await exited;
    throw withLogs(err instanceof Error ? err.message : String(err), logs);
  }

  return { baseUrl, port, pid: child.pid!, logs, child, exited, waitForLog, stop, kill };
}
