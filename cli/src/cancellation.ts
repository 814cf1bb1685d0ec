import { setTimeout as delay } from 'node:timers/promises';
import { CliError, ExitCode } from './exit-codes.js';

/** Ctrl-C (SIGINT) and SIGTERM as an AbortSignal, with sections that must not be interrupted. */
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
  proc.on('SIGINT', handler);
  proc.on('SIGTERM', handler);
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
      proc.off('SIGINT', handler);
      proc.off('SIGTERM', handler);
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
