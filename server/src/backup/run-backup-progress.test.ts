// The pipeline's progress reports and BACKUP_MAX_UPLOAD_RATE on the S3 backend: real PostgreSQL,
// the real pg_dump and the fauxqs S3 emulator (the service test covers the local backend).
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, startS3, type PostgresCluster, type S3Harness } from '../../../test/harness/index.js';
import { loadConfig } from '../config/config.js';
import { silentLogger } from '../logger.js';
import { createStorage } from '../storage/create-storage.js';
import { discoverPgDumps } from './pg-tools.js';
import { runBackup, type BackupProgress } from './run-backup.js';

const RATE = 1_000_000;

let pg: PostgresCluster;
let s3: S3Harness;

beforeAll(async () => {
  [pg, s3] = await Promise.all([startPostgres({ database: 'app' }), startS3()]);
  // ~3.5 MB of dump that gzip squeezes to ~1.9 MB (random hex): ~2 s at 1 MB/s.
  await pg.query(
    'CREATE TABLE noise (id int PRIMARY KEY, a text, b text, c text, d text); ' +
      'INSERT INTO noise SELECT g, md5(random()::text), md5(random()::text), md5(random()::text), md5(random()::text) FROM generate_series(1, 25000) g',
    [],
    'app',
  );
}, 120_000);

afterAll(async () => {
  await Promise.all([pg?.destroy(), s3?.destroy()]);
});

describe('runBackup progress and upload rate (S3)', () => {
  it('reports at the start, at most every 250 ms, and once at the end; the upload keeps to BACKUP_MAX_UPLOAD_RATE', async () => {
    const config = loadConfig({
      DB_HOST: pg.host, DB_PORT: String(pg.port), DB_NAME: 'app', DB_USER: pg.user, DB_PASSWORD: pg.password,
      API_TOKEN: randomBytes(24).toString('hex'),
      STORAGE_BACKEND: 's3', S3_BUCKET: s3.bucket, S3_ENDPOINT: s3.endpoint, S3_PREFIX: 'progress', AWS_REGION: s3.region,
      AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      BACKUP_MAX_UPLOAD_RATE: '1MB/s',
    });
    const storage = await createStorage(config.storage);
    const pgDumps = await discoverPgDumps(config);
    const reports: (BackupProgress & { at: number })[] = [];
    const sidecar = await runBackup(
      { config, storage, pgDumps, logger: silentLogger(), existingIds: () => new Set() },
      { triggeredBy: 'api', signal: AbortSignal.timeout(60_000), onProgress: (p) => reports.push({ ...p, at: performance.now() }) },
    );

    expect(reports[0]).toMatchObject({ dumpedBytes: 0, storedBytes: 0 });
    const last = reports.at(-1)!;
    expect(last).toMatchObject({ dumpedBytes: sidecar.uncompressedSizeBytes, storedBytes: sidecar.sizeBytes });
    // Between the first and the final report, the timer's: never closer than 250 ms (timers do not fire early).
    const ticks = reports.slice(1, -1);
    expect(ticks.length).toBeGreaterThanOrEqual(3);
    for (const [i, tick] of ticks.entries()) expect(tick.at - reports[i]!.at, `report ${i + 1}`).toBeGreaterThanOrEqual(249);
    for (const [i, next] of reports.slice(1).entries()) {
      expect(next.dumpedBytes).toBeGreaterThanOrEqual(reports[i]!.dumpedBytes);
      expect(next.storedBytes).toBeGreaterThanOrEqual(reports[i]!.storedBytes);
    }
    // The upload: no faster than the cap allows, but for the bucket's first piece and an idle
    // bucket's tokens (100 ms worth each).
    const burst = RATE / 5;
    expect(sidecar.sizeBytes).toBeGreaterThan(1_500_000);
    expect(last.at - reports[0]!.at).toBeGreaterThanOrEqual(((sidecar.sizeBytes - burst) / RATE) * 1000);
    await expect(storage.stat(sidecar.id)).resolves.toMatchObject({ sizeBytes: sidecar.sizeBytes });
  }, 120_000);
});
