export { apiContract, type ApiContract, type RouteMetadata } from './contract.js';
export { checkDumpEnding, DUMP_COMPLETE_LINE, DUMP_ENDS_KEEP_BYTES, type DumpEndingCheck } from './dump-trailer.js';
export {
  BACKUP_ID_MAX_LENGTH,
  BACKUP_ID_PATTERN,
  BACKUP_NAME_PREFIX_PATTERN,
  BackupSchema,
  BackupSidecarSchema,
  ComponentHealthSchema,
  ContentsManifestSchema,
  DrillMismatchSchema,
  DrillRecordSchema,
  DrillSummarySchema,
  DrillTargetSchema,
  HealthSchema,
  InfoSchema,
  isBackupId,
  JobConflictSchema,
  JobKindSchema,
  JobSchema,
  JobStatusSchema,
  LivenessSchema,
  ProblemSchema,
  SidecarContentsSchema,
  TriggerSchema,
  UNKNOWN,
} from './schemas.js';
export {
  backupIdOfSidecar,
  compareNewestFirst,
  contentsName,
  drillName,
  isOfDatabase,
  parseSidecar,
  sidecarName,
  toBackup,
  type ParsedSidecar,
} from './sidecar.js';
export type {
  Backup,
  BackupSidecar,
  ContentsManifest,
  DrillMismatch,
  DrillRecord,
  DrillSummary,
  DrillTarget,
  Health,
  Info,
  Job,
  JobConflict,
  JobKind,
  JobStatus,
  Liveness,
  Problem,
  SidecarContents,
  Trigger,
} from './schemas.js';
export { REDACTED, redact } from './redact.js';
export { SECRET_VARIABLES } from './secret-variables.js';
export { PG_SSL_MODES, pgSslAttempts, refusedForEncryption } from './pg-tls.js';
export type { PgSslMode, PgTlsSettings } from './pg-tls.js';
