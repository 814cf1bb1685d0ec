import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { runBackup, discoverPgTools, type PgTools } from './backup/index.js';
import { ConfigError, loadConfig, type Config } from './config/config.js';
import { checkDatabase, runExclusive } from './db.js';
import { BackupEngine } from './engine.js';
import { createApp } from './http/app.js';
import { HealthCheck } from './http/health.js';
import { Metrics } from './http/metrics.js';
import { createLogger, type Logger } from './logger.js';
import { createStorage } from './storage/create-storage.js';
import { SERVICE_VERSION } from './version.js';

/** A running service: `stop()` drains and closes; it is idempotent. */
export interface Service {
  readonly config: Config;
  readonly server: Server;
  stop(): Promise<void>;
}

/** Wires the service together and starts listening. Throws ConfigError / startup errors. */
export async function startService(env: NodeJS.ProcessEnv, logger?: Logger): Promise<Service> {
  const config = loadConfig(env);
  const log = logger ?? createLogger(config.log);
  const storage = await createStorage(config.storage);
  let pgTools: PgTools | null = null;
  try {
    pgTools = await discoverPgTools(config.pgBinDir);
  } catch (error) {
    // The API, downloads and /health still work; every backup will fail with this message.
    log.error('pg_dump not usable', { error: (error as Error).message });
  }
  const engine = new BackupEngine({
    config,
    storage,
    logger: log,
    runBackup: async ({ triggeredBy, signal, existingIds }) => {
      const tools = pgTools ?? (pgTools = await discoverPgTools(config.pgBinDir));
      return runBackup({ config, storage, pgTools: tools, logger: log, existingIds }, { triggeredBy, signal });
    },
    exclusive: (fn) => runExclusive(config.db, fn),
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

  const app = createApp({ config, engine, storage, health, metrics, logger: log, pgDumpVersion: pgTools?.pgDumpVersion ?? null });
  // Bound slow or idle clients. requestTimeout covers receiving the request only (headers and
  // body), never sending the response: a download keeps going as long as the client reads it.
  // Without it a client trickling a small body held its connection open indefinitely. Node
  // checks the two timeouts every connectionsCheckingInterval.
  const server = createServer(
    { headersTimeout: 20_000, requestTimeout: 30_000, connectionsCheckingInterval: 5_000, keepAliveTimeout: 5_000 },
    app,
  ).listen(config.http.port, config.http.host);
  await once(server, 'listening');
  log.info('db-backup-service listening', {
    version: SERVICE_VERSION,
    port: config.http.port,
    storage: storage.location,
    pgDump: pgTools?.pgDumpVersion ?? null,
    interval: config.schedule.intervalIso,
    cron: config.schedule.cron,
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
      log.info('stopped');
    })());
  return { config, server, stop };
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
  const shutdown = (signal: string) => {
    service.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(`shutdown failed after ${signal}: ${(error as Error).message}`);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}
