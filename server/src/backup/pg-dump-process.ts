import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import type { Config } from '../config/config.js';
import { formatIsoDuration } from '../config/duration.js';
import { BackupError } from './backup-error.js';
import { pgClientEnv } from './child-env.js';
import { redact } from '@db-backup-service/contract';

/** Portable plain SQL, restorable with stock psql by any role (as the reference service dumps). */
export const PG_DUMP_ARGS: readonly string[] = ['--no-owner', '--no-privileges', '--format=plain', '--no-password'];

/**
 * pg_dump takes an ACCESS SHARE lock on every table it dumps. Behind a migration's ACCESS
 * EXCLUSIVE lock it would wait indefinitely, and the application's own queries would queue up
 * behind pg_dump's waiting request (the lock-queue pile-up): with a deadline it gives up instead
 * and the job fails with pg_dump's "could not obtain lock" message (invariant 12).
 */
export function pgDumpArgs(lockWaitTimeoutMs: number): string[] {
  return [...PG_DUMP_ARGS, `--lock-wait-timeout=${lockWaitTimeoutMs}`];
}

const STDERR_KEEP_BYTES = 8192;
const KILL_GRACE_MS = 5_000;

export interface PgDumpExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Set when the process could not be started at all. */
  readonly error: Error | null;
}

/**
 * One pg_dump child. Connection settings and the password reach it through its environment only,
 * never argv (invariant 6). It runs in its own process group so that a kill also reaches anything
 * a wrapper script (PG_BIN_DIR) started.
 */
export class PgDumpProcess {
  readonly #child: ChildProcess;
  readonly #secrets: readonly string[];
  readonly #stderrKeep: number;
  readonly #lockWaitTimeoutMs: number;
  #stderr: Buffer = Buffer.alloc(0);
  #exit: PgDumpExit | null = null;
  readonly exited: Promise<PgDumpExit>;

  constructor(pgDumpPath: string, config: Pick<Config, 'db' | 'backup' | 'runtime'>, secrets: readonly string[]) {
    this.#secrets = secrets;
    this.#lockWaitTimeoutMs = config.backup.lockWaitTimeoutMs;
    // Keep a little more than shown so that a secret cut at the start of the window is still
    // recognised (and redacted) before the window is trimmed.
    this.#stderrKeep = STDERR_KEEP_BYTES + Math.max(0, ...secrets.map((s) => Buffer.byteLength(encodeURIComponent(s))));
    this.#child = spawn(pgDumpPath, pgDumpArgs(config.backup.lockWaitTimeoutMs), {
      env: pgClientEnv(config.runtime.childEnv, config.db),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    this.exited = new Promise((resolve) => {
      this.#child.once('error', (error) => {
        this.#exit ??= { code: null, signal: null, error };
        resolve(this.#exit);
      });
      this.#child.once('close', (code, signal) => {
        this.#exit ??= { code, signal, error: null };
        resolve(this.#exit);
      });
    });
    // Always drained: a full stderr pipe would block pg_dump.
    this.#child.stderr?.on('data', (chunk: Buffer) => {
      this.#stderr = Buffer.concat([this.#stderr, chunk]);
      if (this.#stderr.length > this.#stderrKeep) this.#stderr = Buffer.from(this.#stderr.subarray(-this.#stderrKeep));
    });
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  get stdout(): Readable {
    const stdout = this.#child.stdout;
    if (stdout === null) throw new Error('pg_dump was spawned without a stdout pipe');
    return stdout;
  }

  get hasExited(): boolean {
    return this.#exit !== null;
  }

  /** The last ~8 KB of stderr, secrets redacted, trimmed. */
  stderrTail(): string {
    const text = redact(this.#stderr.toString('utf8'), this.#secrets);
    return (text.length > STDERR_KEEP_BYTES ? `...${text.slice(-STDERR_KEEP_BYTES)}` : text).trim();
  }

  /** SIGTERM to the process group, SIGKILL if it is still there after a grace period. */
  kill(): void {
    if (this.#exit !== null || this.#child.pid === undefined) return;
    const pid = this.#child.pid;
    const send = (signal: NodeJS.Signals) => {
      try {
        process.kill(-pid, signal);
      } catch {
        // Already gone (ESRCH): nothing to do.
      }
    };
    send('SIGTERM');
    const timer = setTimeout(() => {
      if (this.#exit === null) send('SIGKILL');
    }, KILL_GRACE_MS);
    timer.unref();
    void this.exited.then(() => clearTimeout(timer));
  }

  /** Resolves when pg_dump exited 0; otherwise a PG_DUMP_FAILED error saying how it ended and what it said. */
  async assertSucceeded(): Promise<void> {
    const exit = await this.exited;
    if (exit.error === null && exit.code === 0) return;
    throw this.failure(exit);
  }

  failure(exit: PgDumpExit): BackupError {
    const how =
      exit.error !== null
        ? `could not be started (${exit.error.message})`
        : exit.signal !== null
          ? `was killed by signal ${exit.signal}`
          : `exited with code ${exit.code}`;
    const stderr = this.stderrTail();
    // pg_dump enforces --lock-wait-timeout with a statement timeout on its LOCK TABLE, so its own
    // words ("canceling statement due to statement timeout") do not say what happened.
    const hint = /statement timeout[\s\S]*LOCK TABLE/.test(stderr)
      ? ` (a table stayed locked by another session, e.g. a migration, for longer than BACKUP_LOCK_WAIT_TIMEOUT, ${formatIsoDuration(this.#lockWaitTimeoutMs)})`
      : '';
    return new BackupError('PG_DUMP_FAILED', redact(`pg_dump ${how}${hint}${stderr ? `: ${stderr}` : ''}`, this.#secrets), {
      cause: exit.error ?? undefined,
    });
  }
}
