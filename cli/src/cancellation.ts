import { setTimeout as delay } from 'node:timers/promises';
import { CliError, ExitCode } from './exit-codes.js';

/**
 * The signals that cancel: Ctrl-C, a stop, and SIGHUP, which a dropped `kubectl exec -it` or ssh
 * session sends; its default action would kill db-restore in the middle of a swap (H1).
 */
const CANCEL_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** The cancelling signals as an AbortSignal, with sections that must not be interrupted. */
export interface Cancellation {
  readonly signal: AbortSignal;
  /**
   * Runs `fn` with cancellation deferred: a signal that arrives meanwhile takes effect when `fn`
   * is done. For the statements that swap or recreate a database, which must not stop halfway.
   */
  critical<T>(fn: () => Promise<T>): Promise<T>;
  dispose(): void;
}

export class Cancelled extends Error {
  constructor(readonly signalName: string) {
    super(`cancelled (${signalName})`);
    this.name = 'Cancelled';
  }
}

export function installCancellation(proc: Pick<NodeJS.Process, 'on' | 'off'>, onDeferred: (signal: string) => void): Cancellation {
  const controller = new AbortController();
  let depth = 0;
  let pending: string | null = null;
  const handler = (signal: NodeJS.Signals): void => {
    if (depth > 0) {
      pending ??= signal;
      onDeferred(signal);
      return;
    }
    if (!controller.signal.aborted) controller.abort(new Cancelled(signal));
  };
  for (const s of CANCEL_SIGNALS) proc.on(s, handler);
  return {
    signal: controller.signal,
    async critical(fn) {
      depth += 1;
      try {
        return await fn();
      } finally {
        depth -= 1;
        if (depth === 0 && pending !== null && !controller.signal.aborted) controller.abort(new Cancelled(pending));
      }
    },
    dispose() {
      for (const s of CANCEL_SIGNALS) proc.off(s, handler);
    },
  };
}

/**
 * The abort window before anything happens: counts down on `out`, resolves when it ran out, and
 * throws CliError CANCELLED (nothing touched) when the signal fires first.
 */
export async function countdown(seconds: number, signal: AbortSignal, out: NodeJS.WritableStream): Promise<void> {
  out.write(`Starting in ${seconds} seconds; press Ctrl-C to cancel:`);
  try {
    for (let left = seconds; left > 0; left--) {
      out.write(` ${left}`);
      await delay(1000, undefined, { signal });
    }
    out.write(' go\n');
  } catch (err) {
    out.write('\n');
    if (signal.aborted) throw new CliError(ExitCode.CANCELLED, 'cancelled; nothing was changed', { cause: err, databaseState: 'untouched' });
    throw err;
  }
}
