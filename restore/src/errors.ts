/** What a failure left the target database as; db-restore reports it in messages and its --json result. */
export type DatabaseState = 'untouched' | 'unchanged' | 'empty' | 'restored' | 'unknown';

/**
 * What kind of failure, for the caller to map (db-restore: to its exit codes, in one place).
 * usage: the configuration or the environment (cannot log in, no CREATEDB, psql missing);
 * verification: the dump is not what its sidecar says (checksum, size, compression, trailer);
 * failed: the restore itself failed (psql, the swap); cancelled: the signal fired;
 * unexpected: something that should not happen.
 */
export type RestoreErrorKind = 'usage' | 'verification' | 'failed' | 'cancelled' | 'unexpected';

/** An expected failure of a restore: its message is for the operator. */
export class RestoreError extends Error {
  override readonly name = 'RestoreError';
  readonly databaseState: DatabaseState | null;

  constructor(
    readonly kind: RestoreErrorKind,
    message: string,
    opts: { cause?: unknown; databaseState?: DatabaseState } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.databaseState = opts.databaseState ?? null;
  }
}
