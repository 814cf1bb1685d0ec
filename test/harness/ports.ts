import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/**
 * Ports are drawn from below the kernel's ephemeral range. A port the kernel picked for a bind to
 * port 0 is in that range, and once released it is the kernel's to hand out again: to the next
 * process binding port 0 (test servers, inspectors, the S3 emulator) or, rarely, as the local port
 * of an outgoing connection. On a machine running several test suites that happens between
 * freePort() and the caller's bind often enough to matter, and also while a test has stopped a
 * server it restarts on the same port (PostgreSQL or S3 outages in the fault suite). Below the
 * range only processes that bind an explicit port can collide, and they draw at random too.
 */
const LOWEST = 20_000;

function ephemeralRangeStart(): number {
  try {
    const start = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(start) ? start : 32_768;
  } catch {
    return 32_768;
  }
}

/** Ports this process handed out already: never twice (a caller may not have bound it yet). */
const handedOut = new Set<number>();

function tryBind(port: number, host: string): Promise<number | null> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(null));
    srv.listen({ port, host, exclusive: true }, () => {
      const addr = srv.address();
      const bound = addr !== null && typeof addr !== 'string' ? addr.port : null;
      srv.close(() => resolve(bound));
    });
  });
}

/**
 * A TCP port on 127.0.0.1 that is free now: random, below the ephemeral range (see above), never
 * the same twice in this process. Falls back to a kernel-chosen port where that range starts too
 * low to leave room.
 *
 * The port is released again before this resolves, so another process can still take it before
 * the caller binds it (far less likely than with a kernel-chosen port). Callers that start a server
 * on it (PostgreSQL, the service) should treat "address already in use" as a reason to pick
 * another port and retry, not as a test failure.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const highest = ephemeralRangeStart() - 1;
  if (highest - LOWEST >= 1_000) {
    for (let attempt = 0; attempt < 50; attempt++) {
      const port = LOWEST + Math.floor(Math.random() * (highest - LOWEST + 1));
      if (handedOut.has(port)) continue;
      if ((await tryBind(port, host)) === port) {
        handedOut.add(port);
        return port;
      }
    }
  }
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await tryBind(0, host);
    if (port !== null && !handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('freePort: found no free port');
}
