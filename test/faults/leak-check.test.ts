// The suite's leak check (support/leak-check.ts) must fail on a service that really leaks, not
// only pass on one that does not: otherwise "RSS within 20%" proves nothing. Two instances of the
// service, started at once, get the same six identical request cycles: one with an injected leak
// of 32 KiB retained per HTTP request (support/leak-on-request.mjs, loaded with
// NODE_OPTIONS=--import; no product code involved), one with the same hook retaining nothing. The
// checker returns a verdict; this test asserts 'leak' for the first and 'ok' for the second.
import { Agent } from 'node:http';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { INSPECTOR_NODE_OPTIONS } from './support/gc.js';
import { leakCheckOverCycles, leakFigures, LEAK_BOUNDS } from './support/leak-check.js';
import { httpRequest } from './support/raw-http.js';
import { startRig, type Rig } from './support/rig.js';
import { printSummary } from './support/summary.js';

const LEAK_HOOK = fileURLToPath(new URL('./support/leak-on-request.mjs', import.meta.url));
/** Requests per cycle, and how many at once. */
const REQUESTS_PER_CYCLE = 600;
const CONCURRENCY = 20;
/**
 * 32 KiB x 600 requests x the 4 cycles between the warm (2nd) and the late (6th) steady state =
 * 75 MiB retained: about 80% of a ~95 MB service, four times the 20% bound.
 */
const LEAK_BYTES = 32 * 1024;

const CASES = [
  { name: 'leaking service (32 KiB retained per request)', bytes: LEAK_BYTES, expected: 'leak' },
  { name: 'service whose hook retains nothing', bytes: 0, expected: 'ok' },
] as const;

// Both services run at once (their checks are independent; the suite's budget is not).
describe('leak check', () => {
  const rigs = new Map<number, Rig>();
  beforeAll(async () => {
    const started = await Promise.allSettled(
      CASES.map(async ({ bytes }) => {
        const rig = await startRig({
          backend: 'local',
          bigRows: 2_000,
          env: { NODE_OPTIONS: `${INSPECTOR_NODE_OPTIONS} --import ${LEAK_HOOK}`, FAULTS_LEAK_BYTES_PER_REQUEST: String(bytes) },
        });
        rigs.set(bytes, rig);
        if ((await rig.A.backup()).status !== 'succeeded') throw new Error('the first backup failed');
      }),
    );
    for (const r of started) if (r.status === 'rejected') throw r.reason;
  });
  afterAll(async () => {
    await Promise.all([...rigs.values()].map((rig) => rig.tearDown()));
  });

  it.concurrent.for(CASES)("returns the verdict '$expected' on a $name", async ({ name, bytes, expected }, { expect }) => {
    const rig = rigs.get(bytes)!;
    const port = Number(rig.env.HTTP_PORT);
    const auth = { Authorization: `Bearer ${rig.token}` };
    const paths = [['/health', {}], ['/info', {}], ['/api/v1/backups', auth], ['/api/v1/backups/latest', auth], ['/api/v1/backups', {}]] as const;
    const failures: string[] = [];
    // One cycle: the same 600 requests at concurrency 20, each connection closed at the end.
    const cycle = async (): Promise<void> => {
      const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
      let next = 0;
      try {
        await Promise.all(
          Array.from({ length: CONCURRENCY }, async () => {
            for (let n = next++; n < REQUESTS_PER_CYCLE; n = next++) {
              const [path, headers] = paths[n % paths.length]!;
              const res = await httpRequest(agent, port, { method: 'GET', path, headers });
              if (res.error || res.status === null || res.status >= 500) failures.push(`${path}: ${res.status ?? res.error}`);
            }
          }),
        );
      } finally {
        agent.destroy();
      }
    };
    const check = await leakCheckOverCycles(rig.svc, cycle);
    printSummary(`leak-check (${name})`, {
      leakBytesPerRequest: bytes,
      requestsPerCycle: REQUESTS_PER_CYCLE,
      expectedVerdict: expected,
      ...leakFigures(check),
      boundPct: LEAK_BOUNDS.rssTolerance * 100,
      requestFailures: failures.length,
    });
    expect(failures.slice(0, 10)).toEqual([]);
    expect(check.verdict, check.reasons.join('; ')).toBe(expected);
  });
});
