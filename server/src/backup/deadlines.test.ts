// Nothing waits forever (invariant 12), on real parts: a PostgreSQL cluster, the real pg_dump, a
// real local directory and an S3 endpoint that accepts connections and never answers (a TCP server
// on 127.0.0.1: the half-open load balancer or proxy of the review's M3).
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type PostgresCluster } from '../../../test/harness/index.js';
import { loadConfig, type Config } from '../config/config.js';
import { silentLogger } from '../logger.js';
import { LocalStorage } from '../storage/local-storage.js';
import { S3Storage } from '../storage/s3-storage.js';
import type { Storage } from '../storage/storage.js';
import { BackupError } from './backup-error.js';
import { discoverPgDumps, type PgDumpClients } from './pg-tools.js';
import { runBackup } from './run-backup.js';

let cluster: PostgresCluster;
let pgDumps: PgDumpClients;
let work: string;
let stalled: { server: Server; sockets: Set<Socket>; endpoint: string };

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'deadlines-test-'));
  [cluster, pgDumps] = await Promise.all([startPostgres({ database: 'app' }), discoverPgDumps({ pgBinDir: null, pgClientsDir: null, runtime: { path: process.env.PATH ?? '', childEnv: {} } })]);
  await cluster.query('CREATE TABLE busy (id int PRIMARY KEY); INSERT INTO busy SELECT generate_series(1, 100)', [], 'app');
  // Accepts every connection and never writes a byte back.
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  stalled = { server, sockets, endpoint: `http://127.0.0.1:${address.port}` };
});

afterAll(async () => {
  for (const socket of stalled?.sockets ?? []) socket.destroy();
  await new Promise((resolve) => stalled?.server.close(resolve));
  await cluster?.destroy();
  if (work) await rm(work, { recursive: true, force: true });
});

function configFor(env: Record<string, string>): Config {
  return loadConfig({
    DB_HOST: cluster.host, DB_PORT: String(cluster.port), DB_NAME: 'app', DB_USER: cluster.user, DB_PASSWORD: cluster.password,
    STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: work, BACKUP_COMPRESSION_LEVEL: '1', API_TOKEN: randomBytes(24).toString('hex'), ...env,
  });
}

function backup(config: Config, storage: Storage) {
  return runBackup(
    { config, storage, pgDumps, logger: silentLogger(), existingIds: () => new Set() },
    { triggeredBy: 'api', signal: new AbortController().signal },
  );
}

async function failure(promise: Promise<unknown>): Promise<{ error: BackupError; ms: number }> {
  const started = Date.now();
  const error = await promise.then(() => null, (e: unknown) => e);
  if (!(error instanceof BackupError)) throw new Error(`expected a BackupError, got ${String(error)}`);
  return { error, ms: Date.now() - started };
}

describe('a stalled S3 endpoint', () => {
  const REQUEST_TIMEOUT_MS = 1_000;
  // The SDK's three attempts, each cut after S3_REQUEST_TIMEOUT, plus its retry back-off (< 1 s each).
  const BOUND_MS = 3 * REQUEST_TIMEOUT_MS + 2 * 1_000 + 4_000;

  const stalledStorage = () =>
    new S3Storage({
      bucket: 'stalled', prefix: 'deadlines', endpoint: stalled.endpoint, region: 'eu-central-1', partSizeBytes: null,
      credentials: { accessKeyId: 'AKIDSTALLED', secretAccessKey: 'stalled-secret-value', sessionToken: null },
      connectTimeoutMs: 1_000, requestTimeoutMs: REQUEST_TIMEOUT_MS,
    });

  it('fails every storage call within the request timeout, naming the setting', async () => {
    const storage = stalledStorage();
    for (const call of [() => storage.list(), () => storage.stat('backup-x.sql.gz'), () => storage.delete('backup-x.sql.gz')]) {
      const started = Date.now();
      const error = await call().then(() => null, (e: unknown) => e as Error);
      expect(error?.message).toMatch(/timed out after 1000 ms of inactivity.*S3_REQUEST_TIMEOUT/);
      expect(Date.now() - started).toBeLessThan(BOUND_MS);
    }
    storage.destroy();
  });

  it('fails the backup within the request timeout instead of hanging the job', async () => {
    const storage = stalledStorage();
    const { error, ms } = await failure(backup(configFor({}), storage));
    expect(error.code).toBe('STORAGE_FAILED');
    expect(error.message).toMatch(/S3_REQUEST_TIMEOUT/);
    expect(error.message).not.toContain('stalled-secret-value');
    expect(ms).toBeLessThan(BOUND_MS);
    storage.destroy();
  });
});

describe('a table locked by another session', () => {
  it('makes pg_dump give up after BACKUP_LOCK_WAIT_TIMEOUT, with its message, and leaves nothing', async () => {
    const dir = await mkdtemp(path.join(work, 'lock-'));
    const holder = new pg.Client(cluster.connectionConfig('app'));
    await holder.connect();
    try {
      // A migration's lock: pg_dump's ACCESS SHARE request queues behind it.
      await holder.query('BEGIN; LOCK TABLE busy IN ACCESS EXCLUSIVE MODE');
      const { error, ms } = await failure(backup(configFor({ BACKUP_LOCK_WAIT_TIMEOUT: '2s' }), await LocalStorage.open(dir)));
      expect(error.code).toBe('PG_DUMP_FAILED');
      expect(error.message).toMatch(/locked by another session.*longer than BACKUP_LOCK_WAIT_TIMEOUT, PT2S/);
      expect(error.message).toContain('LOCK TABLE public.busy');
      // 2 s of waiting plus pg_dump's start and the rest of the job; without the option it waits for the holder.
      expect(ms).toBeLessThan(15_000);
      expect(await readdir(dir)).toEqual([]);
    } finally {
      await holder.end();
    }
  });
});
