import { backupIdOfSidecar, isBackupId, pinName, PinRecordSchema, sidecarName, type BackupSidecar, type DrillRecord, type Job, type Pin, type Trigger } from '@db-backup-service/contract';
import type { BackupProgress } from './backup/run-backup.js';
import { backupIdOfCompanion, BackupIndex, isOwnBackupId } from './backup-index.js';
import type { Config } from './config/config.js';
import { formatIsoDuration } from './config/duration.js';
import { JobRegistry, type StartResult } from './jobs.js';
import { addLogContext, withLogContext, withoutLogContext, type Logger } from './logger.js';
import type { PlannedBackup } from './retention/plan.js';
import { currentPlan, pruneBackups } from './retention/prune.js';
import { Scheduler } from './scheduler.js';
import type { Storage } from './storage/storage.js';

/** Runs one backup to completion (the pipeline in backup/), returning its sidecar; `onProgress` as RunBackupOptions'. */
export type BackupRunner = (opts: {
  triggeredBy: Trigger;
  signal: AbortSignal;
  existingIds: () => Set<string>;
  onProgress: (progress: BackupProgress) => void;
}) => Promise<BackupSidecar>;

/** Drills one backup (drill/drill-backup.ts): resolves its record, passed, failed or skipped; rejects only when aborted. */
export type DrillRunner = (opts: { backup: BackupSidecar; signal: AbortSignal }) => Promise<DrillRecord>;

export interface DrillDeps {
  readonly run: DrillRunner;
  /** Stores a drill's record (`<id>.drill.json`); logs its own failures. */
  readonly store: (record: DrillRecord) => Promise<void>;
  /** Start-up: removes what killed drills left (scratch databases, local clusters); never throws. */
  readonly cleanup: () => Promise<void>;
}

/**
 * Runs `fn` only when no backup of this database is running anywhere (in this or another
 * instance); resolves false without running it otherwise.
 */
export type ExclusiveRunner = (fn: () => Promise<void>) => Promise<boolean>;

export interface EngineEvents {
  jobStarted?(job: Job): void;
  jobFinished?(job: Job, backup: BackupSidecar | null): void;
  /** A drill job ended: its record, or null when it was aborted. */
  drillFinished?(job: Job, record: DrillRecord | null): void;
  retentionDeleted?(id: string): void;
}

/**
 * The backup engine: jobs (single-flight), the index, the scheduler, retention and clean-up of
 * leftovers. The HTTP layer talks to this and nothing below it.
 */
export class BackupEngine {
  readonly jobs = new JobRegistry();
  readonly index: BackupIndex;
  readonly scheduler: Scheduler;
  /** RESTORE_DRILL as a schedule: drills the newest backup; null for off and after-backup. */
  readonly drillScheduler: Scheduler | null;
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #listeners: EngineEvents[] = [];
  #accepting = false;
  #cleaning: Promise<void> | null = null;
  /** Start-up removal of what killed drills left (never rejects). */
  #drillCleanup: Promise<void> = Promise.resolve();
  #starting: Promise<void> | null = null;
  #stopping: Promise<void> | null = null;
  /** The running job's retention and clean-up (#afterJob), which stop() waits for. */
  readonly #afterJobs = new Set<Promise<void>>();
  /** Retention and pin changes, one at a time: a pin set while retention runs is never deleted by it. */
  #retentionQueue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly deps: {
      config: Config;
      storage: Storage;
      logger: Logger;
      runBackup: BackupRunner;
      exclusive: ExclusiveRunner;
      drills: DrillDeps;
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
    const drillSchedule = config.drill.schedule;
    this.drillScheduler = drillSchedule === null ? null : new Scheduler({
      what: 'drill',
      // Cron mode ignores the interval.
      intervalMs: drillSchedule.intervalMs ?? 0,
      cron: drillSchedule.cron,
      lastSuccessAt: () => {
        const last = this.index.lastDrill();
        return last ? new Date(last.at) : null;
      },
      trigger: () => {
        const result = this.triggerDrill('latest', 'scheduler');
        if (result !== null) return result.started;
        logger.info('scheduled drill skipped: there is no backup yet');
        this.drillScheduler?.jobFinished(false);
        return true;
      },
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
    // Not awaited: the drill server may be slow to answer, and start-up must not wait for it.
    // Drills wait for it instead (#runDrillJob).
    this.#drillCleanup = this.deps.drills.cleanup();
    this.scheduler.start();
    this.drillScheduler?.start();
    this.#every(config.indexRefreshMs, async () => {
      await this.index.refresh();
    });
    if (config.retention.dryRun) {
      logger.warn('RETENTION_DRY_RUN is on: retention logs what it would delete and deletes nothing, and leftovers are not cleaned up');
    }
  }

  /** Starts a backup unless one is running (then: the running job, for a 409). */
  trigger(triggeredBy: Trigger): StartResult {
    if (!this.#accepting) {
      const running = this.jobs.running('backup');
      if (running) return { started: false, running };
      throw new EngineStoppedError();
    }
    const result = this.jobs.start('backup', triggeredBy, (jobId, signal) =>
      withLogContext({ jobId, triggeredBy }, () => this.#runJob(jobId, triggeredBy, signal)),
    );
    if (result.started) this.#emit('jobStarted', result.job);
    return result;
  }

  /**
   * Starts a drill of a listed backup (`latest`: the newest) unless a drill is running (then: that
   * job, for a 409); null when there is no such backup. An id that is not a backup id is never
   * looked up (invariant 7).
   */
  triggerDrill(idOrLatest: string, triggeredBy: Trigger): StartResult | null {
    if (!this.#accepting) {
      const running = this.jobs.running('drill');
      if (running) return { started: false, running };
      throw new EngineStoppedError();
    }
    const backup = idOrLatest === 'latest' ? this.index.latest() : isBackupId(idOrLatest) ? (this.index.get(idOrLatest) ?? null) : null;
    if (backup === null) return null;
    const result = this.jobs.start(
      'drill',
      triggeredBy,
      (jobId, signal) => withLogContext({ jobId, triggeredBy, backupId: backup.id }, () => this.#runDrillJob(jobId, backup, signal)),
      backup.id,
    );
    if (result.started) this.#emit('jobStarted', result.job);
    return result;
  }

  async #runDrillJob(jobId: string, backup: BackupSidecar, stopSignal: AbortSignal): Promise<{ backupId: string }> {
    const { logger, drills } = this.deps;
    let record: DrillRecord | null = null;
    // A drill is bounded like a backup (invariant 12): an abort makes runDrill drop its scratch database.
    const { signal, timer } = this.#withDeadline(stopSignal);
    try {
      // What killed drills left is removed first: a new scratch database must not be taken for it.
      await this.#drillCleanup;
      logger.info('restore drill started', { target: this.deps.config.drill.target });
      record = await drills.run({ backup, signal });
      this.index.setDrill(record);
      await drills.store(record);
      if (record.status === 'failed') {
        logger.error('restore drill failed', { reason: record.detail, mismatches: record.mismatches.length });
        throw new DrillFailedError(record.detail ?? 'the drill failed');
      }
      if (record.status === 'skipped') {
        // The job fails, the record says skipped. A drill job exists to prove a backup: whoever
        // polls it (the SDK's trigger-and-wait, a CI step, RESTORE_DRILL=after-backup's job list)
        // must not read "succeeded" for one that restored nothing. The record keeps it apart from a
        // broken backup: the backup's drill, /info and the metrics say skipped, and why.
        logger.warn('restore drill skipped', { reason: record.detail });
        throw new DrillSkippedError(record.detail ?? 'the drill was skipped');
      }
      logger.info('restore drill passed', { tablesChecked: record.tablesChecked, rowsChecked: record.rowsChecked, durationMs: record.durationMs });
      return { backupId: backup.id };
    } catch (error) {
      if (record === null) logger.error('restore drill aborted', { error: (error as Error).message });
      throw error;
    } finally {
      clearTimeout(timer);
      const finished = record;
      this.#afterOutcome(() => this.#afterDrill(jobId, finished));
    }
  }

  async #afterDrill(jobId: string, record: DrillRecord | null): Promise<void> {
    await this.jobs.idle('drill');
    const job = this.jobs.get(jobId);
    if (job) this.#emit('drillFinished', job, record);
    // Any recorded drill counts as done for the schedule: a backup that fails its drill does not
    // get better by drilling it again in RETRY_DELAY_MS; the next backup is drilled on time.
    this.drillScheduler?.jobFinished(record !== null);
  }

  async #runJob(jobId: string, triggeredBy: Trigger, stopSignal: AbortSignal): Promise<{ backupId: string }> {
    const { logger } = this.deps;
    let sidecar: BackupSidecar | null = null;
    // The overall deadline (invariant 12): a backup stuck anywhere is aborted as a shutdown would
    // abort it (the pipeline removes what it stored), so it cannot block later backups for ever.
    const { signal, timer } = this.#withDeadline(stopSignal);
    try {
      // Clean-up holds the cross-instance lock briefly; a backup waits for it rather than
      // mistaking it for another instance's backup.
      await this.#cleaning;
      // What the newest listed backup dumped is the best guess of what this one will (null: no
      // backup yet, or one whose sidecar does not say, as the reference service's).
      const estimatedTotalBytes = this.index.latest()?.uncompressedSizeBytes ?? null;
      sidecar = await this.deps.runBackup({
        triggeredBy,
        signal,
        existingIds: () => new Set(this.index.list().map((b) => b.id)),
        onProgress: (progress) => this.jobs.setProgress(jobId, progress, estimatedTotalBytes),
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
      this.#afterOutcome(() => this.#afterJob(jobId, sidecar));
    }
  }

  /**
   * Runs `fn` (report a job's outcome and tidy up) once the registry has recorded that outcome
   * (next microtask), outside the job's log context, so retention lines are not stamped with its
   * backupId (M2); stop() waits for it.
   */
  #afterOutcome(fn: () => Promise<void>): void {
    withoutLogContext(() =>
      queueMicrotask(() => {
        const after = fn().finally(() => this.#afterJobs.delete(after));
        this.#afterJobs.add(after);
      }),
    );
  }

  /** `stopSignal`, also fired once BACKUP_TIMEOUT has passed; clear the timer when the job ends. */
  #withDeadline(stopSignal: AbortSignal): { signal: AbortSignal; timer: NodeJS.Timeout } {
    const { timeoutMs } = this.deps.config.backup;
    const deadline = new AbortController();
    const timer = setTimeout(() => {
      deadline.abort(new Error(`BACKUP_TIMEOUT (${formatIsoDuration(timeoutMs)}) reached; raise BACKUP_TIMEOUT if the database needs longer`));
    }, timeoutMs);
    timer.unref();
    return { signal: AbortSignal.any([stopSignal, deadline.signal]), timer };
  }

  async #afterJob(jobId: string, sidecar: BackupSidecar | null): Promise<void> {
    await this.jobs.idle('backup');
    const job = this.jobs.get(jobId);
    if (job) this.#emit('jobFinished', job, sidecar);
    this.scheduler.jobFinished(sidecar !== null);
    if (sidecar && this.deps.config.drill.mode === 'after-backup' && this.#accepting) this.#drillAfterBackup(sidecar);
    if (sidecar) await this.prune();
    await this.cleanupLeftovers();
  }

  /** RESTORE_DRILL=after-backup: the new backup is drilled, unless a drill runs (the next backup tries again). */
  #drillAfterBackup(sidecar: BackupSidecar): void {
    // 'scheduler': started by the service itself, not by an API call.
    const result = this.triggerDrill(sidecar.id, 'scheduler');
    if (result !== null && !result.started) {
      this.deps.logger.info('drill after backup skipped: a drill is already running', { backupId: sidecar.id, runningJobId: result.running.jobId });
    }
  }

  /**
   * Applies retention (only after a successful backup: failures never age out good backups);
   * errors are logged, never thrown (a failed listing deletes nothing).
   */
  prune(): Promise<string[]> {
    const { storage, config, logger } = this.deps;
    return this.#oneAtATime(async () => {
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
    });
  }

  /** What retention would do now over the listed backups (GET /api/v1/retention). */
  retentionPlan(now = new Date()): PlannedBackup[] {
    return currentPlan(this.index, this.deps.config.retention, now);
  }

  /**
   * Pins a listed backup (`<id>.pin.json`, replacing an older pin): retention never deletes it.
   * Resolves the backup, or null when no such backup is listed (an id is checked before storage
   * sees it, invariant 7). Storage failures reject.
   */
  pin(id: string, reason: string | null): Promise<BackupSidecar | null> {
    return this.#oneAtATime(async () => {
      const backup = isBackupId(id) ? this.index.get(id) : undefined;
      if (!backup) return null;
      const pin: Pin = { at: new Date().toISOString(), reason };
      const record = PinRecordSchema.parse({ format: 1, backupId: id, ...pin });
      // Create-only writes: a pin is replaced by delete and write (retention waits for both here).
      await this.deps.storage.delete(pinName(id));
      try {
        await this.deps.storage.putSmall(pinName(id), Buffer.from(`${JSON.stringify(record, null, 2)}\n`));
      } catch (error) {
        // The older pin is gone already: the index says so, and the caller gets the failure (503).
        this.index.setPin(id, null);
        throw error;
      }
      this.index.setPin(id, pin);
      this.deps.logger.info('backup pinned', { pinnedBackupId: id, reason });
      return backup;
    });
  }

  /** Unpins a listed backup (also when it was not pinned); null when no such backup is listed. */
  unpin(id: string): Promise<BackupSidecar | null> {
    return this.#oneAtATime(async () => {
      const backup = isBackupId(id) ? this.index.get(id) : undefined;
      if (!backup) return null;
      const wasPinned = this.index.pinOf(id) !== null;
      await this.deps.storage.delete(pinName(id));
      this.index.setPin(id, null);
      if (wasPinned) this.deps.logger.info('backup unpinned', { unpinnedBackupId: id });
      return backup;
    });
  }

  #oneAtATime<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#retentionQueue.then(fn);
    this.#retentionQueue = run.catch(() => undefined);
    return run;
  }

  /**
   * Removes what interrupted backups left: temporary files, multipart uploads and dumps without
   * a sidecar. Only while no backup of this database runs anywhere (the advisory lock proves it),
   * so another instance's backup in its verification window is never taken for garbage.
   */
  cleanupLeftovers(): Promise<void> {
    // A dry run changes nothing in storage: what it would remove waits for a real run.
    if (this.jobs.running('backup') || this.deps.config.retention.dryRun) return Promise.resolve();
    this.#cleaning ??= this.#cleanup().finally(() => (this.#cleaning = null));
    return this.#cleaning;
  }

  async #cleanup(): Promise<void> {
    const { storage, logger, config } = this.deps;
    const { namePrefix, timeoutMs } = config.backup;
    const owns = (name: string) => isOwnBackupId(backupIdOfSidecar(name) ?? backupIdOfCompanion(name) ?? name, namePrefix);
    try {
      const ran = await this.deps.exclusive(async () => {
        // Our lock does not cover another service sharing this location (another database), whose
        // backup may be writing right now, under any prefix. A backup gives up at its deadline
        // (BACKUP_TIMEOUT), so only what is older than that is a leftover (M1, invariant 11).
        const cutoff = new Date(Date.now() - timeoutMs);
        const snapshot = await this.index.refresh();
        for (const orphan of snapshot.orphans) {
          if (orphan.lastModified >= cutoff) continue;
          // A contents manifest or drill record is an orphan once its backup has neither dump nor sidecar.
          const companionOf = backupIdOfCompanion(orphan.name);
          const id = companionOf ?? orphan.name;
          // A listing may lag writes (M8): only a fresh look that finds no sidecar makes it an orphan.
          if ((await storage.stat(sidecarName(id))) !== null) continue;
          if (companionOf !== null && (await storage.stat(companionOf)) !== null) continue;
          await storage.delete(orphan.name);
          if (companionOf === null) {
            logger.warn('removed an unfinished backup (a dump without a sidecar)', { deletedBackupId: id, lastModified: orphan.lastModified.toISOString() });
          } else {
            logger.warn("removed a backup's leftover contents manifest or drill record (its dump and sidecar are gone)", { object: orphan.name, backupId: id, lastModified: orphan.lastModified.toISOString() });
          }
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
      this.drillScheduler?.stop();
      for (const timer of this.#timers) clearInterval(timer);
      const running = (['backup', 'drill'] as const).filter((kind) => this.jobs.running(kind) !== null);
      if (running.length > 0) {
        this.deps.logger.info(`waiting for the running ${running.join(' and ')} to finish`, { timeoutMs });
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
        if ((await Promise.race([this.jobs.idle(), timedOut])) === 'timeout') {
          this.deps.logger.warn(`shutdown timeout reached: aborting the running ${running.join(' and ')}`);
          // The job's message reads "backup aborted: <this>"; an aborted drill drops its scratch database.
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

/** The drill ran and failed: the job fails with its detail (psql's message, the first mismatch). */
export class DrillFailedError extends Error {
  readonly code = 'DRILL_FAILED';
  constructor(detail: string) {
    super(detail);
    this.name = 'DrillFailedError';
  }
}

/** The drill could not run (an encrypted backup and no RESTORE_DRILL_IDENTITY_FILE): the job fails with why, the record says skipped. */
export class DrillSkippedError extends Error {
  readonly code = 'DRILL_SKIPPED';
  constructor(detail: string) {
    super(detail);
    this.name = 'DrillSkippedError';
  }
}

export class EngineStoppedError extends Error {
  readonly code = 'SHUTTING_DOWN';
  constructor() {
    super('the service is shutting down and accepts no new backups');
    this.name = 'EngineStoppedError';
  }
}
