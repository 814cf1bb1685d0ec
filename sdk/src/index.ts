// Public surface of @db-backup-service/sdk: everything a caller may import, nothing deeper.
export {
  createClient,
  type BackupDownload,
  type BackupServiceClient,
  type CallOptions,
  type ClientOptions,
  type DownloadOptions,
  type PinOptions,
  type TriggerResult,
  type WaitForJobOptions,
} from './client.js';
export type { DownloadedFile, DownloadProgress, DownloadToFileOptions } from './download-to-file.js';
export { BackupServiceError, type BackupServiceErrorCode } from './errors.js';
export type { ContentRange } from './headers.js';

// The contract's shapes, so callers (and db-restore) need no second dependency to name them; its
// sidecar parser, pin record and dump-trailer check, so db-restore accepts exactly the backups,
// pins and dumps the service does; the compression formats and which one an id is; and its redact.
export {
  BACKUP_ID_PATTERN,
  backupIdOfSidecar,
  BackupSidecarSchema,
  checkDumpEnding,
  compareNewestFirst,
  COMPRESSION_FORMATS,
  compressionOfId,
  type CompressionFormat,
  contentTypeOfId,
  DUMP_ENDS_KEEP_BYTES,
  ENCRYPTED_CONTENT_TYPE,
  ENCRYPTED_EXTENSION,
  isBackupId,
  isEncryptedId,
  isOfDatabase,
  parseSidecar,
  PIN_REASON_MAX_LENGTH,
  pinName,
  pinOfRecord,
  PinRecordSchema,
  plainNameOf,
  REDACTED,
  redact,
  sidecarName,
  toBackup,
  UNKNOWN,
  type ParsedSidecar,
} from './generated/contract/index.js';
// PostgreSQL TLS with libpq's meaning, for db-restore's node-postgres connections (as the service's).
export { PG_SSL_MODES, pgSslAttempts, refusedForEncryption, type PgSslMode, type PgTlsSettings } from './generated/contract/index.js';
export type {
  Backup,
  BackupSidecar,
  DumpEndingCheck,
  Encryption,
  Health,
  Info,
  Job,
  JobConflict,
  JobProgress,
  JobStatus,
  Pin,
  PinRecord,
  Problem,
  RetentionPlan,
  RetentionPolicy,
  Trigger,
} from './generated/contract/index.js';

// Raw OpenAPI types generated from openapi.json at build time (for callers without the SDK runtime).
export type { components, operations, paths } from './generated/openapi.js';
