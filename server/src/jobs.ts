import { randomUUID } from 'node:crypto';
import type { Job, Trigger } from '@db-backup-service/contract';

/** How many finished and running jobs are remembered (FIFO eviction of the oldest). */
export const JOB_HISTORY_LIMIT = 100;

export type StartResult = { readonly started: true; readonly job: Job } | { readonly started: false; readonly running: Job };

export interface JobOutcome {
  readonly backupId: string | null;
}

/**
 * The in-memory job registry and the single-flight lock (invariant 3). `start` is synchronous
 * between checking and taking the lock, so concurrent triggers from the API and the scheduler
 * can never both win.
 */
export class JobRegistry {
  readonly #jobs = new Map<string, Job>();
  #running: { id: string; controller: AbortController; done: Promise<void> } | null = null;

  /**
   * Starts `run` as a new job unless one is running. `run` receives the job id and an abort
   * signal (fired by `abortRunning`, e.g. at shutdown).
   */
  start(triggeredBy: Trigger, run: (jobId: string, signal: AbortSignal) => Promise<JobOutcome>): StartResult {
    if (this.#running) return { started: false, running: this.#get(this.#running.id) };

    const jobId = randomUUID();
    this.#put({ jobId, kind: 'backup', status: 'queued', triggeredBy, startedAt: null, finishedAt: null, durationMs: null, errorMessage: null, backupId: null });
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
        this.#running = null;
      }
    })();
    this.#running = { id: jobId, controller, done };
    return { started: true, job: this.#get(jobId) };
  }

  get(jobId: string): Job | undefined {
    return this.#jobs.get(jobId);
  }

  /** The running job, or null. */
  running(): Job | null {
    return this.#running ? this.#get(this.#running.id) : null;
  }

  /** Newest first. */
  list(): Job[] {
    return [...this.#jobs.values()].reverse();
  }

  /** Resolves when no job is running (immediately when idle). */
  async idle(): Promise<void> {
    await this.#running?.done;
  }

  /** Asks the running job to stop; it fails with `reason` and cleans up after itself. */
  abortRunning(reason: Error): void {
    this.#running?.controller.abort(reason);
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
      // Never evict the running job: its caller is polling it.
      if (oldest === this.#running?.id) break;
      this.#jobs.delete(oldest);
    }
  }

  #update(jobId: string, patch: Partial<Job>): void {
    // Jobs are replaced, not mutated: a Job handed to a caller is a snapshot.
    this.#jobs.set(jobId, { ...this.#get(jobId), ...patch });
  }
}
