// Public surface of the test harness: tests import from here, not from the individual files.
export { freePort } from './ports.js';
export { pollUntil, type PollOptions } from './wait.js';
export { runProcess, type ProcessRun } from './run.js';
export { registerExitCleanup } from './exit-cleanup.js';
export {
  embeddedPgBinDir,
  PG_MAJORS,
  pgClientBin,
  startPostgres,
  systemPgBinDir,
  usePostgres,
  type PgMajor,
  type PostgresCluster,
  type StartPostgresOptions,
} from './postgres.js';
export { startS3, useS3, type S3Harness, type StartS3Options } from './s3.js';
export { startService, type ServiceExit, type ServiceProcess, type StartServiceOptions } from './service.js';
export { fillRich, fillVaried, fingerprint, restoreWithStockTools, RICH_LONG_TEXT_LENGTH, TRICKY_TEXT } from './data.js';
export { api, type Api } from './api.js';
export { IMAGE_RUNTIME_ENV } from './image-env.js';
export { countedManifest, tocObjects } from './contents.js';
export { storageLocation, type StorageBackend, type StorageLocation } from './location.js';
