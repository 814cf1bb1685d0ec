import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { PassThrough, Transform, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { redact, SECRET_VARIABLES, type CompressionFormat, type PgTlsSettings } from '@db-backup-service/contract';
import { createDumpDecoder, wrongIdentityOnly, type DumpDecryption } from './dump-decoder.js';
import { DumpEnds, dumpProblems, type DumpExpectations, type VerifiedDump } from './dump-check.js';
import { PreambleAdapter } from './dump-preamble.js';
import { RestoreError } from './errors.js';
import { DEFAULT_APPLICATION_NAME } from './pg-connect.js';

/** How psql reaches the server. The password travels in PGPASSWORD, never in argv (invariant 6). */
export interface PsqlConnection {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  /** When given, psql gets these as PGSSLMODE and friends; else it inherits them from the environment. */
  readonly tls?: PgTlsSettings;
}

export interface PsqlRestoreOptions {
  readonly psqlPath: string;
  readonly connection: PsqlConnection;
  readonly database: string;
  /** Sessions show as this (pg_stat_activity); default db-restore. */
  readonly applicationName?: string;
  /** The stored .sql.gz / .sql.zst (or their .age) from its first byte; read to its end, destroyed on failure. */
  readonly dump: Readable;
  /** How `dump` is compressed (inside the encryption): from the backup id's (or the file's) extension. */
  readonly format: CompressionFormat;
  /**
   * `dump` is age-encrypted: decrypted with these identities before it is decompressed; `expected`
   * is then of the ciphertext (as stored and recorded in the sidecar). null: a plain dump.
   */
  readonly decrypt: DumpDecryption | null;
  readonly expected: DumpExpectations;
  /** Names the dump in messages (the backup id or file). */
  readonly label: string;
  /** Adapt the dump's preamble to the target (a dump by a newer pg_dump); null: feed it as it is. */
  readonly adaptTo: PreambleAdaptation | null;
  readonly signal: AbortSignal;
  /** Stored (compressed, or encrypted) bytes read so far. */
  readonly onProgress?: (bytes: number) => void;
  /** Sees every uncompressed chunk as it goes to psql (a drill counts a dump without manifest with it). */
  readonly onUncompressed?: (chunk: Buffer) => void;
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

/** The dump is not what was expected (checksum, size, compression, trailer); found while it streamed. */
export class DumpVerificationFailed extends RestoreError {
  constructor(
    message: string,
    readonly problems: readonly string[],
  ) {
    super('verification', message);
  }
}

const STDERR_KEEP_BYTES = 64 * 1024;
const STDERR_SHOW_LINES = 12;

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
 * What a psql (or `psql --version`) may inherit: the caller's environment without the service's
 * secrets and without the libpq variables that would redirect it. The secrets: db-restore is
 * typically run inside the service's container (`docker exec ... db-restore`), whose environment
 * holds the API token, the database passwords and the AWS secret; psql needs none of them from
 * there (the password it needs is set by psqlEnv), and a child's environment is readable in /proc
 * by its uid. Found by the fault suite (issue 8: API_TOKEN in psql's /proc/<pid>/environ; issue
 * 13: in `psql --version`'s). Every AWS_* too: the default credential chain's tokens are nobody
 * else's. An inherited PGHOSTADDR, PGSERVICE or PGPASSFILE would send psql somewhere other than
 * the configured server.
 */
export function withoutSecrets(base: Readonly<Record<string, string | undefined>>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  for (const name of SECRET_VARIABLES) {
    delete env[name];
    delete env[`${name}_FILE`];
  }
  for (const name of Object.keys(env)) if (name.startsWith('AWS_')) delete env[name];
  for (const name of ['PGHOSTADDR', 'PGSERVICE', 'PGPASSFILE']) delete env[name];
  return env;
}

/** libpq's TLS variables as the settings say (a setting left null is not inherited either). */
function tlsEnv(tls: PgTlsSettings): Record<string, string | undefined> {
  return { PGSSLMODE: tls.mode, PGSSLROOTCERT: tls.rootCert ?? undefined, PGSSLCERT: tls.cert ?? undefined, PGSSLKEY: tls.key ?? undefined };
}

/** Environment for psql: the caller's without secrets, with the connection set through libpq variables. */
export function psqlEnv(base: NodeJS.ProcessEnv, c: PsqlConnection, database: string, applicationName = DEFAULT_APPLICATION_NAME): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...withoutSecrets(base),
    ...(c.tls ? tlsEnv(c.tls) : {}),
    PGHOST: c.host,
    PGPORT: String(c.port),
    PGUSER: c.user,
    PGPASSWORD: c.password,
    // In the environment rather than -d: a name containing "=" would be parsed as a conninfo string.
    PGDATABASE: database,
    PGAPPNAME: applicationName,
    PGCONNECT_TIMEOUT: base.PGCONNECT_TIMEOUT ?? '15',
  };
  for (const [name, value] of Object.entries(env)) if (value === undefined) delete env[name];
  return env;
}

/** The psql arguments: no psqlrc, stop at the first error, no chatter on stdout. */
export const PSQL_ARGS = ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', '-'] as const;

/**
 * Streams the stored dump into psql: SHA-256 and size of the stored bytes, age decryption when
 * encrypted, decompression (gunzip, or zstd with its single-frame check), preamble adaptation, psql. Resolves only when
 * psql exited 0 after reading the whole dump and the dump matched `expected`.
 *
 * The transaction is ours: we write `BEGIN;` before the dump and `COMMIT;` after it, and COMMIT
 * only once the input ended AND its checksum, size, compression and trailer checked out. A
 * mismatch found at the end errors the input instead: psql sees EOF without COMMIT (and is
 * stopped) and the server rolls back. That is what `psql --single-transaction` does, with one
 * difference that matters when we die mid-stream: psql then sees EOF, and with
 * --single-transaction it would COMMIT the prefix it has read. (A dump with large objects still commits early inside, at its own
 * BEGIN/COMMIT around the object data: which is why callers restore into a scratch database.)
 *
 * The stored input is read to its end even when decryption, decompression or psql failed first, so
 * a corrupt dump is named as such rather than by the syntax error its garbage caused in psql. A
 * wrong identity fails at the age header, before a byte reaches psql: a RestoreError 'usage' (the
 * configuration), unless the stored bytes are not what the sidecar says (then 'verification').
 */
export async function runPsqlRestore(opts: PsqlRestoreOptions): Promise<VerifiedDump> {
  opts.signal.throwIfAborted();
  const child = spawn(opts.psqlPath, [...PSQL_ARGS], {
    env: psqlEnv(process.env, opts.connection, opts.database, opts.applicationName),
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

  // The input failed (it is not the dump it should be, or could not be read): psql must run none
  // of what it still holds. It closes its connection on SIGTERM; the server rolls back.
  let stopped = false;
  const stopPsql = (): void => {
    stopped = true;
    child.kill('SIGTERM');
  };
  const onAbort = (): void => {
    stopPsql();
    opts.dump.destroy();
  };
  opts.signal.addEventListener('abort', onAbort, { once: true });

  // Compressed side: hash and count everything, feed the decompressor while the way to psql is open.
  const hash = createHash('sha256');
  let compressed = 0;
  let feeding = true;
  let decompressError: Error | null = null;
  // Errors that reach the pipeline below from elsewhere than the decompressor (the source's, our
  // own verdict's). Every other one but a broken pipe to psql is the decompressor's, whatever its
  // code: zlib's Z_*, zstd's ZSTD_error_*, or the frame check's plain Error.
  const notDecompression = new WeakSet<object>();
  // Decryption (when encrypted) and decompression, one stage: its errors are all "decompression" here.
  const decompressor = createDumpDecoder(opts.format, opts.decrypt);
  // The pipeline below reports the decompressor's errors; this keeps a late one (after it settled) harmless.
  decompressor.on('error', () => undefined);
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      compressed += chunk.length;
      opts.onProgress?.(compressed);
      // Once the way to psql broke, the decompressor is destroyed: writing to it would only raise an error.
      if (!feeding || decompressor.destroyed || decompressor.write(chunk) || decompressor.destroyed) {
        callback();
        return;
      }
      const go = (): void => {
        decompressor.off('drain', go);
        decompressor.off('close', go);
        callback();
      };
      decompressor.once('drain', go);
      decompressor.once('close', go);
    },
    final(callback) {
      if (feeding) decompressor.end();
      callback();
    },
    destroy(err, callback) {
      if (err) notDecompression.add(err);
      if (err && feeding) decompressor.destroy(err);
      callback(err);
    },
  });
  const sourceRead = pipeline(opts.dump, sink).then(
    () => ({ ok: true as const }),
    (err: unknown) => ({ ok: false as const, err }),
  );

  // Uncompressed side: what psql gets, and the dump's ends for the trailer check.
  let uncompressed = 0;
  let decompressedToEnd = false;
  const ends = new DumpEnds();
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      uncompressed += chunk.length;
      ends.push(chunk);
      opts.onUncompressed?.(chunk);
      callback(null, chunk);
    },
    flush(callback) {
      decompressedToEnd = true;
      callback();
    },
  });

  type Verdict = { problems: string[]; readError: null; verified: VerifiedDump } | { problems: []; readError: unknown; verified: null };
  /** Waits for the compressed input's end and says what is wrong with it (readError: it could not be read to the end). */
  let verdict$: Promise<Verdict> | null = null;
  const verdict = (): Promise<Verdict> => (verdict$ ??= judge());
  const judge = async (): Promise<Verdict> => {
    const read = await sourceRead;
    if (!read.ok) return { problems: [], readError: read.err, verified: null };
    const sha256 = hash.digest('hex');
    const found = dumpProblems({ sizeBytes: compressed, sha256, format: opts.format, decompressError, ends: decompressedToEnd ? ends : null, expected: opts.expected });
    return { problems: found, readError: null, verified: { sha256, sizeBytes: compressed, uncompressedBytes: uncompressed } };
  };

  async function* framed(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    yield Buffer.from('BEGIN;\n');
    for await (const chunk of source) yield chunk;
    const { problems: found, readError } = await verdict();
    if (readError !== null) throw readError;
    if (found.length > 0) {
      const failed = new Error('the dump failed verification');
      notDecompression.add(failed);
      throw failed;
    }
    // After the dump's last line (\unrestrict, which ends with a newline).
    yield Buffer.from('\nCOMMIT;\n');
  }

  let inputError: unknown = null;
  const adapt = opts.adaptTo === null ? new PassThrough() : new PreambleAdapter(opts.adaptTo);
  const fed = pipeline(decompressor, tap, adapt, framed, child.stdin).catch((err: unknown) => {
    // EPIPE when psql stopped at an error: its exit code and stderr tell the story. Anything
    // else (the decompressor, the checksum, the source) means psql must not go on with what it has.
    inputError = err;
    feeding = false;
    if (!isPipeError(err) && !(err instanceof Object && notDecompression.has(err))) decompressError = err as Error;
    if (!isPipeError(err)) stopPsql();
    child.stdin.destroy();
  });

  const result = await exited;
  // A psql that stopped reads no more: nothing may wait to write to it.
  if (result.code !== 0) child.stdin.destroy();
  await fed;
  // psql is gone: the rest of the input is only hashed (a failing psql does not hide a corrupt dump).
  feeding = false;
  const { problems, readError, verified } = await verdict();
  opts.signal.removeEventListener('abort', onAbort);
  const tail$ = lastLines(redact(stderr, opts.connection.password));

  if (opts.signal.aborted) throw opts.signal.reason;
  // The right bytes opened with the wrong key: nothing is wrong with the backup.
  const wrongKey = wrongIdentityOnly(decompressError, problems);
  if (wrongKey !== null) throw new RestoreError('usage', wrongKey.message, { cause: wrongKey });
  if (problems.length > 0) throw new DumpVerificationFailed(`verification of ${opts.label} failed: ${problems.join('; ')}`, problems);
  if (readError !== null) throw new RestoreError('failed', `cannot read ${opts.label}: ${(readError as Error).message}`, { cause: readError });
  if (result.spawnError) throw new PsqlFailed(`cannot run ${opts.psqlPath}: ${result.spawnError.message}`, '');
  if (result.code !== 0 && !(stopped && inputError !== null)) {
    const how = result.signal ? `was killed by ${result.signal}` : `exited with code ${result.code}`;
    throw new PsqlFailed(`psql ${how}`, tail$);
  }
  if (inputError !== null) {
    throw new PsqlFailed(`the dump could not be fed to psql completely: ${(inputError as Error).message}`, tail$);
  }
  if (verified === null) throw new Error('unreachable: the dump was read without a verdict');
  return verified;
}

/** psql closed its end of the pipe (it stopped at an error, or died). */
function isPipeError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === 'EPIPE' || code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ECONNRESET';
}
