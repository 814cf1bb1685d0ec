import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startService, type ServiceProcess } from './harness/index.js';

/**
 * The real server is built by another part of the project; these tests prove the harness against
 * a stand-in with the same contract: HTTP on HTTP_PORT with GET /health, logs on stdout/stderr,
 * graceful exit on SIGTERM. Its behaviour is steered by env vars.
 */
const STAND_IN = `
import { createServer } from 'node:http';
const mode = process.env.MODE ?? 'ok';
if (mode === 'crash') {
  console.error('boom: missing configuration');
  process.exit(3);
}
let healthCalls = 0;
const server = createServer((req, res) => {
  if (req.url === '/health') {
    healthCalls++;
    // 'slow-health': answers 503 to the first three probes, so "listening" and "healthy" differ.
    const healthy = mode !== 'slow-health' || healthCalls > 3;
    res.writeHead(healthy ? 200 : 503, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: healthy ? 'ok' : 'starting', healthCalls }));
    return;
  }
  if (req.url === '/env') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(process.env));
    return;
  }
  res.writeHead(404).end();
});
server.listen(Number(process.env.HTTP_PORT), '127.0.0.1', () => console.log('listening on ' + process.env.HTTP_PORT));
process.on('SIGTERM', () => {
  if (mode === 'ignore-sigterm') {
    console.log('ignoring SIGTERM');
    return;
  }
  console.log('shutting down');
  server.close(() => process.exit(0));
});
`;

describe('service harness (against a stand-in script)', () => {
  let dir: string;
  let entry: string;
  const started: ServiceProcess[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'service-harness-'));
    entry = join(dir, 'stand-in.mjs');
    await writeFile(entry, STAND_IN);
  });
  afterAll(async () => {
    await Promise.all(started.map((s) => s.kill()));
    await rm(dir, { recursive: true, force: true });
  });

  const start = async (env: Record<string, string>, opts: Parameters<typeof startService>[1] = {}): Promise<ServiceProcess> => {
    const svc = await startService({ HTTP_PORT: String(await freePort()), ...env }, { entry, timeoutMs: 10_000, ...opts });
    started.push(svc);
    return svc;
  };

  it('waits until the port answers, captures output, passes exactly the given env plus PATH/HOME/LANG', async () => {
    const svc = await start({ MODE: 'ok', SOME_SETTING: 'x' });
    expect(svc.baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    await svc.waitForLog(/^listening on \d+$/);

    const res = await fetch(`${svc.baseUrl}/env`);
    const env = (await res.json()) as Record<string, string>;
    const allowed = new Set(['HTTP_PORT', 'MODE', 'SOME_SETTING', 'PATH', 'HOME', 'LANG']);
    expect(Object.keys(env).filter((k) => !allowed.has(k))).toEqual([]);
    expect(env.SOME_SETTING).toBe('x');
    expect(env.PATH).toBe(process.env.PATH);

    expect(await svc.stop()).toEqual({ code: 0, signal: null });
    expect(svc.logs).toContain('shutting down');
  });

  it("waitFor 'healthy' waits for a 200 where 'listening' accepts any answer", async () => {
    const listening = await start({ MODE: 'slow-health' });
    expect((await fetch(`${listening.baseUrl}/health`)).status).toBe(503);

    const healthy = await start({ MODE: 'slow-health' }, { waitFor: 'healthy' });
    expect((await fetch(`${healthy.baseUrl}/health`)).status).toBe(200);
  });

  it('rejects with the captured output when the process exits early', async () => {
    const err = await start({ MODE: 'crash' }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toMatch(/exited early \(code 3/);
    expect(err?.message).toContain('boom: missing configuration');
  });

  it('stop() kills and rejects when SIGTERM is ignored past the timeout; kill() is SIGKILL', async () => {
    const stubborn = await start({ MODE: 'ignore-sigterm' });
    // First make sure it has its handler running and ignores SIGTERM: otherwise, on a loaded
    // machine, stop()'s 500 ms could pass before the child even handled the signal.
    stubborn.child.kill('SIGTERM');
    await stubborn.waitForLog('ignoring SIGTERM', 30_000);
    await expect(stubborn.stop('SIGTERM', 500)).rejects.toThrow(/did not exit within 500 ms/);
    expect(await stubborn.exited).toEqual({ code: null, signal: 'SIGKILL' });

    const other = await start({ MODE: 'ok' });
    expect(await other.kill()).toEqual({ code: null, signal: 'SIGKILL' });
  });

  it('refuses to start without HTTP_PORT, or when the entry does not exist', async () => {
    await expect(startService({}, { entry })).rejects.toThrow(/HTTP_PORT/);
    await expect(startService({ HTTP_PORT: '1' }, { entry: join(dir, 'missing.js') })).rejects.toThrow(/does not exist/);
  });
});
