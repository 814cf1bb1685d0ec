import { setTimeout as delay } from 'node:timers/promises';

export interface PollOptions {
  /** Give up after this long. */
  timeoutMs: number;
  /** Pause between attempts; polling, not sleeping-as-synchronisation: the deadline bounds it. */
  intervalMs?: number;
  /** Named in the timeout error so a failing test says what it was waiting for. */
  what: string;
  /** Checked before every attempt; a thrown error aborts the wait at once (e.g. "process exited"). */
  abortIf?: () => void;
}

/**
 * Calls `attempt` until it returns a value other than undefined, or the deadline passes.
 * Errors thrown by `attempt` count as "not yet" (a refused connection is the normal case while a
 * server starts); the last one is reported if the deadline passes.
 */
export async function pollUntil<T>(attempt: () => Promise<T | undefined>, opts: PollOptions): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  const interval = opts.intervalMs ?? 50;
  let lastError: unknown;
  for (;;) {
    opts.abortIf?.();
    try {
      const value = await attempt();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    opts.abortIf?.();
    if (Date.now() >= deadline) {
      const cause = lastError instanceof Error ? `: ${lastError.message}` : '';
      throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${opts.what}${cause}`, { cause: lastError });
    }
    await delay(interval);
  }
}
