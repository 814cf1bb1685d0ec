// One restore drill of one stored backup, on the configured target; the record it leaves.
import { compressionOfId, drillName, DrillRecordSchema, redact, type BackupSidecar, type DrillRecord } from '@db-backup-service/contract';
import { dropLeftoverDrillDatabases, findPsql, parseVersionText, runDrill } from '@db-backup-service/restore';
import type { Config, DbServer } from '../config/config.js';
import type { Logger } from '../logger.js';
import type { Storage } from '../storage/storage.js';
import { readContentsManifest } from './contents-manifest.js';
import { drillAccess } from './encrypted-drills.js';
import { localServerVersion, removeStaleClusters, startLocalCluster } from './local-cluster.js';

export interface DrillDeps {
  readonly config: Config;
  readonly storage: Storage;
  readonly logger: Logger;
}

/**
 * Restores `backup` into a scratch database on the drill target and compares it with its contents
 * manifest (restore's runDrill). Resolves a record whether the drill passed or failed, including
 * failures before the restore (a manifest that does not match its sidecar, a local server older
 * than the backup's), or was skipped (an encrypted backup and no identity: nothing is read, no
 * server touched); rejects only when `signal` aborts it (shutdown).
 */
export async function drillBackup(deps: DrillDeps, backup: BackupSidecar, signal: AbortSignal): Promise<DrillRecord> {
  const { config, storage, logger } = deps;
  const started = Date.now();
  const access = drillAccess(config, backup);
  if (access.kind === 'skip') return recordWithoutRestore(config, backup, started, 'skipped', access.reason);
  const warn = (message: string) => logger.warn(message, { backupId: backup.id });
  let release: (() => Promise<void>) | null = null;
  // psql's and the server's messages end up in the record, the job and the log: never a password.
  const secrets = [config.db.password, config.drill.server.password, config.apiToken];
  const clean = (text: string | null) => (text === null ? null : redact(text, secrets));
  try {
    // An encrypted backup's manifest is encrypted too: a wrong identity fails here, before any server is touched.
    const manifest = await readContentsManifest(storage, backup, access.decrypt, signal);
    const { psql } = await findPsql({ pgBinDir: config.pgBinDir, clientsDir: config.pgClientsDir, path: config.runtime.path, env: config.runtime.childEnv });
    let server: DbServer = config.drill.server;
    if (config.drill.target === 'local') {
      const binDir = config.drill.localBinDir ?? '';
      const env = config.runtime.childEnv;
      const version = await localServerVersion({ binDir, env });
      await refuseOlderLocalServer(backup, version.major, binDir);
      const cluster = await startLocalCluster({ binDir, env, version });
      release = cluster.destroy;
      server = cluster.server;
      secrets.push(cluster.server.password);
    }
    const dump = await storage.get(backup.id, { signal });
    try {
      const outcome = await runDrill({
        server,
        database: config.db.name,
        psql,
        dump,
        format: compressionOfId(backup.id),
        decrypt: access.decrypt,
        expected: { sha256: backup.sha256, sizeBytes: backup.sizeBytes },
        manifest,
        query: config.drill.query,
        signal,
        warn,
      });
      return {
        format: 1,
        backupId: backup.id,
        target: config.drill.target,
        status: outcome.status,
        at: new Date().toISOString(),
        durationMs: Date.now() - started,
        tablesChecked: outcome.tablesChecked,
        rowsChecked: outcome.rowsChecked,
        detail: clean(outcome.detail),
        serverVersion: outcome.serverVersion,
        mismatches: outcome.mismatches,
        query: outcome.query,
      };
    } finally {
      dump.destroy();
    }
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    return recordWithoutRestore(config, backup, started, 'failed', clean((error as Error).message) ?? '');
  } finally {
    await release?.().catch((error: unknown) => warn(`could not remove the local drill server: ${(error as Error).message}`));
  }
}

/** A local server restores a dump of its own major or older only (a newer dump's syntax may be unknown to it). */
async function refuseOlderLocalServer(backup: BackupSidecar, localMajor: number, binDir: string): Promise<void> {
  const backupMajor = parseVersionText(backup.pgVersion)?.major ?? null;
  if (backupMajor !== null && localMajor < backupMajor) {
    throw new Error(
      `the local drill server (PostgreSQL ${localMajor}, ${binDir}) is older than the backup's server (PostgreSQL ${backupMajor}): ` +
        `install PostgreSQL ${backupMajor} or newer under PG_CLIENTS_DIR, or set RESTORE_DRILL_TARGET=server`,
    );
  }
}

/** The record of a drill that restored nothing: it failed before the restore, or could not run at all. */
function recordWithoutRestore(config: Config, backup: BackupSidecar, started: number, status: 'failed' | 'skipped', detail: string): DrillRecord {
  return {
    format: 1,
    backupId: backup.id,
    target: config.drill.target,
    status,
    at: new Date().toISOString(),
    durationMs: Date.now() - started,
    tablesChecked: 0,
    rowsChecked: 0,
    detail,
    serverVersion: null,
    mismatches: [],
    query: config.drill.query === null ? null : { sql: config.drill.query, result: null },
  };
}

/**
 * Writes `<id>.drill.json`, replacing the previous drill's. Storage writes are create-only, so the
 * old record is deleted first; a reader in between sees no drill, never a torn one. A failure is
 * logged: the job still reports the drill's own result.
 */
export async function storeDrillRecord(deps: Pick<DrillDeps, 'storage' | 'logger'>, record: DrillRecord): Promise<void> {
  const name = drillName(record.backupId);
  try {
    await deps.storage.delete(name);
    await deps.storage.putSmall(name, Buffer.from(`${JSON.stringify(DrillRecordSchema.parse(record), null, 2)}\n`));
  } catch (error) {
    deps.logger.error('could not store the drill record', { backupId: record.backupId, object: name, error: (error as Error).message });
  }
}

/**
 * At start: what a killed drill left. Target server: scratch databases nobody is connected to;
 * target local: clusters of a service that is gone. Each failure is a warning; start-up goes on.
 */
export async function cleanupDrillLeftovers(deps: Pick<DrillDeps, 'config' | 'logger'>): Promise<void> {
  const { config, logger } = deps;
  const warn = (message: string) => logger.warn(message);
  try {
    if (config.drill.target === 'server') {
      for (const name of await dropLeftoverDrillDatabases(config.drill.server, config.db.name, warn)) {
        logger.warn('dropped a scratch database a killed drill left', { database: name });
      }
    } else {
      for (const dir of await removeStaleClusters(warn)) logger.warn('removed a local drill server a killed service left', { dir });
    }
  } catch (error) {
    logger.warn('could not clean up what earlier drills left; retried at the next start', { error: (error as Error).message });
  }
}
