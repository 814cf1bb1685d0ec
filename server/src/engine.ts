import { backupIdOfSidecar, sidecarName, type BackupSidecar, type Job, type Trigger } from '@db-backup-service/contract';
import { BackupIndex, isOwnBackupId } from './backup-index.js';
import type { Config } from './config/config.js';
import { formatIsoDuration } from './config/duration.js';
import { JobRegistry, type StartResult } from './jobs.js';
import { addLogContext, withLogContext, withoutLogContext, type Logger } from './logger.js';
import { pruneBackups } from './retention.js';
import { Scheduler } from './scheduler.js';
import type { Storage } from './storage/storage.js';

/** Runs one backup to completion (the pipeline in backup/), returning its sidecar. */
export type BackupRunner = (opts: { triggeredBy: Trigger; signal: AbortSignal; existingIds: () => Set<string> }) => Promise<BackupSidecar>;

/**
 * Runs `fn` only when no backup of this database is running anywhere (in this or another
 * instance); resolves false without running it otherwise.
 */
export type ExclusiveRunner = (fn: () => Promise<void>) => Promise<boolean>;

export interface EngineEvents {
  jobStarted?(job: Job): void;
  jobFinished?(job: Job, backup: BackupSidecar | null): void;
  retentionDeleted?(id: string): void;
}

const RETENTION_EVERY_MS = 24 * 3600 * 1000;

/**
 * The backup engine: jobs (single-flight), the index, the scheduler, retention and clean-up of
 * leftovers. The HTTP layer talks to this and nothing below it.
 */
export class BackupEngine {
  readonly jobs = new JobRegistry();
  readonly index: BackupIndex;
  readonly scheduler: Scheduler;
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #listeners: EngineEvents[] = [];
  #accepting = false;
  #cleaning: Promise<void> | null = null;
  #starting: Promise<void> | null = null;
  #stopping: Promise<void> | null = null;
  /** The running job's retention and clean-up (#afterJob), which stop() waits for. */
  readonly #afterJobs = new Set<Promise<void>>();

  constructor(
    private readonly deps: {
      config: Config;
      storage: Storage;
      logger: Logger;
      runBackup: BackupRunner;
      exclusive: ExclusiveRunner;
    },
  ) {
    const { config, storage, logger } = deps;
    this.index = new BackupIndex(storage, { namePrefix: config.backup.namePrefix, database: config.db.name }, logger);
    this.scheduler = new Scheduler({
      intervalMs: config.schedule.intervalMs,
      cron: config.schedule.cron,
      lastSuccessAt: () => {
        const latest = this.index.latest();
        return latest ? new Date(latest.createdAt) : null;
      },
      trigger: () => this.trigger('scheduler').started,
      logger,
    });
  }

  /** Registers hooks (metrics) for job and retention events. */
  subscribe(listener: EngineEvents): void {
    this.#listeners.push(listener);
  }

  #emit<K extends keyof EngineEvents>(event: K, ...args: Parameters<NonNullable<EngineEvents[K]>>): void {
    for (const listener of this.#listeners) (listener[event] as ((...a: typeof args) => void) | undefined)?.(...args);
  }

  /**
   * Loads the index, cleans leftovers of crashes, starts the scheduler and housekeeping timers.
   * Idempotent: a second call shares the first (no second set of timers).
   */
  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    const { logger, config } = this.deps;
    try {
      await this.index.refresh();
      logger.info('backup index loaded', { backups: this.index.list().length, storage: this.deps.storage.location });
    } catch (error) {
      // Storage may come up after us: /health reports it, the periodic refresh retries.
      logger.error('could not list backups at start; will retry', { error: (error as Error).message });
    }
    // stop() may have come first (e.g. the port was taken while the index loaded): stay stopped.
    if (this.#stopping !== null) return;
    this.#accepting = true;
    void this.cleanupLeftovers();
    this.scheduler.start();
    this.#every(config.indexRefreshMs, async () => {
      await this.index.refresh();
    });
    this.#every(RETENTION_EVERY_MS, () => this.prune());
  }

  /** Starts a backup unless one is running (then: the running job, for a 409). */
  trigger(triggeredBy: Trigger): StartResult {
    if (!this.#accepting) {
      const running = this.jobs.running();
      if (running) return { started: false, running };
      throw new EngineStoppedError();
    }
    const result = this.jobs.start(triggeredBy, (jobId, signal) =>
      withLogContext({ jobId, triggeredBy }, () => this.#runJob(jobId, triggeredBy, signal)),
    );
    if (result.started) this.#emit('jobStarted', result.job);
    return result;
  }

  async #runJob(jobId: string, triggeredBy: Trigger, stopSignal: AbortSignal): Promise<{ backupId: string }> {
    const { logger, config } = this.deps;
    let sidecar: BackupSidecar | null = null;
    // The overall deadline (invariant 12): a backup stuck anywhere is aborted as a shutdown would
    // abort it (the pipeline removes what it stored), so it cannot block later backups for ever.
    const deadline = new AbortController();
    const timer = setTimeout(() => {
      deadline.abort(new Error(`BACKUP_TIMEOUT (${formatIsoDuration(config.backup.timeoutMs)}) reached; raise BACKUP_TIMEOUT if the database needs longer`));
    }, config.backup.timeoutMs);
    timer.unref();
    const signal = AbortSignal.any([stopSignal, deadline.signal]);
    try {
      // Clean-up holds the cross-instance lock briefly; a backup waits for it rather than
      // mistaking it for another instance's backup.
      await this.#cleaning;
      sidecar = await this.deps.runBackup({
        triggeredBy,
        signal,
        existingIds: () => new Set(this.index.list().map((b) => b.id)),
      });
      addLogContext({ backupId: sidecar.id, durationMs: sidecar.durationMs });
      this.index.add(sidecar);
      logger.info('backup succeeded', { sizeBytes: sidecar.sizeBytes, sha256: sidecar.sha256 });
      return { backupId: sidecar.id };
    } catch (error) {
      logger.error('backup failed', { error: (error as Error).message });
      throw error;
    } finally {
      clearTimeout(timer);
      // After the registry has recorded the outcome (next microtask), report it and tidy up;
      // outside the job's log context, so retention lines are not stamped with its backupId (M2).
      withoutLogContext(() =>
        queueMicrotask(() => {
          const after = this.#afterJob(jobId, sidecar).finally(() => this.#afterJobs.delete(after));
          this.#afterJobs.add(after);
        }),
      );
    }
  }

  async #afterJob(jobId: string, sidecar: BackupSidecar | null): Promise<void> {
    await this.jobs.idle();
    const job = this.jobs.get(jobId);
    if (job) this.#emit('jobFinished', job, sidecar);
    this.scheduler.jobFinished(sidecar !== null);
    if (sidecar) await this.prune();
    await this.cleanupLeftovers();
  }

  /** Applies retention; errors are logged, never thrown (a failed listing deletes nothing). */
  async prune(): Promise<string[]> {
    const { storage, config, logger } = this.deps;
    try {
      return await pruneBackups({
        storage,
        index: this.index,
        policy: config.retention,
        logger,
        onDeleted: (id) => this.#emit('retentionDeleted', id),
      });
    } catch (error) {
      logger.error('retention skipped: could not list backups', { error: (error as Error).message });
      return [];
    }
  }

  /**
   * Removes what interrupted backups left: temporary files, multipart uploads and dumps without
   * a sidecar. Only while no backup of this database runs anywhere (the advisory lock proves it),
   * so another instance's backup in its verification window is never taken for garbage.
   */
  cleanupLeftovers(): Promise<void> {
    if (this.jobs.running()) return Promise.resolve();
    this.#cleaning ??= this.#cleanup().finally(() => (this.#cleaning = null));
    return this.#cleaning;
  }

  async #cleanup(): Promise<void> {
    const { storage, logger, config } = this.deps;
    const { namePrefix, timeoutMs } = config.backup;
    const owns = (name: string) => isOwnBackupId(backupIdOfSidecar(name) ?? name, namePrefix);
    try {
      const ran = await this.deps.exclusive(async () => {
        // Our lock does not cover another service sharing this location (another database), whose
        // backup may be writing right now, under any prefix. A backup gives up at its deadline
        // (BACKUP_TIMEOUT), so only what is older than that is a leftover (M1, invariant 11).
        const cutoff = new Date(Date.now() - timeoutMs);
        const snapshot = await this.index.refresh();
        for (const orphan of snapshot.orphans) {
          if (orphan.lastModified >= cutoff) continue;
          // A listing may lag writes (M8): only a fresh look that finds no sidecar makes it an orphan.
          if ((await storage.stat(sidecarName(orphan.name))) !== null) continue;
          await storage.delete(orphan.name);
          logger.warn('removed an unfinished backup (a dump without a sidecar)', { deletedBackupId: orphan.name, lastModified: orphan.lastModified.toISOString() });
        }
        for (const name of await storage.cleanupIncomplete(cutoff, owns)) {
          logger.warn('removed an interrupted upload', { object: name });
        }
      });
      if (!ran) logger.info('clean-up of leftovers postponed: another instance is backing up this database; will retry after the next backup');
    } catch (error) {
      logger.warn('clean-up of leftovers did not finish (the database or storage failed; see error); what is left is retried after the next backup', { error: (error as Error).message });
    }
  }

  /**
   * Stops new triggers and the scheduler, lets a running backup finish within `timeoutMs`, then
   * aborts it (the pipeline removes its partial dump). Idempotent: a second call shares the first.
   */
  stop(timeoutMs: number): Promise<void> {
    this.#stopping ??= (async () => {
      this.#accepting = false;
      this.scheduler.stop();
      for (const timer of this.#timers) clearInterval(timer);
      if (this.jobs.running()) {
        this.deps.logger.info('waiting for the running backup to finish', { timeoutMs });
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
        if ((await Promise.race([this.jobs.idle(), timedOut])) === 'timeout') {
          this.deps.logger.warn('shutdown timeout reached: aborting the running backup');
          // The job's message reads "backup aborted: <this>".
          this.jobs.abortRunning(new Error('the service is shutting down (SHUTDOWN_TIMEOUT reached)'));
          await this.jobs.idle();
        }
        clearTimeout(timer);
      }
      // The last job's retention and clean-up, so that the process does not exit half-way through
      // them: each step is idempotent, but the last retention before a restart would be skipped.
      // It is queued a microtask after the job settles, hence the yield first.
      await new Promise<void>((resolve) => setImmediate(resolve));
      await Promise.all([...this.#afterJobs]);
    })();
    return this.#stopping;
  }

  #every(ms: number, task: () => Promise<unknown>): void {
    const timer = setInterval(() => {
      task().catch((error: unknown) => this.deps.logger.warn('periodic task failed', { error: (error as Error).message }));
    }, ms);
    timer.unref();
    this.#timers.push(timer);
  }
}

export class EngineStoppedError extends Error {
  readonly code = 'SHUTTING_DOWN';
  constructor() {
    super('the service is shutting down and accepts no new backups');
    this.name = 'EngineStoppedError';
  }
}
