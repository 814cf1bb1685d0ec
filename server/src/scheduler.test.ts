import { afterEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from './logger.js';
import { FIRST_BACKUP_DELAY_MS, OVERDUE_DELAY_MS, RETRY_DELAY_MS, Scheduler } from './scheduler.js';

const HOUR = 3_600_000;

describe('Scheduler (interval)', () => {
  afterEach(() => vi.useRealTimers());

  function setup(lastSuccessHoursAgo: number | null, intervalMs = 24 * HOUR) {
    vi.useFakeTimers({ now: new Date('2026-05-20T12:00:00Z') });
    const last = lastSuccessHoursAgo === null ? null : new Date(Date.now() - lastSuccessHoursAgo * HOUR);
    const state = { last, fired: 0, busy: false };
    const scheduler = new Scheduler({
      intervalMs,
      cron: null,
      lastSuccessAt: () => state.last,
      trigger: () => {
        if (state.busy) return false;
        state.fired++;
        return true;
      },
      logger: silentLogger(),
    });
    return { scheduler, state };
  }

  it('counts from the newest successful backup, so a restart does not reset the clock', () => {
    const { scheduler, state } = setup(20);
    scheduler.start();
    expect(scheduler.nextRunAt()!.getTime()).toBe(Date.now() + 4 * HOUR);
    vi.advanceTimersByTime(4 * HOUR - 1000);
    expect(state.fired).toBe(0);
    vi.advanceTimersByTime(1000);
    expect(state.fired).toBe(1);
    scheduler.stop();
  });

  it('runs an overdue backup soon after start, once', () => {
    const { scheduler, state } = setup(30);
    scheduler.start();
    vi.advanceTimersByTime(OVERDUE_DELAY_MS);
    expect(state.fired).toBe(1);
    vi.advanceTimersByTime(HOUR);
    expect(state.fired).toBe(1); // no storm while the job runs
    state.last = new Date();
    scheduler.jobFinished(true);
    expect(scheduler.nextRunAt()!.getTime()).toBe(Date.now() + 24 * HOUR);
    scheduler.stop();
  });

  it('takes a first backup a minute after start when none exists', () => {
    const { scheduler, state } = setup(null);
    scheduler.start();
    vi.advanceTimersByTime(FIRST_BACKUP_DELAY_MS - 1);
    expect(state.fired).toBe(0);
    vi.advanceTimersByTime(1);
    expect(state.fired).toBe(1);
    scheduler.stop();
  });

  it('waits before retrying a failed attempt', () => {
    const { scheduler, state } = setup(30);
    scheduler.start();
    vi.advanceTimersByTime(OVERDUE_DELAY_MS);
    expect(state.fired).toBe(1);
    scheduler.jobFinished(false);
    vi.advanceTimersByTime(RETRY_DELAY_MS - 1);
    expect(state.fired).toBe(1);
    vi.advanceTimersByTime(1);
    expect(state.fired).toBe(2);
    scheduler.stop();
  });

  it('skips a tick while a backup runs, without queueing it', () => {
    const { scheduler, state } = setup(30);
    state.busy = true;
    scheduler.start();
    vi.advanceTimersByTime(OVERDUE_DELAY_MS + HOUR);
    expect(state.fired).toBe(0);
    scheduler.stop();
  });
});

describe('Scheduler (cron)', () => {
  afterEach(() => vi.useRealTimers());

  it('fires on the cron expression instead of the interval', () => {
    vi.useFakeTimers({ now: new Date('2026-05-20T12:00:30Z') });
    let fired = 0;
    const scheduler = new Scheduler({ intervalMs: 24 * HOUR, cron: '* * * * *', lastSuccessAt: () => null, trigger: () => (fired++, true), logger: silentLogger() });
    scheduler.start();
    expect(scheduler.nextRunAt()!.toISOString()).toBe('2026-05-20T12:01:00.000Z');
    vi.advanceTimersByTime(30_000);
    expect(fired).toBe(1);
    vi.advanceTimersByTime(60_000);
    expect(fired).toBe(2);
    scheduler.stop();
  });
});
