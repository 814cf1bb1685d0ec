// Drill jobs in the engine: the drill runner is the injection point (restore's runDrill is tested
// in restore/ and end to end in test/service-drills.test.ts); records go to a real backup directory.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupSidecarSchema, drillName, type BackupSidecar, type DrillRecord, type Job } from '@db-backup-service/contract';
import { pollUntil } from '../../test/harness/wait.js';
import { BackupIndex } from './backup-index.js';
import { loadConfig } from './config/config.js';
import { drillBackup, storeDrillRecord } from './drill/drill-backup.js';
import { BackupEngine, type BackupRunner, type DrillRunner } from './engine.js';
import { Metrics } from './http/metrics.js';
import { silentLogger } from './logger.js';
import { idAt, ownSidecar, putBackup } from './ownership.test-helper.js';
import { LocalStorage } from './storage/local-storage.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'engine-drills-test-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

function record(backup: BackupSidecar, status: 'passed' | 'failed', detail: string | null = null): DrillRecord {
  return {
    format: 1, backupId: backup.id, target: 'server', status, at: new Date().toISOString(), durationMs: 42, tablesChecked: 3, rowsChecked: 1200,
    detail, serverVersion: '15.18', mismatches: [], query: null,
  };
}

/** The age spec's example recipient: a public key, as an encrypted sidecar lists them. */
const RECIPIENT = 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p';

/** An encrypted backup's sidecar fields (its id ends in .age; nothing here decrypts it). */
function encryptedSidecar(id: string, at: Date, dump: Buffer): Record<string, unknown> {
  return { ...ownSidecar(id, at, dump, 'app'), encryption: { format: 'age', recipients: [RECIPIENT] } };
}

async function setUp(opts: {
  env?: Record<string, string>;
  run?: DrillRunner;
  /** The service's own drillBackup instead of `run` (it must not reach a server: DB_PORT is 1). */
  realDrills?: boolean;
  runBackup?: BackupRunner;
  backups?: number;
  encrypted?: boolean;
} = {}) {
  const own = await mkdtemp(path.join(dir, 'engine-'));
  const storage = await LocalStorage.open(own);
  for (let i = 0; i < (opts.backups ?? 1); i++) {
    const at = new Date(Date.UTC(2026, 4, 10, 1, i));
    const id = `${idAt(at)}${opts.encrypted === true ? '.age' : ''}`;
    await putBackup(storage, id, (dump) => (opts.encrypted === true ? encryptedSidecar : (i: string, a: Date, d: Buffer) => ownSidecar(i, a, d, 'app'))(id, at, dump));
  }
  const config = loadConfig({
    DB_HOST: '127.0.0.1', DB_PORT: '1', DB_NAME: 'app', DB_USER: 'app', DB_PASSWORD: 'pw', STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: own,
    API_TOKEN: randomBytes(24).toString('hex'), RESTORE_DRILL_TARGET: 'server', PATH: process.env.PATH ?? '', ...opts.env,
  });
  const logger = silentLogger();
  const drilled: string[] = [];
  const real: DrillRunner = ({ backup, signal }) => drillBackup({ config, storage, logger }, backup, signal);
  const engine = new BackupEngine({
    config, storage, logger,
    runBackup: opts.runBackup ?? (() => Promise.reject(new Error('no backups in this test'))),
    exclusive: async (fn) => (await fn(), true),
    drills: {
      run: async (args) => {
        drilled.push(args.backup.id);
        return (opts.realDrills === true ? real : (opts.run ?? (async ({ backup }) => record(backup, 'passed'))))(args);
      },
      store: (r) => storeDrillRecord({ storage, logger }, r),
      cleanup: async () => undefined,
    },
  });
  await engine.start();
  return { engine, storage, own, config, drilled };
}

async function finished(engine: BackupEngine, jobId: string): Promise<Job> {
  await engine.jobs.idle();
  return engine.jobs.get(jobId)!;
}

describe('drill jobs', () => {
  it('drills a listed backup: kind drill with its backupId from the start, <id>.drill.json written, the backup JSON and a fresh index carry it', async () => {
    const { engine, storage, own } = await setUp({ backups: 2 });
    const [newest, older] = engine.index.list();
    const started = engine.triggerDrill(older!.id, 'api');
    if (!started?.started) throw new Error('not started');
    expect(started.job).toMatchObject({ kind: 'drill', status: 'queued', backupId: older!.id, triggeredBy: 'api' });
    expect(await finished(engine, started.job.jobId)).toMatchObject({ status: 'succeeded', backupId: older!.id, errorMessage: null });
    const stored = JSON.parse(await readFile(path.join(own, drillName(older!.id)), 'utf8')) as DrillRecord;
    expect(stored).toMatchObject({ format: 1, backupId: older!.id, status: 'passed', tablesChecked: 3, rowsChecked: 1200 });
    const listed = JSON.parse(engine.index.listJson().toString('utf8')) as { id: string; drill: unknown }[];
    expect(listed.map((b) => [b.id, b.drill === null])).toEqual([[newest!.id, true], [older!.id, false]]);
    expect(engine.index.lastVerified()?.id).toBe(older!.id);
    expect(engine.index.lastDrill()).toMatchObject({ backupId: older!.id, status: 'passed' });
    await engine.stop(1_000);

    // A restart reads the record back (only for listed backups).
    const index = new BackupIndex(storage, { namePrefix: 'backup', database: 'app' }, silentLogger());
    await index.refresh();
    expect(index.drillOf(older!.id)).toEqual({ status: 'passed', at: stored.at, durationMs: 42, tablesChecked: 3, rowsChecked: 1200, detail: null });
    expect(index.drillOf(newest!.id)).toBeNull();
  });

  it('a failed drill fails its job with the detail; unknown, invalid or no backup is null (404); a second drill conflicts while a backup still starts', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { engine } = await setUp({
      run: async ({ backup }) => {
        await gate;
        return record(backup, 'failed', 'psql: ERROR:  relation "public.missing" does not exist');
      },
      runBackup: ({ signal }) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error))),
    });
    expect(engine.triggerDrill('backup_20200101T000000Z.sql.gz', 'api')).toBeNull();
    expect(engine.triggerDrill('../etc/passwd', 'api')).toBeNull();
    const started = engine.triggerDrill('latest', 'api');
    if (!started?.started) throw new Error('not started');
    const second = engine.triggerDrill('latest', 'api');
    expect(second?.started === false && second.running.jobId).toBe(started.job.jobId);
    const backup = engine.trigger('api');
    expect(backup.started).toBe(true);
    release();
    await engine.jobs.idle('drill');
    expect(engine.jobs.get(started.job.jobId)).toMatchObject({ kind: 'drill', status: 'failed', errorMessage: 'psql: ERROR:  relation "public.missing" does not exist' });
    expect(engine.index.drillOf(started.job.backupId!)).toMatchObject({ status: 'failed', detail: 'psql: ERROR:  relation "public.missing" does not exist' });
    expect(engine.index.lastVerified()).toBeNull();
    expect(engine.jobs.running('backup')).not.toBeNull();
    await engine.stop(0);

    const empty = await setUp({ backups: 0 });
    expect(empty.engine.triggerDrill('latest', 'api')).toBeNull();
    await empty.engine.stop(0);
  });

  it('RESTORE_DRILL=after-backup drills each new backup', async () => {
    let backups = 0;
    const { engine, drilled } = await setUp({
      env: { RESTORE_DRILL: 'after-backup' },
      backups: 0,
      runBackup: async () => {
        const at = new Date(Date.UTC(2026, 4, 11, 2, backups++));
        const id = idAt(at);
        return { ...(ownSidecar(id, at, Buffer.from('x'), 'app') as unknown as BackupSidecar), contents: null };
      },
    });
    const job = engine.trigger('api');
    if (!job.started) throw new Error('not started');
    await engine.jobs.idle('backup');
    for (let i = 0; i < 50 && drilled.length === 0; i++) await new Promise((resolve) => setImmediate(resolve));
    await engine.jobs.idle('drill');
    expect(drilled).toEqual([engine.jobs.get(job.job.jobId)!.backupId]);
    expect(engine.jobs.list()[0]).toMatchObject({ kind: 'drill', status: 'succeeded', triggeredBy: 'scheduler' });
    await engine.stop(1_000);
  });

  it('RESTORE_DRILL as a schedule drills the newest backup on its own timer; /info-style nextRunAt is set', async () => {
    const { engine, drilled } = await setUp({ env: { RESTORE_DRILL: '1s' }, backups: 2 });
    expect(engine.drillScheduler?.nextRunAt()).toBeInstanceOf(Date);
    const deadline = Date.now() + 10_000;
    while (drilled.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(drilled[0]).toBe(engine.index.latest()!.id);
    await engine.stop(1_000);
    expect(engine.drillScheduler?.nextRunAt()).toBeNull();
  });

  it('shutdown aborts a running drill: its job fails, no record is written', async () => {
    const { engine, own } = await setUp({
      run: ({ signal }) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error))),
    });
    const started = engine.triggerDrill('latest', 'api');
    if (!started?.started) throw new Error('not started');
    await new Promise((resolve) => setImmediate(resolve));
    await engine.stop(10);
    expect(engine.jobs.get(started.job.jobId)).toMatchObject({ status: 'failed', errorMessage: 'the service is shutting down (SHUTDOWN_TIMEOUT reached)' });
    await expect(readFile(path.join(own, drillName(started.job.backupId!)))).rejects.toThrow(/ENOENT/);
  });

  it('a drill stuck past BACKUP_TIMEOUT is aborted; the next drill can start', async () => {
    const { engine } = await setUp({
      env: { BACKUP_TIMEOUT: '1s' },
      run: ({ signal }) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error))),
    });
    const started = engine.triggerDrill('latest', 'api');
    if (!started?.started) throw new Error('not started');
    expect(await finished(engine, started.job.jobId)).toMatchObject({ status: 'failed', errorMessage: expect.stringContaining('BACKUP_TIMEOUT (PT1S) reached') });
    expect(engine.triggerDrill('latest', 'api')?.started).toBe(true);
    await engine.stop(0);
  });

  it("a drill record that cannot be stored changes neither the job's result nor the index", async () => {
    const { engine, storage } = await setUp();
    const putSmall = storage.putSmall.bind(storage);
    storage.putSmall = (name, data, opts) => (name.endsWith('.drill.json') ? Promise.reject(new Error('disk full')) : putSmall(name, data, opts));
    const started = engine.triggerDrill('latest', 'api');
    if (!started?.started) throw new Error('not started');
    expect(await finished(engine, started.job.jobId)).toMatchObject({ status: 'succeeded' });
    expect(engine.index.drillOf(started.job.backupId!)).toMatchObject({ status: 'passed' });
    await engine.stop(1_000);
  });

  describe('an encrypted backup and no RESTORE_DRILL_IDENTITY_FILE', () => {
    const reason = (id: string) =>
      `backup ${id} is encrypted (age); set RESTORE_DRILL_IDENTITY_FILE to an identity file holding the key of one of its recipients to drill it`;

    it('is skipped with the reason, never passed: record skipped, job failed with it, not verified; the metrics count it as skipped and time no restore', async () => {
      const { engine, own } = await setUp({ realDrills: true, encrypted: true });
      const metrics = new Metrics(engine.index, engine.jobs);
      engine.subscribe(metrics.engineEvents);
      const id = engine.index.latest()!.id;
      expect(id).toMatch(/\.sql\.gz\.age$/);
      const started = engine.triggerDrill(id, 'api');
      if (!started?.started) throw new Error('not started');
      expect(await finished(engine, started.job.jobId)).toMatchObject({ kind: 'drill', status: 'failed', backupId: id, errorMessage: reason(id) });
      const stored = JSON.parse(await readFile(path.join(own, drillName(id)), 'utf8')) as DrillRecord;
      expect(stored).toMatchObject({ backupId: id, status: 'skipped', detail: reason(id), tablesChecked: 0, rowsChecked: 0, serverVersion: null, mismatches: [] });
      expect(engine.index.drillOf(id)).toMatchObject({ status: 'skipped', detail: reason(id) });
      expect(engine.index.lastDrill()).toMatchObject({ backupId: id, status: 'skipped' });
      expect(engine.index.lastVerified()).toBeNull();
      // drillFinished is emitted once the registry is idle (after the job's outcome).
      await engine.stop(1_000);
      const text = await metrics.registry.metrics();
      expect(text).toMatch(/^dbbackup_drills_total\{status="skipped"\} 1$/m);
      expect(text).not.toMatch(/^dbbackup_drills_total\{status="(passed|failed)"\}/m);
      expect(text).toMatch(/^dbbackup_drill_duration_seconds_count 0$/m);
      expect(text).not.toMatch(/^dbbackup_drill_last_success_timestamp_seconds /m);
    });

    it('RESTORE_DRILL=after-backup: each new encrypted backup gets a skipped drill whose job fails saying what to set', async () => {
      const { engine, own } = await setUp({
        env: { RESTORE_DRILL: 'after-backup', BACKUP_ENCRYPTION_RECIPIENTS: RECIPIENT },
        realDrills: true,
        backups: 0,
        runBackup: async () => {
          const at = new Date(Date.UTC(2026, 4, 11, 2));
          const id = `${idAt(at)}.age`;
          return BackupSidecarSchema.parse(encryptedSidecar(id, at, Buffer.from('x')));
        },
      });
      const backup = engine.trigger('api');
      if (!backup.started) throw new Error('not started');
      await engine.jobs.idle('backup');
      const drillJob = await pollUntil(async () => engine.jobs.list().find((j) => j.kind === 'drill'), { timeoutMs: 10_000, intervalMs: 5, what: 'the drill after the backup' });
      await engine.jobs.idle('drill');
      const id = engine.jobs.get(backup.job.jobId)!.backupId!;
      expect(engine.jobs.get(drillJob.jobId)).toMatchObject({ status: 'failed', triggeredBy: 'scheduler', backupId: id, errorMessage: reason(id) });
      expect(JSON.parse(await readFile(path.join(own, drillName(id)), 'utf8'))).toMatchObject({ status: 'skipped', detail: reason(id) });
      expect(engine.index.lastVerified()).toBeNull();
      await engine.stop(1_000);
    });

    it('an unencrypted backup beside it still drills (the skip is about the encrypted one only)', async () => {
      const { engine } = await setUp({ realDrills: true });
      const id = engine.index.latest()!.id;
      const started = engine.triggerDrill(id, 'api');
      if (!started?.started) throw new Error('not started');
      // It reaches the restore: nothing listens on port 1, so it fails there, not with the skip.
      const job = await finished(engine, started.job.jobId);
      expect(job.status).toBe('failed');
      expect(job.errorMessage).not.toContain('RESTORE_DRILL_IDENTITY_FILE');
      expect(engine.index.drillOf(id)?.status).toBe('failed');
      await engine.stop(1_000);
    });
  });
});
