// Public surface of @db-backup-service/sdk: everything a caller may import, nothing deeper.
export {
  createClient,
  type BackupDownload,
  type BackupServiceClient,
  type CallOptions,
  type ClientOptions,
  type DownloadOptions,
  type TriggerResult,
  type WaitForJobOptions,
} from './client.js';
export type { DownloadedFile, DownloadProgress, DownloadToFileOptions } from './download-to-file.js';
export { BackupServiceError, type BackupServiceErrorCode } from './errors.js';
export type { ContentRange } from './headers.js';

// The contract's shapes, so callers (and db-restore) need no second dependency to name them.
export { BACKUP_ID_PATTERN, BackupSidecarSchema, isBackupId } from './generated/contract/index.js';
export type { Backup, BackupSidecar, Health, Info, Job, JobConflict, JobStatus, Problem, Trigger } from './generated/contract/index.js';

// Raw OpenAPI types generated from openapi.json at build time (for callers without the SDK runtime).
export type { components, operations, paths } from './generated/openapi.js';
