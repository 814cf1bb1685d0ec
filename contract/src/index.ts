export { apiContract, type ApiContract, type RouteMetadata } from './contract.js';
export { checkDumpEnding, DUMP_COMPLETE_LINE, DUMP_ENDS_KEEP_BYTES, type DumpEndingCheck } from './dump-trailer.js';
export {
  BACKUP_ID_MAX_LENGTH,
  BACKUP_ID_PATTERN,
  BACKUP_NAME_PREFIX_PATTERN,
  BackupSchema,
  BackupSidecarSchema,
  ComponentHealthSchema,
  HealthSchema,
  InfoSchema,
  isBackupId,
  JobConflictSchema,
  JobSchema,
  JobStatusSchema,
  LivenessSchema,
  ProblemSchema,
  TriggerSchema,
  UNKNOWN,
} from './schemas.js';
export {
  backupIdOfSidecar,
  compareNewestFirst,
  isOfDatabase,
  parseSidecar,
  sidecarName,
  toBackup,
  type ParsedSidecar,
} from './sidecar.js';
export type { Backup, BackupSidecar, Health, Info, Job, JobConflict, JobStatus, Liveness, Problem, Trigger } from './schemas.js';
export { REDACTED, redact } from './redact.js';
export { PG_SSL_MODES, pgSslAttempts, refusedForEncryption } from './pg-tls.js';
export type { PgSslMode, PgTlsSettings } from './pg-tls.js';
