import { randomBytes } from 'node:crypto';
import { Agent } from 'node:http';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import type { FauxqsServer } from 'fauxqs';
import { afterAll, beforeAll } from 'vitest';
import { registerExitCleanup } from './exit-cleanup.js';
import { lateBound } from './late-bound.js';
import { freePort } from './ports.js';
import { pollUntil } from './wait.js';

export interface StartS3Options {
  /** Bucket created at start (and again after each start()); default 'test-backups'. */
  bucket?: string;
  /**
   * Keep buckets and objects across stop()/start() by giving fauxqs a SQLite data dir in a temp
   * dir. Default false: everything is in memory and a restart loses all objects.
   */
  persist?: boolean;
}

export interface S3Harness {
  /** http://127.0.0.1:<port> (path-style only). */
  readonly endpoint: string;
  readonly port: number;
  readonly bucket: string;
  readonly region: string;
  /** Random per run. fauxqs does not check credentials at all: auth failures cannot be tested here. */
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** S3Client for the emulator (forcePathStyle). Survives stop()/start(): requests fail while stopped. */
  readonly client: S3Client;
  readonly running: boolean;
  /** Env vars in the AWS SDK's standard names, for handing the emulator to a child process. */
  awsEnv(): Record<string, string>;
  /** All keys under prefix (follows ListObjectsV2 pagination; pageSize = MaxKeys), sorted. Default bucket: `bucket`. */
  listKeys(prefix?: string, opts?: { bucket?: string; pageSize?: number }): Promise<string[]>;
  /** Creates another (empty) bucket; idempotent. */
  createBucket(name: string): void;
  /** Closes the listener: connections are refused until start(). */
  stop(): Promise<void>;
  /**
   * Starts again on the SAME port and recreates the bucket. Without `persist` all objects and
   * multipart uploads from before stop() are gone (fauxqs keeps state in memory only).
   */
  start(): Promise<void>;
  /** Deletes every object (and in-progress multipart upload) but keeps the buckets. */
  reset(): void;
  /** stop() plus removal of the persistence dir. Idempotent. */
  destroy(): Promise<void>;
}

const REGION = 'eu-central-1';

/**
 * Starts the fauxqs S3 emulator in this process on a random port.
 * Note: fauxqs always listens on 0.0.0.0 (not configurable); clients must use 127.0.0.1.
 * Because it runs in-process, a test must not block the event loop (execSync, spawnSync) while a
 * child process (the service) talks to it.
 */
export async function startS3(opts: StartS3Options = {}): Promise<S3Harness> {
  // Imported lazily so tests that only need PostgreSQL do not load the emulator (and node:sqlite).
  const { startFauxqs } = await import('fauxqs');
  const bucket = opts.bucket ?? 'test-backups';
  const dataDir = opts.persist ? await mkdtemp(join(tmpdir(), 's3-harness-')) : undefined;
  const unregister = dataDir ? registerExitCleanup(() => rmSync(dataDir, { recursive: true, force: true })) : () => undefined;
  const launch = (port: number): Promise<FauxqsServer> =>
    startFauxqs({ port, logger: false, defaultRegion: REGION, ...(dataDir ? { dataDir } : {}) });

  // A port from freePort(), not port 0: a kernel-chosen port, free again while a test has stopped
  // the emulator, can be taken by any other process binding port 0 before start() (ports.ts).
  let server: FauxqsServer | undefined;
  for (let attempt = 1; server === undefined; attempt++) {
    try {
      server = await launch(await freePort());
    } catch (err) {
      if (attempt >= 5 || !/EADDRINUSE|address already in use/i.test(String((err as Error).message ?? err))) throw err;
    }
  }
  const port = server.port;
  const buckets = new Set([bucket]);
  server.createBucket(bucket);
  let destroyed = false;

  const endpoint = `http://127.0.0.1:${port}`;
  const accessKeyId = `TEST${randomBytes(8).toString('hex').toUpperCase()}`;
  const secretAccessKey = randomBytes(24).toString('base64url');
  const client = new S3Client({
    endpoint,
    region: REGION,
    forcePathStyle: true,
    credentials: { accessKeyId, secretAccessKey },
    // Fail fast when the emulator is deliberately stopped instead of retrying with backoff ...
    maxAttempts: 1,
    // ... and without keep-alive: a pooled socket from before stop()/start() would otherwise fail
    // the next request with ECONNRESET ("socket hang up") instead of a clean ECONNREFUSED / success.
    requestHandler: { httpAgent: new Agent({ keepAlive: false }) },
  });

  const stop = async (): Promise<void> => {
    const s = server;
    server = undefined;
    await s?.stop();
  };

  const harness: S3Harness = {
    endpoint,
    port,
    bucket,
    region: REGION,
    accessKeyId,
    secretAccessKey,
    client,
    get running() {
      return server !== undefined;
    },
    awsEnv: () => ({
      AWS_ENDPOINT_URL_S3: endpoint,
      AWS_REGION: REGION,
      AWS_ACCESS_KEY_ID: accessKeyId,
      AWS_SECRET_ACCESS_KEY: secretAccessKey,
    }),
    async listKeys(prefix?: string, listOpts: { bucket?: string; pageSize?: number } = {}) {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const page = await client.send(
          new ListObjectsV2Command({
            Bucket: listOpts.bucket ?? bucket,
            Prefix: prefix,
            MaxKeys: listOpts.pageSize,
            ContinuationToken: token,
          }),
        );
        for (const o of page.Contents ?? []) if (o.Key !== undefined) keys.push(o.Key);
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return keys.sort();
    },
    createBucket(name: string) {
      if (!server) throw new Error('S3 emulator is stopped');
      server.createBucket(name);
      buckets.add(name);
    },
    stop,
    async start() {
      if (destroyed) throw new Error('S3 emulator was destroyed');
      if (server) return;
      // The old listener is closed, but the port can briefly be unavailable (or taken by another
      // process, in which case this fails at the deadline with EADDRINUSE).
      server = await pollUntil(() => launch(port), {
        timeoutMs: 10_000,
        intervalMs: 100,
        what: `fauxqs to listen again on port ${port}`,
      });
      for (const b of buckets) server.createBucket(b);
    },
    reset() {
      if (!server) throw new Error('S3 emulator is stopped');
      server.reset();
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      await stop();
      client.destroy();
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
      unregister();
    },
  };
  return harness;
}

/** vitest: startS3 in beforeAll, destroy in afterAll; usable at describe level like usePostgres(). */
export function useS3(opts: StartS3Options = {}): S3Harness {
  let s3: S3Harness | undefined;
  beforeAll(async () => {
    s3 = await startS3(opts);
  });
  afterAll(async () => {
    await s3?.destroy();
    s3 = undefined;
  });
  return lateBound(() => s3, 'useS3');
}
