// Public surface of @db-backup-service/cli: the db-restore command, runnable in-process.
export { runCli, type CliContext } from './cli.js';
export { EXIT_CODE_HELP, ExitCode, type DatabaseState } from './exit-codes.js';
export { SWAP_STAGES, type SwapStage } from '@db-backup-service/restore';
