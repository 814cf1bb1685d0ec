// Leak checks that compare steady states (specs/007-hardening/ci-determinism.md).
//
// The suite used to compare RSS after its load with a baseline taken after a warm-up. That
// compares a cold-ish process with one that has seen the load's peaks: glibc and V8 keep some of
// what a peak made them grow (freed but resident, heap sized to its high-water mark), so RSS came
// out +14% to +26% above the baseline now and then with the heap flat, against a 20% bound. A leak
// is growth that continues with the work, not a level reached once. So the check runs the same
// work cycle several times and compares the steady state after an early cycle (the 2nd: the
// process has met every code path and peak of a cycle once) with the steady state after a later
// one (the 6th): retention after a peak is the same in both, a leak has grown by four cycles' worth.
import type { ServiceProcess } from '../../harness/index.js';
import { pollUntil } from '../../harness/index.js';
import { forceGc } from './gc.js';
import { processStats, settledStats, type ProcessStats } from './proc.js';

export interface LeakBounds {
  /** RSS may end at most this fraction above the warm steady state. */
  readonly rssTolerance: number;
  /** Descriptors likewise, plus `fdSlack`. */
  readonly fdTolerance: number;
  readonly fdSlack: number;
}

export const LEAK_BOUNDS: LeakBounds = { rssTolerance: 0.2, fdTolerance: 0.2, fdSlack: 10 };

export interface LeakVerdict {
  readonly verdict: 'ok' | 'leak';
  /** Steady state after the warm cycle and after the last one. */
  readonly warm: ProcessStats;
  readonly late: ProcessStats;
  /** (late - warm) / warm, as a fraction. */
  readonly rssGrowth: number;
  /** Why the verdict is 'leak' (empty when ok). */
  readonly reasons: readonly string[];
}

/** Compares two steady states against the bounds. */
export function leakVerdict(warm: ProcessStats, late: ProcessStats, bounds: LeakBounds = LEAK_BOUNDS): LeakVerdict {
  const reasons: string[] = [];
  const rssLimit = warm.rssKb * (1 + bounds.rssTolerance);
  const fdLimit = warm.fds * (1 + bounds.fdTolerance) + bounds.fdSlack;
  if (late.rssKb > rssLimit) reasons.push(`RSS ${warm.rssKb} -> ${late.rssKb} kB (limit ${Math.round(rssLimit)} kB)`);
  if (late.fds > fdLimit) reasons.push(`descriptors ${warm.fds} -> ${late.fds} (limit ${Math.floor(fdLimit)})`);
  return { verdict: reasons.length === 0 ? 'ok' : 'leak', warm, late, rssGrowth: (late.rssKb - warm.rssKb) / warm.rssKb, reasons };
}

/**
 * The service idle after a full GC: descriptors unchanged and RSS within 2% for 6 s (longer than
 * the 5 s keep-alive timeout, so idle client sockets have closed); support/gc.ts says why the GC.
 */
export async function steadyState(svc: ServiceProcess): Promise<ProcessStats> {
  await forceGc(svc);
  return settledStats(svc.pid);
}

export interface CycleLeakCheck extends LeakVerdict {
  readonly cycles: number;
  readonly warmCycle: number;
  /** RSS (kB) right after each cycle, before any GC: for the record, not compared. */
  readonly rssKbAfterEachCycle: readonly number[];
}

export interface CycleLeakOptions {
  /** Default 6. */
  readonly cycles?: number;
  /** The cycle after which the warm steady state is taken; default 2. */
  readonly warmCycle?: number;
  readonly bounds?: LeakBounds;
  /**
   * After the last cycle, how long the late state may take to come back within bounds (GC and
   * measure again, polled): memory freed a little later is not a leak, memory that stays is.
   * Default 20 s.
   */
  readonly settleMs?: number;
}

/**
 * Runs `cycle(1)` .. `cycle(cycles)`, identical units of work (each must end with the service
 * idle: no request or backup still running), takes the steady state after the warm cycle and after
 * the last, and returns the verdict. It does not assert: callers assert `verdict === 'ok'` on the
 * service under test, and the injected-leak test asserts `'leak'` on a leaking one.
 */
export async function leakCheckOverCycles(svc: ServiceProcess, cycle: (n: number) => Promise<void>, opts: CycleLeakOptions = {}): Promise<CycleLeakCheck> {
  const cycles = opts.cycles ?? 6;
  const warmCycle = opts.warmCycle ?? 2;
  const bounds = opts.bounds ?? LEAK_BOUNDS;
  if (!(warmCycle >= 1 && warmCycle < cycles)) throw new Error(`leakCheckOverCycles: warmCycle ${warmCycle} must be in 1..${cycles - 1}`);
  const rssKbAfterEachCycle: number[] = [];
  let warm: ProcessStats | undefined;
  for (let n = 1; n <= cycles; n++) {
    await cycle(n);
    rssKbAfterEachCycle.push((await processStats(svc.pid)).rssKb);
    if (n === warmCycle) warm = await steadyState(svc);
  }
  let result = leakVerdict(warm!, await steadyState(svc), bounds);
  if (result.verdict === 'leak') {
    let last = result;
    result = await pollUntil(
      async () => {
        await forceGc(svc);
        last = leakVerdict(warm!, await processStats(svc.pid), bounds);
        return last.verdict === 'ok' ? last : undefined;
      },
      { timeoutMs: opts.settleMs ?? 20_000, intervalMs: 2_000, what: 'the late steady state to come back within bounds' },
    ).catch(() => last);
  }
  return { ...result, cycles, warmCycle, rssKbAfterEachCycle };
}

/** Figures of a check for printSummary. */
export function leakFigures(check: CycleLeakCheck): Record<string, number | string> {
  return {
    leakVerdict: check.verdict,
    [`rssKbAfterCycle${check.warmCycle}`]: check.warm.rssKb,
    [`rssKbAfterCycle${check.cycles}`]: check.late.rssKb,
    rssGrowthPct: Math.round(check.rssGrowth * 1000) / 10,
    [`fdsAfterCycle${check.warmCycle}`]: check.warm.fds,
    [`fdsAfterCycle${check.cycles}`]: check.late.fds,
    rssKbAfterEachCycleNoGc: check.rssKbAfterEachCycle.join('/'),
  };
}
