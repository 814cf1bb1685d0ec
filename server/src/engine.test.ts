// The engine's own lifecycle (STYLE habit 7, review section 3 and L7) on a real backup directory.
// The backup runner is the engine's injection point: these tests are about start/stop, not backups.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from './config/config.js';
import { abortedError } from './backup/lock-session.js';
import { BackupEngine, EngineStoppedError, type BackupRunner, type ExclusiveRunner } from './engine.js';
import { silentLogger } from './logger.js';
import { LocalStorage } from './storage/local-storage.js';
import { NO_DRILLS } from './drill/no-drills.test-helper.js';
import { BackupSidecarSchema } from '@db-backup-service/contract';
import { idAt, ownSidecar, putBackup } from './ownership.test-helper.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'engine-test-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function engine(
  exclusive: ExclusiveRunner = async (fn) => (await fn(), true),
  runBackup: BackupRunner = () => Promise.reject(new Error('no database in this test')),
  opts: { dir?: string; env?: Record<string, string> } = {},
) {
  // Each engine its own directory (unless given one): no test sees another's clean-up.
  const own = opts.dir ?? (await mkdtemp(path.join(dir, 'engine-')));
  const config = loadConfig({
    DB_HOST: '127.0.0.1', DB_NAME: 'app', DB_USER: 'app', DB_PASSWORD: 'pw', STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: own,
    API_TOKEN: randomBytes(24).toString('hex'), ...opts.env,
  });
  return new BackupEngine({
    config,
    storage: await LocalStorage.open(own),
    logger: silentLogger(),
    runBackup,
    exclusive,
    drills: NO_DRILLS,
  });
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('BackupEngine', () => {
  it('start() is idempotent: a second call shares the first', async () => {
    const e = await engine();
    const first = e.start();
    expect(e.start()).toBe(first);
    await first;
    expect(e.start()).toBe(first);
    await e.stop(1_000);
  });

  it('stays stopped when stop() comes while start() is still loading', async () => {
    const e = await engine();
    const starting = e.start();
    await e.stop(1_000);
    await starting;
    expect(() => e.trigger('api')).toThrow(EngineStoppedError);
  });

  it("stop() waits for the last job's clean-up before it resolves", async () => {
    let gate: Promise<void> = Promise.resolve();
    let cleanups = 0;
    const e = await engine(async (fn) => {
      cleanups++;
      await gate;
      await fn();
      return true;
    });
    await e.start();
    // Wait for the start-up clean-up to pass, then hold the next one (the job's, in #afterJob).
    while (cleanups === 0) await turn();
    let release!: () => void;
    gate = new Promise<void>((resolve) => (release = resolve));
    expect(e.trigger('api').started).toBe(true);
    await e.jobs.idle();
    while (cleanups < 2) await turn();
    let stopped = false;
    const stopping = e.stop(1_000).then(() => (stopped = true));
    for (let i = 0; i < 5; i++) await turn();
    expect(stopped).toBe(false);
    release();
    await stopping;
    expect(stopped).toBe(true);
  });

  it('a shutdown abort says "aborted" once (L6)', async () => {
    // As the pipeline does: an abort rejects with abortedError(signal).
    const e = await engine(undefined, ({ signal }) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(abortedError(signal)))));
    await e.start();
    const started = e.trigger('api');
    if (!started.started) throw new Error('not started');
    await e.stop(10);
    expect(e.jobs.get(started.job.jobId)?.errorMessage).toBe('backup aborted: the service is shutting down (SHUTDOWN_TIMEOUT reached)');
  });

  it("keeps a backup job's progress up to date, with the newest backup's dump size as the estimate; the last one stays", async () => {
    let report!: (dumpedBytes: number, storedBytes: number) => void;
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => (finish = resolve));
    const created = new Date();
    const e = await engine(undefined, async ({ onProgress }) => {
      report = (dumpedBytes, storedBytes) => onProgress({ dumpedBytes, storedBytes });
      await finished;
      return BackupSidecarSchema.parse({ ...ownSidecar(idAt(created), created, Buffer.from('x'), 'app'), uncompressedSizeBytes: 5_000 });
    });
    await e.start();
    // The start-up clean-up reloads the index: the previous backup is added once it is done.
    await e.cleanupLeftovers();
    const previous = new Date(created.getTime() - 3_600_000);
    e.index.add(BackupSidecarSchema.parse({ ...ownSidecar(idAt(previous), previous, Buffer.from('x'), 'app'), uncompressedSizeBytes: 4_000 }));
    const started = e.trigger('api');
    if (!started.started) throw new Error('not started');
    const { jobId } = started.job;
    expect(started.job.progress).toBeNull();
    while (e.jobs.get(jobId)?.status !== 'running') await turn();
    await turn();
    report(1_000, 300);
    expect(e.jobs.get(jobId)?.progress).toMatchObject({ dumpedBytes: 1_000, storedBytes: 300, estimatedTotalBytes: 4_000 });
    const { elapsedMs, bytesPerSecond } = e.jobs.get(jobId)!.progress!;
    expect(elapsedMs).toBeGreaterThanOrEqual(0);
    expect(bytesPerSecond).toBe(elapsedMs > 0 ? Math.round((1_000 * 1000) / elapsedMs) : 0);
    report(5_000, 1_200);
    finish();
    await e.jobs.idle('backup');
    // A report after the end (none should come) changes nothing: the job keeps its last progress.
    report(9_999, 9_999);
    expect(e.jobs.get(jobId)).toMatchObject({ status: 'succeeded', progress: { dumpedBytes: 5_000, storedBytes: 1_200, estimatedTotalBytes: 4_000 } });
    await e.stop(1_000);
  });

  it('retention runs only after a successful backup: a failed one deletes nothing, however old the backups; a dry run deletes and cleans up nothing', async () => {
    const own = await mkdtemp(path.join(dir, 'engine-retention-'));
    const storage = await LocalStorage.open(own);
    const day = 86_400_000;
    const [old1, old2] = [40, 50].map((n) => idAt(new Date(Date.now() - n * day)));
    for (const [i, id] of [old1!, old2!].entries()) await putBackup(storage, id, (dump) => ownSidecar(id, new Date(Date.now() - (40 + 10 * i) * day), dump, 'app'));
    // An unfinished dump (no sidecar), older than BACKUP_TIMEOUT: the clean-up's to remove.
    const orphan = idAt(new Date(Date.now() - 60 * day));
    await writeFile(path.join(own, orphan), 'partial');
    await utimes(path.join(own, orphan), new Date(Date.now() - 60 * day), new Date(Date.now() - 60 * day));
    let runs = 0;
    const succeed: BackupRunner = async () => {
      // Distinct seconds, whatever the clock does between the two runs.
      const now = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000 * runs++);
      const id = idAt(now);
      await putBackup(storage, id, (dump) => ownSidecar(id, now, dump, 'app'));
      return BackupSidecarSchema.parse(ownSidecar(id, now, Buffer.from('x'), 'app'));
    };
    const runOnce = async (e: BackupEngine) => {
      await e.start();
      e.trigger('api');
      await e.jobs.idle('backup');
      await e.stop(5_000);
      return (await readdir(own)).sort();
    };
    const before = (await readdir(own)).sort();
    // Failed: nothing deleted (the start-up clean-up may remove the orphan, so it is left out of the comparison).
    const afterFailure = await runOnce(await engine(undefined, undefined, { dir: own, env: { BACKUP_TIMEOUT: '1m' } }));
    expect(afterFailure.filter((n) => n !== orphan)).toEqual(before.filter((n) => n !== orphan));
    await writeFile(path.join(own, orphan), 'partial');
    await utimes(path.join(own, orphan), new Date(Date.now() - 60 * day), new Date(Date.now() - 60 * day));
    // Dry run: a success, and still nothing deleted, the orphan included.
    const afterDryRun = await runOnce(await engine(undefined, succeed, { dir: own, env: { BACKUP_TIMEOUT: '1m', RETENTION_DRY_RUN: 'true' } }));
    for (const name of [...before, `${old1}.meta.json`, `${old2}.meta.json`]) expect(afterDryRun).toContain(name);
    // A real run after a success: both expired backups and the orphan go.
    const afterSuccess = await runOnce(await engine(undefined, succeed, { dir: own, env: { BACKUP_TIMEOUT: '1m' } }));
    for (const gone of [old1, old2, orphan]) expect(afterSuccess).not.toContain(gone);
    expect(afterSuccess.filter((n) => !n.endsWith('.meta.json'))).toHaveLength(2);
  });
});
