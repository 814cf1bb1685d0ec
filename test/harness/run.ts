// Runs a command to its end and collects its output, for tests that check a tool's exit code,
// output and argv (pg_dump, psql, db-restore, shell pipelines).
import { spawn } from 'node:child_process';

export interface ProcessRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** The argv the child was started with. */
  readonly argv: readonly string[];
}

/**
 * Runs `file args` with exactly PATH plus `env` (so a test states every setting the child sees,
 * and a password travels in the environment, never argv). A child still running after `guardMs`
 * is killed, so a hung one fails its test with its output instead of running into the test timeout.
 */
export function runProcess(file: string, args: readonly string[], env: Record<string, string> = {}, guardMs = 120_000): Promise<ProcessRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const guard = setTimeout(() => child.kill('SIGKILL'), guardMs);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.once('error', (err) => {
      clearTimeout(guard);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(guard);
      resolve({ code, stdout, stderr, argv: child.spawnargs });
    });
  });
}
