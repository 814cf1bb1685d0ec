import { randomUUID } from 'node:crypto';
import type { Job, JobKind, JobProgress, Trigger } from '@db-backup-service/contract';

/** How many finished and running jobs are remembered (FIFO eviction of the oldest). */
export const JOB_HISTORY_LIMIT = 100;

export type StartResult = { readonly started: true; readonly job: Job } | { readonly started: false; readonly running: Job };

export interface JobOutcome {
  readonly backupId: string | null;
}

interface RunningJob {
  readonly id: string;
  readonly controller: AbortController;
  readonly done: Promise<void>;
  /** Date.now() when it started: startedAt, durationMs and the progress's elapsedMs count from here. */
  readonly started: number;
}

/**
 * The in-memory job registry and the single-flight lock (invariant 3), one lock per kind: a
 * drill never waits for a backup, nor a backup for a drill. `start` is synchronous between
 * checking and taking the lock, so concurrent triggers from the API and the scheduler can never
 * both win. Jobs of both kinds share one history.
 */
export class JobRegistry {
  readonly #jobs = new Map<string, Job>();
  readonly #running = new Map<JobKind, RunningJob>();

  /**
   * Starts `run` as a new job of `kind` unless one of that kind is running. `run` receives the
   * job id and an abort signal (fired by `abortRunning`, e.g. at shutdown). `backupId`: what the
   * job reports from the start (a drill's backup); a backup job's comes with its outcome.
   */
  start(
    kind: JobKind,
    triggeredBy: Trigger,
    run: (jobId: string, signal: AbortSignal) => Promise<JobOutcome>,
    backupId: string | null = null,
  ): StartResult {
    const running = this.#running.get(kind);
    if (running) return { started: false, running: this.#get(running.id) };

    const jobId = randomUUID();
    this.#put({ jobId, kind, status: 'queued', triggeredBy, startedAt: null, finishedAt: null, durationMs: null, errorMessage: null, backupId, progress: null });
    const controller = new AbortController();
    const started = Date.now();
    const done = (async () => {
      // Let the caller answer 202 with the queued job before any work starts.
      await Promise.resolve();
      this.#update(jobId, { status: 'running', startedAt: new Date(started).toISOString() });
      try {
        const outcome = await run(jobId, controller.signal);
        this.#finish(jobId, started, { status: 'succeeded', backupId: outcome.backupId });
      } catch (error) {
        this.#finish(jobId, started, { status: 'failed', errorMessage: error instanceof Error ? error.message : String(error) });
      } finally {
        this.#running.delete(kind);
      }
    })();
    this.#running.set(kind, { id: jobId, controller, done, started });
    return { started: true, job: this.#get(jobId) };
  }

  /**
   * Records how far a running job got, adding the times to the counts it reports
   * (`estimatedTotalBytes`: what it is expected to reach, or null). Ignored once the job has
   * ended: the last progress stays as it was.
   */
  setProgress(jobId: string, counts: Pick<JobProgress, 'dumpedBytes' | 'storedBytes'>, estimatedTotalBytes: number | null): void {
    const running = [...this.#running.values()].find((job) => job.id === jobId);
    if (running === undefined) return;
    const elapsedMs = Math.max(0, Date.now() - running.started);
    const bytesPerSecond = elapsedMs > 0 ? Math.round((counts.dumpedBytes * 1000) / elapsedMs) : 0;
    this.#update(jobId, { progress: { dumpedBytes: counts.dumpedBytes, storedBytes: counts.storedBytes, elapsedMs, bytesPerSecond, estimatedTotalBytes } });
  }

  get(jobId: string): Job | undefined {
    return this.#jobs.get(jobId);
  }

  /** The running job of `kind`, or null. */
  running(kind: JobKind): Job | null {
    const running = this.#running.get(kind);
    return running ? this.#get(running.id) : null;
  }

  /** Newest first. */
  list(): Job[] {
    return [...this.#jobs.values()].reverse();
  }

  /** Resolves when no job of `kind` (of any kind when omitted) is running; immediately when idle. */
  async idle(kind?: JobKind): Promise<void> {
    // A job started while waiting is waited for too: idle means idle when this resolves.
    for (let jobs = this.#runningOf(kind); jobs.length > 0; jobs = this.#runningOf(kind)) {
      await Promise.all(jobs.map((j) => j.done));
    }
  }

  /** Asks every running job to stop; each fails with `reason` and cleans up after itself. */
  abortRunning(reason: Error): void {
    for (const job of this.#running.values()) job.controller.abort(reason);
  }

  #runningOf(kind: JobKind | undefined): RunningJob[] {
    const all = [...this.#running.entries()];
    return all.filter(([k]) => kind === undefined || k === kind).map(([, job]) => job);
  }

  #finish(jobId: string, started: number, patch: Partial<Job>): void {
    const finished = Date.now();
    this.#update(jobId, { ...patch, finishedAt: new Date(finished).toISOString(), durationMs: finished - started });
  }

  #get(jobId: string): Job {
    const job = this.#jobs.get(jobId);
    if (!job) throw new Error(`job ${jobId} is not registered`);
    return job;
  }

  #put(job: Job): void {
    this.#jobs.set(job.jobId, job);
    while (this.#jobs.size > JOB_HISTORY_LIMIT) {
      const oldest = this.#jobs.keys().next().value as string;
      // Never evict a running job: its caller is polling it.
      if ([...this.#running.values()].some((j) => j.id === oldest)) break;
      this.#jobs.delete(oldest);
    }
  }

  #update(jobId: string, patch: Partial<Job>): void {
    // Jobs are replaced, not mutated: a Job handed to a caller is a snapshot.
    this.#jobs.set(jobId, { ...this.#get(jobId), ...patch });
  }
}
