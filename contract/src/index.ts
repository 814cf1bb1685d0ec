export { apiContract, type ApiContract, type RouteMetadata } from './contract.js';
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
export type { Backup, BackupSidecar, Health, Info, Job, JobConflict, JobStatus, Problem, Trigger } from './schemas.js';
