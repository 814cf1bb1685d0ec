import { describe, expect, it } from 'vitest';
import { JOB_HISTORY_LIMIT, JobRegistry } from './jobs.js';

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('JobRegistry', () => {
  it('runs one job at a time; 20 concurrent starts yield one job and 19 conflicts naming it', async () => {
    const jobs = new JobRegistry();
    const gate = deferred();
    let runs = 0;
    const results = Array.from({ length: 20 }, () =>
      jobs.start('backup', 'api', async () => {
        runs++;
        await gate.promise;
        return { backupId: 'b' };
      }),
    );
    const started = results.filter((r) => r.started);
    expect(started).toHaveLength(1);
    const id = started[0]!.started ? started[0]!.job.jobId : '';
    for (const r of results.filter((r) => !r.started)) expect(!r.started && r.running.jobId).toBe(id);
    gate.resolve();
    await jobs.idle();
    expect(runs).toBe(1);
    expect(jobs.get(id)).toMatchObject({ status: 'succeeded', backupId: 'b', triggeredBy: 'api', errorMessage: null });
    expect(jobs.running('backup')).toBeNull();
  });

  it('goes queued -> running -> failed with the error message and timing', async () => {
    const jobs = new JobRegistry();
    const result = jobs.start('backup', 'scheduler', async () => {
      throw new Error('pg_dump: connection refused');
    });
    expect(result.started && result.job.status).toBe('queued');
    await jobs.idle();
    const job = jobs.get(result.started ? result.job.jobId : '')!;
    expect(job).toMatchObject({ status: 'failed', errorMessage: 'pg_dump: connection refused', triggeredBy: 'scheduler', backupId: null });
    expect(job.startedAt).not.toBeNull();
    expect(Date.parse(job.finishedAt!)).toBeGreaterThanOrEqual(Date.parse(job.startedAt!));
    expect(job.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('keeps the newest 100 jobs (FIFO)', async () => {
    const jobs = new JobRegistry();
    const ids: string[] = [];
    for (let i = 0; i < JOB_HISTORY_LIMIT + 5; i++) {
      const r = jobs.start('backup', 'api', async () => ({ backupId: null }));
      if (r.started) ids.push(r.job.jobId);
      await jobs.idle();
    }
    expect(jobs.list()).toHaveLength(JOB_HISTORY_LIMIT);
    expect(jobs.get(ids[0]!)).toBeUndefined();
    expect(jobs.get(ids.at(-1)!)).toBeDefined();
    expect(jobs.list()[0]!.jobId).toBe(ids.at(-1));
  });

  it('aborts the running job through its signal', async () => {
    const jobs = new JobRegistry();
    const r = jobs.start('backup', 'api', (_id, signal) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error))));
    await Promise.resolve();
    jobs.abortRunning(new Error('shutting down'));
    await jobs.idle();
    expect(jobs.get(r.started ? r.job.jobId : '')).toMatchObject({ status: 'failed', errorMessage: 'shutting down' });
  });

  it('locks each kind on its own: a drill runs beside a backup, a second drill conflicts; both share the history', async () => {
    const jobs = new JobRegistry();
    const gate = deferred();
    const backup = jobs.start('backup', 'api', async () => {
      await gate.promise;
      return { backupId: 'b' };
    });
    const drill = jobs.start('drill', 'api', async () => {
      await gate.promise;
      return { backupId: 'a' };
    }, 'a');
    expect(backup.started && drill.started).toBe(true);
    expect(drill.started && drill.job).toMatchObject({ kind: 'drill', backupId: 'a', status: 'queued' });
    const second = jobs.start('drill', 'scheduler', async () => ({ backupId: 'x' }), 'x');
    expect(!second.started && second.running.jobId).toBe(drill.started && drill.job.jobId);
    expect(jobs.running('backup')?.kind).toBe('backup');
    expect(jobs.running('drill')?.kind).toBe('drill');
    gate.resolve();
    await jobs.idle();
    expect(jobs.list().map((j) => [j.kind, j.status])).toEqual([['drill', 'succeeded'], ['backup', 'succeeded']]);
  });

  it('progress: null while queued and for jobs that report none; elapsed and rate from the job start; frozen once ended', async () => {
    const jobs = new JobRegistry();
    const gate = deferred();
    const started = Date.now();
    const r = jobs.start('backup', 'api', async (jobId) => {
      await gate.promise;
      jobs.setProgress(jobId, { dumpedBytes: 2_000_000, storedBytes: 500_000 }, null);
      return { backupId: 'b' };
    });
    if (!r.started) throw new Error('not started');
    const { jobId } = r.job;
    expect(r.job.progress).toBeNull();
    const drill = jobs.start('drill', 'api', async () => ({ backupId: 'a' }), 'a');
    // Stamped no earlier than this test's clock: elapsed is measured from the job's own start.
    await new Promise((resolve) => setTimeout(resolve, 20));
    gate.resolve();
    await jobs.idle();
    const { progress } = jobs.get(jobId)!;
    expect(progress).toMatchObject({ dumpedBytes: 2_000_000, storedBytes: 500_000, estimatedTotalBytes: null });
    expect(progress!.elapsedMs).toBeGreaterThanOrEqual(15);
    expect(progress!.elapsedMs).toBeLessThanOrEqual(Date.now() - started);
    expect(progress!.bytesPerSecond).toBe(Math.round((2_000_000 * 1000) / progress!.elapsedMs));
    jobs.setProgress(jobId, { dumpedBytes: 1, storedBytes: 1 }, 7);
    expect(jobs.get(jobId)!.progress).toEqual(progress);
    expect(jobs.get(drill.started ? drill.job.jobId : '')!.progress).toBeNull();
  });
});
