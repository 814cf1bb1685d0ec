import { CronJob } from 'cron';
import { MAX_TIMER_MS } from './config/config.js';
import type { Logger } from './logger.js';

/**
 * A never-backed-up database gets its first scheduled backup this long after start (or after one
 * interval, if shorter): soon enough that nothing stays unprotected, late enough that a service
 * started together with its database does not fail its first attempt.
 */
export const FIRST_BACKUP_DELAY_MS = 60_000;
/** An overdue backup (the service was down past its time) runs this long after start. */
export const OVERDUE_DELAY_MS = 10_000;
/** After a failed attempt, wait at least this long (or the interval, if shorter) before the next. */
export const RETRY_DELAY_MS = 5 * 60_000;

export interface SchedulerOptions {
  readonly intervalMs: number;
  readonly cron: string | null;
  /** Time of the newest successful backup (from the index), so a restart keeps the clock. */
  readonly lastSuccessAt: () => Date | null;
  /** Starts a backup; false when one is already running (the tick is skipped, not queued). */
  readonly trigger: () => boolean;
  readonly logger: Logger;
  readonly now?: () => number;
  /** What it starts, for its log line: 'backup' (default) or 'drill'. */
  readonly what?: 'backup' | 'drill';
}

/**
 * Fires scheduled backups. Interval mode: the next run is the newest successful backup's time
 * plus the interval, whoever triggered it, so a restart neither resets the clock nor causes a
 * storm. Cron mode (BACKUP_CRON) replaces the interval.
 */
export class Scheduler {
  readonly #opts: SchedulerOptions;
  readonly #now: () => number;
  readonly #startedAt: number;
  #timer: NodeJS.Timeout | null = null;
  #cron: CronJob | null = null;
  #lastFailureAt: number | null = null;
  #stopped = true;

  constructor(opts: SchedulerOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#startedAt = this.#now();
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    if (this.#opts.cron) {
      this.#cron = CronJob.from({ cronTime: this.#opts.cron, onTick: () => this.#fire(), start: true, timeZone: 'UTC' });
    } else {
      this.#arm();
    }
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    void this.#cron?.stop();
    this.#cron = null;
  }

  /** When the next scheduled backup is due, or null when stopped. */
  nextRunAt(): Date | null {
    if (this.#stopped) return null;
    if (this.#cron) return this.#cron.nextDate().toJSDate();
    return new Date(this.#dueAt());
  }

  /** Called after every job (API or scheduled): the clock follows the newest success. */
  jobFinished(succeeded: boolean): void {
    this.#lastFailureAt = succeeded ? null : this.#now();
    if (!this.#stopped && !this.#cron) this.#arm();
  }

  #dueAt(): number {
    const last = this.#opts.lastSuccessAt();
    const { intervalMs } = this.#opts;
    let due = last === null
      ? this.#startedAt + Math.min(FIRST_BACKUP_DELAY_MS, intervalMs)
      : Math.max(last.getTime() + intervalMs, this.#startedAt + Math.min(OVERDUE_DELAY_MS, intervalMs));
    if (this.#lastFailureAt !== null) due = Math.max(due, this.#lastFailureAt + Math.min(intervalMs, RETRY_DELAY_MS));
    return due;
  }

  #arm(): void {
    if (this.#timer) clearTimeout(this.#timer);
    const wait = Math.max(0, this.#dueAt() - this.#now());
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (this.#dueAt() <= this.#now()) this.#fire();
      else this.#arm();
    }, Math.min(wait, MAX_TIMER_MS)); // longer waits re-arm
    // The timer alone must not keep the process alive at shutdown.
    this.#timer.unref();
  }

  #fire(): void {
    if (this.#stopped) return;
    if (!this.#opts.trigger()) {
      const what = this.#opts.what ?? 'backup';
      this.#opts.logger.info(`scheduled ${what} skipped: a ${what} is already running`);
      // jobFinished() re-arms when the running job ends.
    }
  }
}
