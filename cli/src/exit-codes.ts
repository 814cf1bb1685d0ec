import { RestoreError, type DatabaseState, type RestoreErrorKind } from '@db-backup-service/restore';

/**
 * db-restore's exit codes: stable, documented in --help and the README, relied on by scripts.
 */
export const ExitCode = {
  OK: 0,
  UNEXPECTED: 1,
  USAGE: 2,
  CANCELLED: 3,
  NOT_FOUND: 4,
  VERIFICATION_FAILED: 5,
  RESTORE_FAILED: 6,
  SERVICE_UNREACHABLE: 7,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** One line per code, for --help and the README. */
export const EXIT_CODE_HELP = `Exit codes:
  0  success
  1  unexpected error
  2  configuration or usage error (environment, options, psql not found, cannot log in,
     an encrypted backup without an identity that opens it)
  3  cancelled (Ctrl-C); the database was not changed (--in-place after the drop: left empty)
  4  backup not found
  5  verification failed (checksum, damaged ciphertext, gzip or zstd integrity); the database was not touched
  6  restore failed (the message says the database's state)
  7  db-backup-service unreachable or unhealthy (S3 backend)`;

/** What a failure left the target database as; reported in messages and the --json result. */
export type { DatabaseState };

/** An expected failure: its message is for the operator, its exit code for scripts. */
export class CliError extends Error {
  override readonly name = 'CliError';
  readonly databaseState: DatabaseState | null;

  constructor(
    readonly exitCode: ExitCode,
    message: string,
    opts: { cause?: unknown; databaseState?: DatabaseState } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.databaseState = opts.databaseState ?? null;
  }
}

const EXIT_CODE_OF: Record<RestoreErrorKind, ExitCode> = {
  usage: ExitCode.USAGE,
  verification: ExitCode.VERIFICATION_FAILED,
  failed: ExitCode.RESTORE_FAILED,
  cancelled: ExitCode.CANCELLED,
  unexpected: ExitCode.UNEXPECTED,
};

/** The one place the restore package's failures become db-restore's exit codes; anything else passes as it is. */
export function asCliError(err: unknown): unknown {
  if (!(err instanceof RestoreError)) return err;
  return new CliError(EXIT_CODE_OF[err.kind], err.message, { cause: err, ...(err.databaseState === null ? {} : { databaseState: err.databaseState }) });
}
