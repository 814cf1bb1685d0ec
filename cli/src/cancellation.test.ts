import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { countdown, installCancellation } from './cancellation.js';
import { ExitCode } from './exit-codes.js';

function fakeProcess() {
  const emitter = new EventEmitter();
  return Object.assign(emitter, { emitSignal: (s: NodeJS.Signals) => emitter.emit(s, s) });
}

describe('cancellation', () => {
  it('aborts on SIGINT', () => {
    const proc = fakeProcess();
    const c = installCancellation(proc as unknown as NodeJS.Process, () => undefined);
    proc.emitSignal('SIGINT');
    expect(c.signal.aborted).toBe(true);
    c.dispose();
    expect(proc.listenerCount('SIGINT')).toBe(0);
  });

  it('aborts on SIGHUP (a dropped terminal) as on SIGINT', () => {
    const proc = fakeProcess();
    const c = installCancellation(proc as unknown as NodeJS.Process, () => undefined);
    proc.emitSignal('SIGHUP');
    expect(c.signal.aborted).toBe(true);
    expect((c.signal.reason as Error).message).toBe('cancelled (SIGHUP)');
    c.dispose();
    expect(proc.listenerCount('SIGHUP')).toBe(0);
  });

  it('defers a signal during a critical section until it ends', async () => {
    const proc = fakeProcess();
    const deferred: string[] = [];
    const c = installCancellation(proc as unknown as NodeJS.Process, (s) => deferred.push(s));
    await c.critical(async () => {
      proc.emitSignal('SIGTERM');
      expect(c.signal.aborted).toBe(false);
    });
    expect(deferred).toEqual(['SIGTERM']);
    expect(c.signal.aborted).toBe(true);
    c.dispose();
  });

  it('countdown throws CANCELLED (nothing touched) when the signal fires', async () => {
    const controller = new AbortController();
    const out = new PassThrough();
    const pending = countdown(5, controller.signal, out);
    controller.abort();
    await expect(pending).rejects.toMatchObject({ exitCode: ExitCode.CANCELLED, databaseState: 'untouched' });
  });
});
