// A full garbage collection in the service process, for memory measurements that mean "what is
// still referenced" rather than "what V8 has not bothered to collect yet".
//
// Why: after minutes of load V8 keeps an idle heap at its high-water mark (seen here: heap total
// 165 MB with 27 MB used, for minutes, no collection while nothing allocates). RSS then says
// nothing about leaks. The service is started with NODE_OPTIONS=--inspect-port=0 (see rig.ts):
// nothing listens until SIGUSR1 activates the inspector on a random 127.0.0.1 port, which the
// service announces on stderr; HeapProfiler.collectGarbage then runs V8's full, memory-reducing GC.
import type { ServiceProcess } from '../../harness/index.js';

export const INSPECTOR_NODE_OPTIONS = '--inspect-port=0';

const activated = new WeakSet<ServiceProcess>();

/** Runs a full GC in the service (activating its inspector on first use); bounded to 15 s. */
export async function forceGc(svc: ServiceProcess): Promise<void> {
  if (!activated.has(svc)) {
    process.kill(svc.pid, 'SIGUSR1');
    activated.add(svc);
  }
  const line = await svc.waitForLog(/Debugger listening on ws:\/\/127\.0\.0\.1:\d+\//, 10_000);
  const url = /ws:\/\/127\.0\.0\.1:\d+\/\S+/.exec(line)?.[0];
  if (!url) throw new Error(`no inspector URL in: ${line}`);
  const ws = new WebSocket(url);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('inspector: no answer to HeapProfiler.collectGarbage within 15 s')), 15_000);
      ws.addEventListener('open', () => ws.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' })));
      ws.addEventListener('message', (event) => {
        const msg = JSON.parse(String(event.data)) as { id?: number; error?: { message: string } };
        if (msg.id !== 1) return;
        clearTimeout(timer);
        if (msg.error) reject(new Error(`inspector: ${msg.error.message}`));
        else resolve();
      });
      ws.addEventListener('error', () => {
        clearTimeout(timer);
        reject(new Error(`inspector: cannot connect to ${url}`));
      });
    });
  } finally {
    ws.close();
  }
}
