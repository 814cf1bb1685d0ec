// Two services sharing one directory or bucket (invariant 11; review H3, M1, M8, L2): create-only
// writes under a forced same-second id collision, clean-up that leaves other writers alone, and
// discard after a failed sidecar delete. Real PostgreSQL and pg_dump, both real storage backends.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { contentsName, drillName, parseSidecar, sidecarName, type BackupSidecar } from '@db-backup-service/contract';
import { startPostgres, startS3, type PostgresCluster, type S3Harness } from '../../test/harness/index.js';
import { BackupError } from './backup/backup-error.js';
import { discoverPgDumps, type PgDumpClients } from './backup/pg-tools.js';
import { discard, runBackup } from './backup/run-backup.js';
import { loadConfig, type Config } from './config/config.js';
import { ADVISORY_LOCK_KEY, runExclusive } from './db.js';
import { BackupEngine } from './engine.js';
import { silentLogger } from './logger.js';
import { captureLogger, idAt, ownSidecar, putBackup } from './ownership.test-helper.js';
import { LocalStorage } from './storage/local-storage.js';
import { S3Storage } from './storage/s3-storage.js';
import type { Storage } from './storage/storage.js';
import { NO_DRILLS } from './drill/no-drills.test-helper.js';
import { storageWith } from './storage/storage-with.test-helper.js';

const API_TOKEN = randomBytes(24).toString('hex');
let cluster: PostgresCluster;
let s3: S3Harness;
let pgDumps: PgDumpClients;
let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'shared-location-'));
  [cluster, s3, pgDumps] = await Promise.all([startPostgres(), startS3(), discoverPgDumps({ pgBinDir: null, pgClientsDir: null, runtime: { path: process.env.PATH ?? '', childEnv: {} } })]);
  for (const db of ['alpha', 'beta']) {
    await cluster.createDatabase(db);
    await cluster.query(`CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, '${db}' || g FROM generate_series(1, 3000) g`, [], db);
  }
});
afterAll(async () => {
  await Promise.all([cluster?.destroy(), s3?.destroy()]);
  if (work) await rm(work, { recursive: true, force: true });
});

function configFor(db: string, dir: string, env: Record<string, string> = {}): Config {
  return loadConfig({
    DB_HOST: cluster.host, DB_PORT: String(cluster.port), DB_NAME: db, DB_USER: cluster.user, DB_PASSWORD: cluster.password,
    STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: dir, BACKUP_COMPRESSION_LEVEL: '1', API_TOKEN, ...env,
  });
}

let counter = 0;
const BACKENDS: { name: 'local' | 's3'; create(): Promise<{ storage: Storage; dir: string }> }[] = [
  { name: 'local', async create() { const dir = await mkdtemp(join(work, 'local-')); return { storage: await LocalStorage.open(dir), dir }; } },
  {
    name: 's3',
    async create() {
      const storage = new S3Storage({
        bucket: s3.bucket, prefix: `shared-${++counter}`, endpoint: s3.endpoint, region: s3.region, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, sessionToken: null }, connectTimeoutMs: 10_000, requestTimeoutMs: 60_000, partSizeBytes: null,
      });
      return { storage, dir: work };
    },
  },
];

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

for (const backend of BACKENDS) {
  describe(`${backend.name}: two services pick the same id in the same second`, () => {
    // fauxqs ignores If-None-Match on PutObject and CompleteMultipartUpload: on S3 what refuses the
    // second write here is the lookup S3Storage makes just before committing (see #createOnly).
    it('the later one fails with ID_TAKEN, replaces nothing, and its next backup picks a free id', async () => {
      const { storage, dir } = await backend.create();
      const now = () => new Date('2026-06-01T03:00:00Z');
      let bFinished!: (sidecar: BackupSidecar) => void;
      const bDone = new Promise<BackupSidecar>((resolve) => (bFinished = resolve));
      const deps = (db: string) => ({ config: configFor(db, dir), storage, pgDumps, logger: silentLogger(), existingIds: () => new Set<string>() });
      // A has chosen the id and dumped when B, with the same id, completes: A commits second.
      const a = runBackup(deps('alpha'), {
        triggeredBy: 'scheduler', signal: AbortSignal.timeout(60_000), now,
        onStage: async (stage) => {
          if (stage === 'dumped') await bDone;
        },
      }).catch((error: unknown) => error);
      const b = await runBackup(deps('beta'), { triggeredBy: 'scheduler', signal: AbortSignal.timeout(60_000), now });
      bFinished(b);
      const failure = await a;
      expect(b.id).toBe('backup_20260601T030000Z.sql.gz');
      expect(failure).toBeInstanceOf(BackupError);
      expect(failure).toMatchObject({ code: 'ID_TAKEN', message: expect.stringMatching(/backup_20260601T030000Z\.sql\.gz was written by another service at the same time/) });

      // B's backup is whole: its sidecar, a dump matching its checksum and B's contents manifest.
      const stored = parseSidecar((await storage.getSmall(sidecarName(b.id))).toString('utf8'), b.id);
      expect(stored).toMatchObject({ ok: true, sidecar: { database: 'beta', sha256: b.sha256 } });
      expect(sha256(await storage.getSmall(b.id))).toBe(b.sha256);
      expect(sha256(await storage.getSmall(contentsName(b.id)))).toBe(b.contents?.sha256);
      const whole = [b.id, contentsName(b.id), sidecarName(b.id)].sort();
      expect((await storage.list()).map((o) => o.name).sort()).toEqual(whole);
      if (backend.name === 'local') expect((await readdir(dir)).sort()).toEqual(whole);

      // A's next backup (same second, ids from storage) takes the next free id.
      const retry = await runBackup(deps('alpha'), { triggeredBy: 'scheduler', signal: AbortSignal.timeout(60_000), now });
      expect(retry.id).toBe('backup_20260601T030000Z_2.sql.gz');
      expect(retry.database).toBe('alpha');
    });
  });
}

describe('s3: a store that ignores If-None-Match (fauxqs)', () => {
  // Both writers' lookups found the id free and both committed: the later one's dump replaced the
  // earlier's. Forced here by replacing the object behind the earlier writer's back once stored.
  it('the writer whose dump was replaced fails with ID_TAKEN, writes no sidecar and deletes nothing', async () => {
    const prefix = `shared-${++counter}`;
    const storage = new S3Storage({
      bucket: s3.bucket, prefix, endpoint: s3.endpoint, region: s3.region, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, sessionToken: null }, connectTimeoutMs: 10_000, requestTimeoutMs: 60_000, partSizeBytes: null,
    });
    const theirs = Buffer.from('the other service\'s dump');
    const failure = await runBackup(
      { config: configFor('alpha', work), storage, pgDumps, logger: silentLogger(), existingIds: () => new Set<string>() },
      {
        triggeredBy: 'api', signal: AbortSignal.timeout(60_000), now: () => new Date('2026-06-02T03:00:00Z'),
        onStage: async (stage) => {
          if (stage === 'stored') await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `${prefix}/backup_20260602T030000Z.sql.gz`, Body: theirs }));
        },
      },
    ).catch((error: unknown) => error);
    expect(failure).toMatchObject({ code: 'ID_TAKEN' });
    expect((await storage.list()).map((o) => o.name)).toEqual(['backup_20260602T030000Z.sql.gz']);
    expect(await storage.getSmall('backup_20260602T030000Z.sql.gz')).toEqual(theirs);
  });
});

describe('local: clean-up of leftovers in a shared directory', () => {
  const HOUR = 3600_000;

  async function setUp() {
    const dir = await mkdtemp(join(work, 'cleanup-'));
    const real = await LocalStorage.open(dir);
    const config = configFor('alpha', dir, { BACKUP_TIMEOUT: '1h' });
    const { logger, lines } = captureLogger();
    const age = async (name: string, ms: number) => {
      const at = new Date(Date.now() - ms);
      await utimes(join(dir, name), at, at);
    };
    return { dir, real, config, logger, lines, age };
  }

  function engineOn(config: Config, storage: Storage, logger: ReturnType<typeof captureLogger>['logger']) {
    return new BackupEngine({
      config, storage, logger,
      runBackup: () => Promise.reject(new Error('no backups in this test')),
      exclusive: (fn) => runExclusive(config.db, fn),
      drills: NO_DRILLS,
    });
  }

  it('removes only its own leftovers older than BACKUP_TIMEOUT, and no dump whose sidecar a fresh look finds', async () => {
    const { dir, real, config, logger, lines, age } = await setUp();
    const oldOrphan = idAt(new Date(Date.now() - 3 * HOUR));
    const freshOrphan = idAt(new Date(Date.now() - 5 * 60_000));
    const lagging = idAt(new Date(Date.now() - 4 * HOUR));
    const foreign = idAt(new Date(Date.now() - 5 * HOUR));
    const invalid = idAt(new Date(Date.now() - 6 * HOUR));
    // zstd backups' leftovers are ours alike.
    const oldZstdOrphan = idAt(new Date(Date.now() - 7 * HOUR), 'backup', 'zstd');
    for (const name of [oldOrphan, freshOrphan, oldZstdOrphan]) await writeFile(join(dir, name), 'partial dump');
    await putBackup(real, lagging, (dump) => ownSidecar(lagging, new Date(), dump, 'alpha'));
    await putBackup(real, foreign, (dump) => ownSidecar(foreign, new Date(), dump, 'beta'));
    await putBackup(real, invalid, () => 'not json');
    const ownTempOld = `.tmp-${'a'.repeat(12)}-${idAt(new Date())}.partial`;
    const ownTempFresh = `.tmp-${'b'.repeat(12)}-${idAt(new Date(Date.now() + 1000))}.partial`;
    const otherPrefixTemp = `.tmp-${'c'.repeat(12)}-other_20260601T030000Z.sql.gz.partial`;
    // A crash while the contents manifest was being written leaves its temp file: ours too.
    const ownContentsTemp = `.tmp-${'d'.repeat(12)}-${contentsName(idAt(new Date(Date.now() + 2000)))}.partial`;
    const ownZstdTemp = `.tmp-${'e'.repeat(12)}-${idAt(new Date(Date.now() + 3000), 'backup', 'zstd')}.partial`;
    for (const name of [ownTempOld, ownTempFresh, otherPrefixTemp, ownContentsTemp, ownZstdTemp]) await writeFile(join(dir, name), 'x');
    for (const name of [oldOrphan, oldZstdOrphan, lagging, foreign, invalid, ownTempOld, otherPrefixTemp, ownContentsTemp, ownZstdTemp]) await age(name, 2 * HOUR);
    await age(freshOrphan, 30 * 60_000);
    await age(ownTempFresh, 30 * 60_000);

    // A store whose listing lags its writes (M8): the listing misses `lagging`'s sidecar, a fresh stat finds it.
    const storage = storageWith(real, { list: async () => (await real.list()).filter((o) => o.name !== sidecarName(lagging)) });
    await engineOn(config, storage, logger).cleanupLeftovers();

    const left = (await readdir(dir)).sort();
    expect(left).not.toContain(oldOrphan);
    expect(left).not.toContain(ownTempOld);
    expect(left).not.toContain(ownContentsTemp);
    expect(left).not.toContain(oldZstdOrphan);
    expect(left).not.toContain(ownZstdTemp);
    for (const kept of [freshOrphan, lagging, sidecarName(lagging), foreign, sidecarName(foreign), invalid, sidecarName(invalid), ownTempFresh, otherPrefixTemp]) {
      expect(left, kept).toContain(kept);
    }
    expect(lines).toContainEqual(expect.objectContaining({ message: expect.stringMatching(/removed an unfinished backup/), deletedBackupId: oldOrphan }));
    await rm(dir, { recursive: true, force: true });
  });

  it('removes a contents manifest or drill record whose backup is gone, once older than BACKUP_TIMEOUT, and no other', async () => {
    const { dir, real, config, logger, age } = await setUp();
    const gone = idAt(new Date(Date.now() - 3 * HOUR));
    const goneRecently = idAt(new Date(Date.now() - 4 * HOUR));
    const listed = idAt(new Date(Date.now() - 5 * HOUR));
    const foreign = idAt(new Date(Date.now() - 6 * HOUR));
    await putBackup(real, listed, (dump) => ownSidecar(listed, new Date(), dump, 'alpha'));
    await putBackup(real, foreign, (dump) => ownSidecar(foreign, new Date(), dump, 'beta'));
    const companions = [gone, goneRecently, listed, foreign].flatMap((id) => [contentsName(id), drillName(id)]);
    for (const name of companions) await writeFile(join(dir, name), '{}');
    for (const name of [...companions, listed, sidecarName(listed), foreign, sidecarName(foreign)]) await age(name, 2 * HOUR);
    for (const name of [contentsName(goneRecently), drillName(goneRecently)]) await age(name, 30 * 60_000);

    await engineOn(config, real, logger).cleanupLeftovers();

    const left = (await readdir(dir)).sort();
    expect(left).toEqual([...companions.filter((name) => !name.startsWith(gone)), listed, sidecarName(listed), foreign, sidecarName(foreign)].sort());
    await rm(dir, { recursive: true, force: true });
  });

  it('while another instance backs this database up, it removes nothing and says when it retries', async () => {
    const { dir, real, config, logger, lines, age } = await setUp();
    const orphan = idAt(new Date(Date.now() - 3 * HOUR));
    await writeFile(join(dir, orphan), 'partial dump');
    await age(orphan, 2 * HOUR);
    const holder = new pg.Client(cluster.connectionConfig('alpha'));
    await holder.connect();
    try {
      await holder.query('SELECT pg_advisory_lock($1)', [ADVISORY_LOCK_KEY.toString()]);
      await engineOn(config, real, logger).cleanupLeftovers();
    } finally {
      await holder.end();
    }
    expect(await readdir(dir)).toEqual([orphan]);
    expect(lines).toContainEqual(expect.objectContaining({
      level: 'info',
      message: 'clean-up of leftovers postponed: another instance is backing up this database; will retry after the next backup',
    }));
    await rm(dir, { recursive: true, force: true });
  });
});

describe('local: discarding a failed backup (L2)', () => {
  it('keeps the dump and its contents manifest when its sidecar could not be deleted', async () => {
    const dir = await mkdtemp(join(work, 'discard-'));
    const storage = await LocalStorage.open(dir);
    const id = idAt(new Date());
    await writeFile(join(dir, id), 'dump');
    await writeFile(join(dir, contentsName(id)), '{}');
    // A sidecar that cannot be unlinked (a non-empty directory in its place): the delete fails.
    await mkdir(join(dir, sidecarName(id)));
    await writeFile(join(dir, sidecarName(id), 'x'), 'x');
    const { logger, lines } = captureLogger();
    await discard(storage, id, { sidecar: true, contents: true }, logger, []);
    expect((await readdir(dir)).sort()).toEqual([contentsName(id), id, sidecarName(id)].sort());
    expect(lines).toEqual([expect.objectContaining({ message: 'could not delete the remains of a failed backup', object: sidecarName(id) })]);
    await rm(dir, { recursive: true, force: true });
  });
});
