import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { createServer } from 'node:net';
import { text } from 'node:stream/consumers';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient } from './client.js';
import { BackupServiceError } from './errors.js';
import { json, problem, serveBackup, startTestServer, TOKEN, type TestServer } from './test-server.test-helper.js';

const ID = 'backup_20260510T010000Z.sql.gz';

function job(status: 'queued' | 'running' | 'succeeded' | 'failed', jobId = randomUUID()) {
  const done = status === 'succeeded' || status === 'failed';
  return {
    jobId,
    kind: 'backup' as const,
    status,
    triggeredBy: 'api',
    startedAt: status === 'queued' ? null : '2026-05-10T01:00:00Z',
    finishedAt: done ? '2026-05-10T01:01:14Z' : null,
    durationMs: done ? 74123 : null,
    errorMessage: status === 'failed' ? 'pg_dump exited 1' : null,
    backupId: status === 'succeeded' ? ID : null,
    progress: null,
  };
}

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe('triggerBackup', () => {
  it('returns a running backup (409) as a value carrying the running job id', async () => {
    const running = randomUUID();
    server = await startTestServer((_req, res) =>
      problem(res, 409, 'Backup already running', `job ${running} is running`, 'BACKUP_RUNNING', { jobId: running }),
    );
    const result = await createClient({ baseUrl: server.baseUrl, token: TOKEN }).triggerBackup();
    expect(result).toEqual({
      kind: 'conflict',
      jobId: running,
      conflict: expect.objectContaining({ status: 409, jobId: running, code: 'BACKUP_RUNNING' }),
    });
    expect(server.requests[0]).toMatchObject({ method: 'POST', url: '/api/v1/backups' });
  });

  it('returns a started job (202)', async () => {
    const started = job('queued');
    server = await startTestServer((_req, res) => json(res, 202, started));
    const result = await createClient({ baseUrl: server.baseUrl, token: TOKEN }).triggerBackup();
    expect(result).toEqual({ kind: 'started', job: started });
  });
});

describe('triggerDrill', () => {
  it('starts a drill of a backup (202), reports a running drill (409) as a value, and throws NOT_FOUND for an unknown backup', async () => {
    const started = { ...job('queued'), kind: 'drill' as const, backupId: ID };
    const running = randomUUID();
    server = await startTestServer((_req, res, n) => {
      if (n === 1) json(res, 202, started);
      else if (n === 2) problem(res, 409, 'Conflict', `job ${running} is running`, 'DRILL_RUNNING', { jobId: running });
      else problem(res, 404, 'Not Found', 'no such backup', 'NOT_FOUND');
    });
    const client = createClient({ baseUrl: server.baseUrl, token: TOKEN });
    expect(await client.triggerDrill(ID)).toEqual({ kind: 'started', job: started });
    expect(await client.triggerDrill('latest')).toEqual({
      kind: 'conflict',
      jobId: running,
      conflict: expect.objectContaining({ status: 409, jobId: running, code: 'DRILL_RUNNING' }),
    });
    expect(await client.triggerDrill('backup_20200101T000000Z.sql.gz').catch((e: unknown) => e)).toMatchObject({ code: 'NOT_FOUND', status: 404 });
    expect(server.requests.map((r) => [r.method, r.url])).toEqual([
      ['POST', `/api/v1/backups/${ID}/drill`],
      ['POST', '/api/v1/backups/latest/drill'],
      ['POST', '/api/v1/backups/backup_20200101T000000Z.sql.gz/drill'],
    ]);
  });
});

describe('pin, unpin and retentionPlan (request shape; the behaviour is in pins-and-plan.test.ts against the service)', () => {
  const stored = (pinned: { at: string; reason: string | null } | null) => ({
    id: ID, createdAt: '2026-05-10T01:00:00Z', sizeBytes: 3, sha256: 'a'.repeat(64), pgVersion: '15.18', durationMs: 7, triggeredBy: 'api', encryption: null, drill: null, pinned,
  });

  it('sends PUT with {reason} only when one is given, DELETE for unpin, and returns the backup', async () => {
    const bodies: { type: string | undefined; body: string }[] = [];
    const pin = { at: '2026-05-12T04:00:00Z', reason: 'before the migration' };
    server = await startTestServer((req: IncomingMessage, res) => {
      void text(req).then((body) => {
        bodies.push({ type: req.headers['content-type'], body });
        json(res, 200, stored(req.method === 'DELETE' ? null : pin));
      });
    });
    const client = createClient({ baseUrl: server.baseUrl, token: TOKEN });
    expect((await client.pin(ID, { reason: pin.reason })).pinned).toEqual(pin);
    expect((await client.pin(ID)).pinned).toEqual(pin);
    expect((await client.unpin(ID)).pinned).toBeNull();
    expect(server.requests.map((r) => [r.method, r.url])).toEqual([
      ['PUT', `/api/v1/backups/${ID}/pin`],
      ['PUT', `/api/v1/backups/${ID}/pin`],
      ['DELETE', `/api/v1/backups/${ID}/pin`],
    ]);
    expect(bodies).toEqual([
      { type: 'application/json', body: JSON.stringify({ reason: pin.reason }) },
      { type: undefined, body: '' },
      { type: undefined, body: '' },
    ]);
  });

  it('refuses a non-id (and "latest") and a reason the service would refuse before sending anything', async () => {
    server = await startTestServer(() => undefined);
    const client = createClient({ baseUrl: server.baseUrl, token: TOKEN });
    for (const id of ['../../etc/passwd', 'latest', `${ID}/../x`]) {
      expect(await client.pin(id).catch((e: unknown) => e), id).toMatchObject({ name: 'BackupServiceError', code: 'NOT_FOUND', status: null });
      expect(await client.unpin(id).catch((e: unknown) => e), id).toMatchObject({ name: 'BackupServiceError', code: 'NOT_FOUND', status: null });
    }
    await expect(client.pin(ID, { reason: '   ' })).rejects.toThrow(/reason must be a string of 1-500 characters/);
    await expect(client.pin(ID, { reason: 'x'.repeat(501) })).rejects.toBeInstanceOf(RangeError);
    expect(server.requests).toHaveLength(0);
  });

  it('reports a plan that breaks the contract as INVALID_RESPONSE', async () => {
    server = await startTestServer((_req, res) => json(res, 200, { policy: {}, evaluatedAt: '2026-05-12T04:00:00Z', backups: [] }));
    const err = await createClient({ baseUrl: server.baseUrl, token: TOKEN }).retentionPlan().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'INVALID_RESPONSE', status: 200 });
    expect(server.requests[0]).toMatchObject({ method: 'GET', url: '/api/v1/retention' });
  });
});

describe('BackupServiceError', () => {
  it('carries status, code and the problem+json body', async () => {
    server = await startTestServer((_req, res) => problem(res, 404, 'Not Found', 'no such job', 'JOB_NOT_FOUND'));
    const err = await createClient({ baseUrl: server.baseUrl, token: TOKEN }).getJob(randomUUID()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackupServiceError);
    expect(err).toMatchObject({
      name: 'BackupServiceError',
      code: 'NOT_FOUND',
      status: 404,
      problem: { status: 404, title: 'Not Found', detail: 'no such job', code: 'JOB_NOT_FOUND' },
    });
    expect((err as Error).message).toContain('no such job');
  });

  it('says UNAUTHORIZED for a wrong token without ever showing a token', async () => {
    server = await startTestServer(() => undefined);
    const wrong = 'wrong-token-that-must-not-leak-0123456789';
    const err = await createClient({ baseUrl: server.baseUrl, token: wrong }).listBackups().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'UNAUTHORIZED', status: 401 });
    expect(String((err as Error).message)).not.toContain(wrong);
    expect(String((err as Error).message)).not.toContain(TOKEN);
  });

  it('names the base URL and the system error when the service cannot be reached, never the token', async () => {
    // A port that was free a moment ago: connecting is refused.
    const probe = createServer();
    probe.listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const port = (probe.address() as { port: number }).port;
    await new Promise((resolve) => probe.close(resolve));

    const client = createClient({ baseUrl: `http://127.0.0.1:${port}/`, token: TOKEN });
    const err = await client.listBackups().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'UNREACHABLE', status: null, problem: null });
    const message = (err as Error).message;
    expect(message).toBe(`cannot reach db-backup-service at http://127.0.0.1:${port}: ECONNREFUSED`);
    expect(message).not.toContain(TOKEN);
  });

  it('refuses a base URL with credentials without echoing them', () => {
    expect(() => createClient({ baseUrl: 'http://user:secret@127.0.0.1:8080', token: TOKEN })).toThrow(/must not contain user info \(got http:\/\/127\.0\.0\.1:8080\)/);
  });

  it('reports a body that breaks the contract as INVALID_RESPONSE', async () => {
    server = await startTestServer((_req, res) => json(res, 200, [{ id: ID }]));
    const err = await createClient({ baseUrl: server.baseUrl, token: TOKEN }).listBackups().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'INVALID_RESPONSE', status: 200 });
  });

  it('times out a call that gets no answer', async () => {
    server = await startTestServer(() => undefined); // never answers
    const err = await createClient({ baseUrl: server.baseUrl, token: TOKEN, timeoutMs: 200 }).listBackups().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'TIMEOUT', status: null });
  });
});

describe('latestBackup', () => {
  it('returns null when there is no successful backup yet (404)', async () => {
    server = await startTestServer((_req, res) => problem(res, 404, 'Not Found', 'no successful backup yet', 'NO_BACKUP'));
    expect(await createClient({ baseUrl: server.baseUrl, token: TOKEN }).latestBackup()).toBeNull();
  });
});

describe('waitForJob', () => {
  it('polls until the job finishes and returns it (failed is a value)', async () => {
    const id = randomUUID();
    server = await startTestServer((_req, res, n) => json(res, 200, job(n < 3 ? 'running' : 'failed', id)));
    const polled: string[] = [];
    const done = await createClient({ baseUrl: server.baseUrl, token: TOKEN }).waitForJob(id, { intervalMs: 10, onPoll: (j) => polled.push(j.status) });
    expect(done.status).toBe('failed');
    expect(polled).toEqual(['running', 'running', 'failed']);
  });

  it('calls onProgress with each changed progress and its job; not while it is null, not twice for the same', async () => {
    const id = randomUUID();
    const at = (dumpedBytes: number, elapsedMs: number) => ({ dumpedBytes, storedBytes: dumpedBytes / 4, elapsedMs, bytesPerSecond: Math.round((dumpedBytes * 1000) / elapsedMs), estimatedTotalBytes: 4_000 });
    const states = [
      { ...job('queued', id), progress: null },
      { ...job('running', id), progress: null },
      { ...job('running', id), progress: at(1_000, 250) },
      { ...job('running', id), progress: at(1_000, 250) },
      { ...job('running', id), progress: at(2_000, 500) },
      { ...job('succeeded', id), progress: at(4_000, 900) },
    ];
    server = await startTestServer((_req, res, n) => json(res, 200, states[n - 1]));
    const seen: [number, string][] = [];
    const done = await createClient({ baseUrl: server.baseUrl, token: TOKEN }).waitForJob(id, {
      intervalMs: 5,
      onProgress: (progress, polled) => seen.push([progress.dumpedBytes, polled.status]),
    });
    expect(seen).toEqual([
      [1_000, 'running'],
      [2_000, 'running'],
      [4_000, 'succeeded'],
    ]);
    expect(done.progress).toEqual(at(4_000, 900));
  });

  it('throws JOB_WAIT_TIMEOUT at the deadline', async () => {
    const id = randomUUID();
    server = await startTestServer((_req, res) => json(res, 200, job('running', id)));
    const err = await createClient({ baseUrl: server.baseUrl, token: TOKEN })
      .waitForJob(id, { intervalMs: 20, timeoutMs: 100 })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'JOB_WAIT_TIMEOUT' });
  });
});

describe('download', () => {
  it('streams the body with id, size and checksum from the headers', async () => {
    const data = Buffer.from('not really gzip, but bytes');
    server = await startTestServer((req, res) => serveBackup(req, res, ID, data));
    const dl = await createClient({ baseUrl: server.baseUrl, token: TOKEN }).download('latest', { range: { start: 4 } });
    const chunks: Buffer[] = [];
    for await (const chunk of dl.stream) chunks.push(chunk as Buffer);
    expect(dl).toMatchObject({ id: ID, status: 206, sizeBytes: data.length, contentLength: data.length - 4, range: { start: 4, end: data.length - 1, total: data.length } });
    expect(Buffer.concat(chunks).equals(data.subarray(4))).toBe(true);
  });

  it('says which format a download is (from its id), and refuses a Content-Type of the other format', async () => {
    const zst = 'backup_20260511T010000Z.sql.zst';
    const data = Buffer.from('zstd bytes, as far as the SDK cares');
    const types = ['application/zstd', 'application/octet-stream', 'application/gzip'];
    server = await startTestServer((req, res, n) => serveBackup(req, res, zst, data, { contentType: types[n - 1] ?? '' }));
    const client = createClient({ baseUrl: server.baseUrl, token: TOKEN });
    for (const expected of ['application/zstd', 'application/octet-stream (a proxy)']) {
      const dl = await client.download(zst);
      dl.stream.destroy();
      expect(dl, expected).toMatchObject({ id: zst, format: 'zstd', sizeBytes: data.length });
    }
    const err = await client.download(zst).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'INVALID_RESPONSE' });
    expect((err as Error).message).toContain(`as application/gzip, but ${zst} is a zstd backup (application/zstd)`);
  });

  it('refuses an id that is not a backup id before sending anything', async () => {
    server = await startTestServer(() => undefined);
    const err = await createClient({ baseUrl: server.baseUrl, token: TOKEN }).download('../../etc/passwd').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'NOT_FOUND' });
    expect(server.requests).toHaveLength(0);
  });

  it('closes the connection when the consumer destroys the stream (e.g. its client went away)', async () => {
    let closed: Promise<unknown> = Promise.resolve();
    server = await startTestServer((_req, res) => {
      closed = once(res, 'close');
      res.writeHead(200, { 'content-disposition': `attachment; filename="${ID}"`, 'content-length': '10000000' });
      res.write(Buffer.alloc(1000));
    });
    const dl = await createClient({ baseUrl: server.baseUrl, token: TOKEN }).download(ID);
    dl.stream.destroy();
    await closed; // resolves only when the server-side socket closes
    expect(dl.stream.destroyed).toBe(true);
  });
});
