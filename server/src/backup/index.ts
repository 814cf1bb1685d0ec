// Public surface of the backup engine; the rest of the server imports from here only.
export { BackupError, isBackupError } from './backup-error.js';
export type { BackupErrorCode } from './backup-error.js';
export { formatBackupTimestamp, newBackupId } from './backup-id.js';
export { pgClientEnv } from './child-env.js';
export { createCompressor } from './compressor.js';
export { DumpTrailerObserver } from './dump-trailer.js';
export { ADVISORY_LOCK_KEY, APPLICATION_NAME } from '../db.js';
export { PG_DUMP_ARGS } from './pg-dump-process.js';
export { choosePgDump, discoverPgDumps, readServerVersion } from './pg-tools.js';
export type { PgDumpClients, PgTools, PgToolsConfig, ServerVersion } from './pg-tools.js';
export { redact, REDACTED } from '@db-backup-service/contract';
export { runBackup } from './run-backup.js';
export type { BackupStage, RunBackupDeps, RunBackupOptions } from './run-backup.js';
export { verifyStoredBackup } from './verify-backup.js';
export type { StreamedDigest } from './verify-backup.js';
