/**
 * Last-resort cleanup for resources that outlive a test worker: postmasters and service child
 * processes are separate processes, so a test that throws before its afterAll (or a worker that is
 * torn down) would otherwise leave them running and holding ports, shared memory and temp dirs.
 *
 * The callbacks run synchronously on 'exit' (nothing asynchronous can run there) and on
 * SIGINT/SIGTERM/SIGHUP, so they must only do synchronous work (process.kill, fs.rmSync).
 * Normal teardown (destroy/stop in afterAll) unregisters them; this net only catches leftovers.
 */
type Cleanup = () => void;

const cleanups = new Set<Cleanup>();
let installed = false;

function runAll(): void {
  for (const fn of [...cleanups]) {
    cleanups.delete(fn);
    try {
      fn();
    } catch {
      // Best effort: one failed cleanup must not prevent the others.
    }
  }
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', runAll);
  // Signals matter more than 'exit' here: vitest ends its fork workers with SIGTERM, and Node does
  // not emit 'exit' for a process killed by a signal it does not handle.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      // `on`, not `once`: while this runs our listener must stay registered, or Node restores the
      // default disposition and a second signal (Ctrl-C sends one to every process of the group,
      // `timeout` re-sends it to its group) kills the process halfway through the cleanup.
      runAll();
      // A listener replaces the default "terminate" behaviour. If nobody else (vitest, the test)
      // handles the signal, re-raise it so the process still dies as it would have without us.
      if (process.listenerCount(sig) === 1) {
        process.off(sig, onSignal);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, onSignal);
  }
}

/** Registers a synchronous cleanup; returns a function that unregisters it (call after a normal teardown). */
export function registerExitCleanup(fn: Cleanup): () => void {
  install();
  cleanups.add(fn);
  return () => {
    cleanups.delete(fn);
  };
}
