/** Stable codes a failed backup carries; the job runner and HTTP layer map them, never the message. */
export type BackupErrorCode =
  | 'PG_DUMP_NOT_FOUND'
  | 'PG_DUMP_FAILED'
  | 'PG_VERSION_MISMATCH'
  | 'DUMP_INCOMPLETE'
  | 'VERIFY_FAILED'
  | 'STORAGE_FAILED'
  | 'DISK_FULL'
  | 'ID_TAKEN'
  | 'LOCKED_BY_OTHER_INSTANCE'
  | 'DB_UNREACHABLE'
  | 'ABORTED'
  | 'INTERNAL';

/**
 * Why a backup failed. The message is meant for operators (it becomes the job's errorMessage) and
 * never contains a secret (invariant 6): everything built from foreign text goes through redact().
 */
export class BackupError extends Error {
  constructor(
    readonly code: BackupErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'BackupError';
  }
}

export function isBackupError(error: unknown): error is BackupError {
  return error instanceof BackupError;
}
