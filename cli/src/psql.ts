import { spawn } from 'node:child_process';
import type { FileHandle } from 'node:fs/promises';
import { PassThrough, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { PreambleAdapter } from '@db-backup-service/restore';
import { redact } from '@db-backup-service/sdk';

/** How psql reaches the server. The password travels in PGPASSWORD, never in argv (invariant 6). */
export interface PsqlConnection {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
}

export interface PsqlRestoreOptions {
  readonly psqlPath: string;
  readonly connection: PsqlConnection;
  readonly database: string;
  /** The verified dump; read from offset 0 (the same handle verification read, so the same bytes). */
  readonly dump: FileHandle;
  /** Adapt the dump's preamble to the target (a dump by a newer pg_dump); null: feed it as it is. */
  readonly adaptTo: PreambleAdaptation | null;
  readonly signal: AbortSignal;
  /** Compressed bytes fed so far. */
  readonly onProgress?: (bytes: number) => void;
}

/** The target's parameters (pg_settings), and who hears of each preamble line dropped for lack of one. */
export interface PreambleAdaptation {
  readonly knownParameters: readonly string[];
  readonly onDropped: (line: string) => void;
}

/** psql failed; `stderrTail` holds its last lines (password redacted). */
export class PsqlFailed extends Error {
  constructor(
    message: string,
    readonly stderrTail: string,
  ) {
    super(message);
    this.name = 'PsqlFailed';
  }
}

const STDERR_KEEP_BYTES = 64 * 1024;
const STDERR_SHOW_LINES = 12;

// The one redaction of the project (contract, via the SDK); restore.ts takes it from here.
export { redact };

/** The last non-empty lines of psql's stderr, for an error message. */
export function lastLines(text: string, count = STDERR_SHOW_LINES): string {
  return text
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l !== '')
    .slice(-count)
    .join('\n');
}

/**
 * Variables psql must not inherit. The secrets: db-restore is typically run inside the service's
 * container (`docker exec ... db-restore`), whose environment holds the API token and the AWS
 * secret; psql needs neither (the service's pg_dump does not get them either, server
 * child-env.ts), and a child's environment is readable in /proc by its uid. Found by the fault
 * suite (issue 8: API_TOKEN in psql's /proc/<pid>/environ). The libpq variables: an inherited
 * PGHOSTADDR, PGSERVICE or PGPASSFILE would send psql somewhere other than the configured server.
 */
const NOT_FOR_PSQL = [
  'DB_PASSWORD', 'DB_PASSWORD_FILE', 'API_TOKEN', 'API_TOKEN_FILE', 'AWS_SECRET_ACCESS_KEY', 'AWS_SECRET_ACCESS_KEY_FILE', 'AWS_SESSION_TOKEN',
  'PGHOSTADDR', 'PGSERVICE', 'PGPASSFILE',
];

/** Environment for psql: the caller's without secrets, with the connection set through libpq variables. */
export function psqlEnv(base: NodeJS.ProcessEnv, c: PsqlConnection, database: string): NodeJS.ProcessEnv {
  const inherited = { ...base };
  for (const name of NOT_FOR_PSQL) delete inherited[name];
  return {
    ...inherited,
    PGHOST: c.host,
    PGPORT: String(c.port),
    PGUSER: c.user,
    PGPASSWORD: c.password,
    // In the environment rather than -d: a name containing "=" would be parsed as a conninfo string.
    PGDATABASE: database,
    PGAPPNAME: 'db-restore',
    PGCONNECT_TIMEOUT: base.PGCONNECT_TIMEOUT ?? '15',
  };
}

/** The psql arguments: no psqlrc, stop at the first error, no chatter on stdout. */
export const PSQL_ARGS = ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', '-'] as const;

/**
 * Runs `gunzip | psql` into `database` and resolves only when psql exited 0 after reading the
 * whole dump. The transaction is ours: we write `BEGIN;` before the dump and `COMMIT;` after it.
 * That is what `psql --single-transaction` does, with one difference that matters when db-restore
 * itself dies mid-stream: psql then sees EOF, and with --single-transaction it would COMMIT the
 * prefix it has read; with our framing the COMMIT never arrives and the server rolls back.
 * (A dump with large objects still commits early inside, at its own BEGIN/COMMIT around the
 * object data: which is why the caller restores into a scratch database and swaps.)
 */
export async function runPsqlRestore(opts: PsqlRestoreOptions): Promise<void> {
  opts.signal.throwIfAborted();
  const child = spawn(opts.psqlPath, [...PSQL_ARGS], {
    env: psqlEnv(process.env, opts.connection, opts.database),
    // stdout: large object restores print result rows even with -q; nobody reads them.
    stdio: ['pipe', 'ignore', 'pipe'],
  });

  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderr += chunk;
    if (stderr.length > STDERR_KEEP_BYTES * 2) stderr = stderr.slice(-STDERR_KEEP_BYTES);
  });

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; spawnError: Error | null }>((resolve) => {
    child.once('error', (err) => resolve({ code: null, signal: null, spawnError: err }));
    child.once('close', (code, signal) => resolve({ code, signal, spawnError: null }));
  });

  const onAbort = (): void => {
    // psql closes its connection on SIGTERM; the server rolls the open transaction back.
    child.kill('SIGTERM');
  };
  opts.signal.addEventListener('abort', onAbort, { once: true });

  let fed = 0;
  const count = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      fed += chunk.length;
      opts.onProgress?.(fed);
      callback(null, chunk);
    },
  });
  async function* framed(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    yield Buffer.from('BEGIN;\n');
    for await (const chunk of source) yield chunk;
    // After the dump's last line (\unrestrict, which ends with a newline).
    yield Buffer.from('\nCOMMIT;\n');
  }

  let inputError: unknown = null;
  const adapt = opts.adaptTo === null ? new PassThrough() : new PreambleAdapter(opts.adaptTo);
  const fed$ = pipeline(opts.dump.createReadStream({ start: 0, autoClose: false }), count, createGunzip(), adapt, framed, child.stdin).catch((err: unknown) => {
    // EPIPE when psql stopped at an error: its exit code and stderr tell the story.
    inputError = err;
    child.stdin.destroy();
  });

  const result = await exited;
  await fed$;
  opts.signal.removeEventListener('abort', onAbort);
  const tail = lastLines(redact(stderr, opts.connection.password));

  if (opts.signal.aborted) throw opts.signal.reason;
  if (result.spawnError) throw new PsqlFailed(`cannot run ${opts.psqlPath}: ${result.spawnError.message}`, '');
  if (result.code !== 0) {
    const how = result.signal ? `was killed by ${result.signal}` : `exited with code ${result.code}`;
    throw new PsqlFailed(`psql ${how}`, tail);
  }
  if (inputError !== null) {
    throw new PsqlFailed(`the dump could not be fed to psql completely: ${(inputError as Error).message}`, tail);
  }
}
