import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { Info } from '@db-backup-service/contract';
import { describeClients } from '@db-backup-service/restore';
import { runBackup, discoverPgDumps, type PgDumpClients } from './backup/index.js';
import { ConfigError, parseConfig, type Config } from './config/config.js';
import { checkDatabase, runExclusive } from './db.js';
import { cleanupDrillLeftovers, drillBackup, storeDrillRecord } from './drill/drill-backup.js';
import { encryptedDrillWarning } from './drill/encrypted-drills.js';
import { BackupEngine } from './engine.js';
import { createApp } from './http/app.js';
import { HealthCheck } from './http/health.js';
import { Metrics } from './http/metrics.js';
import { createLogger, type Logger } from './logger.js';
import { createStorage } from './storage/create-storage.js';
import { StorageError, type Storage } from './storage/storage.js';
import { SERVICE_VERSION } from './version.js';

/** A running service: `stop()` drains and closes; it is idempotent. */
export interface Service {
  readonly config: Config;
  readonly server: Server;
  stop(): Promise<void>;
}

/** Wires the service together and starts listening. Throws ConfigError / startup errors. */
export async function startService(env: NodeJS.ProcessEnv, logger?: Logger): Promise<Service> {
  const { config, storage } = await loadConfigAndStorage(env);
  const log = logger ?? createLogger(config.log);
  const drillWarning = encryptedDrillWarning(config);
  if (drillWarning !== null) log.warn(drillWarning, { drill: config.drill.mode });
  let pgDumps: PgDumpClients | null = null;
  try {
    pgDumps = await discoverPgDumps(config);
  } catch (error) {
    // The API, downloads and /health still work; every backup will fail with this message.
    log.error('pg_dump not usable', { error: (error as Error).message });
  }
  const engine = new BackupEngine({
    config,
    storage,
    logger: log,
    runBackup: async ({ triggeredBy, signal, existingIds, onProgress }) => {
      const found = pgDumps ?? (pgDumps = await discoverPgDumps(config));
      return runBackup({ config, storage, pgDumps: found, logger: log, existingIds }, { triggeredBy, signal, onProgress });
    },
    exclusive: (fn) => runExclusive(config.db, fn),
    drills: {
      run: ({ backup, signal }) => drillBackup({ config, storage, logger: log }, backup, signal),
      store: (record) => storeDrillRecord({ storage, logger: log }, record),
      cleanup: () => cleanupDrillLeftovers({ config, logger: log }),
    },
  });
  const metrics = new Metrics(engine.index, engine.jobs);
  engine.subscribe(metrics.engineEvents);
  const health = new HealthCheck(
    {
      database: (signal) => checkDatabase(config.db, signal),
      storage: (signal) => storage.check({ signal }),
    },
    log,
  );
  await engine.start();

  const pgDump = () => describePgDumps(pgDumps);
  const app = createApp({ config, engine, storage, health, metrics, logger: log, pgDump });
  // Bound slow or idle clients. requestTimeout covers receiving the request only (headers and
  // body), never sending the response: a download keeps going as long as the client reads it.
  // Without it a client trickling a small body held its connection open indefinitely. Node
  // checks the two timeouts every connectionsCheckingInterval.
  const server = createServer(
    { headersTimeout: 20_000, requestTimeout: 30_000, connectionsCheckingInterval: 5_000, keepAliveTimeout: 5_000 },
    app,
  ).listen(config.http.port, config.http.host);
  try {
    await once(server, 'listening');
  } catch (error) {
    // E.g. EADDRINUSE: the engine started above must not go on running backups without an API.
    await engine.stop(0);
    throw error;
  }
  log.info('db-backup-service listening', {
    version: SERVICE_VERSION,
    port: config.http.port,
    storage: storage.location,
    pgDump: (pgDumps?.clients ?? []).map((c) => describeClients([c])),
    interval: config.schedule.intervalIso,
    cron: config.schedule.cron,
    drill: { mode: config.drill.mode, target: config.drill.target, schedule: config.drill.schedule },
  });

  let stopping: Promise<void> | null = null;
  const stop = () =>
    (stopping ??= (async () => {
      log.info('shutting down');
      // New connections are refused at once; the running backup gets SHUTDOWN_TIMEOUT to finish.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await engine.stop(config.shutdownTimeoutMs);
      // Downloads still streaming after the drain are cut: a backup sidecar must not outwait k8s.
      server.closeAllConnections();
      await closed;
      storage.destroy();
      log.info('stopped');
    })());
  return { config, server, stop };
}

/** /info's pgDump: the clients found, the newest first named (it is the one a newest server gets). */
function describePgDumps(found: PgDumpClients | null): Info['pgDump'] {
  const clients = (found?.clients ?? []).map((c) => ({ version: c.version.text, binDir: c.binDir }));
  return { version: clients.at(-1)?.version ?? null, clients, pinned: found?.pinned ?? false };
}

/**
 * The configuration and the storage. A local backup directory that is missing or not writable is
 * a configuration problem like any other, reported in the same list (one round of fixes).
 */
async function loadConfigAndStorage(env: NodeJS.ProcessEnv): Promise<{ config: Config; storage: Storage }> {
  const { config, problems } = parseConfig(env);
  // With a problem in the storage settings themselves the directory (or bucket) is not known yet.
  const storageKnown = !problems.some((p) => ['STORAGE_BACKEND', 'BACKUP_LOCAL_DIR'].includes(p.variable));
  if (problems.length > 0 && !(storageKnown && config.storage.backend === 'local')) throw new ConfigError(problems);
  try {
    const storage = await createStorage(config.storage);
    if (problems.length > 0) throw new ConfigError(problems);
    return { config, storage };
  } catch (error) {
    if (config.storage.backend !== 'local' || !(error instanceof StorageError)) throw error;
    throw new ConfigError([...problems, { variable: 'BACKUP_LOCAL_DIR', problem: error.message, fix: '' }]);
  }
}

/** The process entry: config errors print one message and exit 1; signals drain and exit 0. */
export async function main(): Promise<void> {
  let service: Service;
  try {
    service = await startService(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
    } else {
      console.error(`db-backup-service failed to start: ${(error as Error).message}`);
    }
    process.exit(1);
  }
  // process.on, not once: a second SIGTERM (or Ctrl-C) awaits the same drain (stop() is
  // idempotent) instead of killing the process, and with it the running backup, at once.
  const shutdown = (signal: string) => {
    service.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(`shutdown failed after ${signal}: ${(error as Error).message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}
