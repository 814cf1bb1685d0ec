import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePort } from './harness/index.js';

describe('freePort', () => {
  it('hands out bindable ports below the ephemeral range, never the same one twice', async () => {
    const ephemeralStart = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    const ports: number[] = [];
    for (let i = 0; i < 20; i++) ports.push(await freePort());
    expect(new Set(ports).size).toBe(ports.length);
    // Not a port the kernel hands to a bind to port 0 or to an outgoing connection (ports.ts),
    // unless this machine's ephemeral range starts too low to leave room below it.
    if (ephemeralStart - 20_000 >= 1_000) {
      for (const port of ports) {
        expect(port).toBeGreaterThanOrEqual(20_000);
        expect(port).toBeLessThan(ephemeralStart);
      }
    }
    const server = createServer();
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(ports[0], '127.0.0.1', resolve));
    await new Promise((resolve) => server.close(resolve));
  });
});
