// What the service and db-restore share about PostgreSQL client tools and restoring a plain dump.
export { majorOfVersionNum, parseToolVersion, parseVersionText, psqlUnderstandsRestrict, RESTRICT_RELEASES, type PgVersion } from './pg-version.js';
export {
  chooseClientFor,
  DEFAULT_CLIENTS_DIR,
  describeClients,
  findPgClients,
  PgClientsError,
  type ClientTool,
  type FindClientsOptions,
  type PgClient,
} from './pg-clients.js';
export { newerDumper, PreambleAdapter, readDumpHead, readGzipDumpHead, type DumpHead, type PreambleAdapterOptions } from './dump-preamble.js';
export { formatMismatch, formatOfMagic, peekDumpHead, PEEK_BYTES } from './dump-peek.js';
export { RestoreError, type DatabaseState, type RestoreErrorKind } from './errors.js';
export { connect, DEFAULT_APPLICATION_NAME, pgMessage, type PgDatabase, type PgServer } from './pg-connect.js';
export {
  DumpVerificationFailed,
  lastLines,
  PSQL_ARGS,
  PsqlFailed,
  psqlEnv,
  runPsqlRestore,
  type PreambleAdaptation,
  type PsqlConnection,
  type PsqlRestoreOptions,
} from './psql.js';
export { DumpEnds, dumpProblems, type DumpExpectations, type VerifiedDump } from './dump-check.js';
export { checkPsqlRunsDump, findPsql, type PsqlChoice } from './find-psql.js';
export {
  allowConnectionsSql,
  dropDatabaseSql,
  inspectTarget,
  recoverInterruptedSwap,
  restoreDatabase,
  sideDatabaseName,
  SWAP_STAGES,
  validateDatabaseName,
  type ExistingDatabase,
  type RestoreMode,
  type RestoreOptions,
  type RestoreOutcome,
  type SwapStage,
  type TargetInfo,
} from './restore.js';
export { DRILL_APPLICATION_NAME, dropLeftoverDrillDatabases, runDrill, type DrillOptions, type DrillOutcome, type DrillServer } from './drill.js';
export { checkManifest, type ManifestCheck, type ManifestProblem } from './manifest-file.js';
export { contentsName } from '@db-backup-service/contract';
export type { ContentsManifest, DrillMismatch } from '@db-backup-service/contract';
export { countCatalogObjects, DumpContentsCounter, type CatalogObjects } from './dump-contents.js';
export { createDecompressor, ZstdFrameCheck } from './compression.js';
export {
  AGE_INTRO,
  AgeDecryptStream,
  AgeEncryptStream,
  AgeError,
  decryptBuffer,
  encryptBuffer,
  isAgeEncrypted,
  parseIdentities,
  parseRecipients,
  type AgeErrorKind,
} from './age.js';
export { createDumpDecoder, decryptionFailure, wrongIdentityOnly, type DumpDecryption } from './dump-decoder.js';
export { decryptStart, ENCRYPTED_PEEK_BYTES } from './dump-peek.js';
export { isEncryptedId, plainNameOf } from '@db-backup-service/contract';
