// Downloads of a large backup: a client that leaves releases the storage stream at once, and a
// storage object that breaks mid-body never reaches the client as a complete-looking file. The
// backup (~50 MB) spans many times the download's ring of buffers, so the slices below cross
// buffer boundaries and reuse buffers.
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, readlink, mkdtemp, rm, truncate, unlink } from 'node:fs/promises';
import { once } from 'node:events';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backup, Job } from '@db-backup-service/contract';
import { api, freePort, pollUntil, startPostgres, startService, type Api, type PostgresCluster, type ServiceProcess } from './harness/index.js';

const TOKEN = randomBytes(32).toString('hex');

let pg: PostgresCluster;
let dir: string;
let svc: ServiceProcess;
let A: Api;
let job: Job;

/** Paths the service process has open (its /proc fd table). */
async function openFiles(pid: number): Promise<string[]> {
  const fds = await readdir(`/proc/${pid}/fd`);
  const targets = await Promise.all(fds.map((fd) => readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')));
  return targets.filter(Boolean);
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
const MiB = 1024 * 1024;

/** Reads `min` bytes or more of a response body (or all of it), then returns the reader with the count. */
async function readAtLeast(res: Response, min: number): Promise<{ reader: ReadableStreamDefaultReader<Uint8Array>; received: number }> {
  const reader = res.body!.getReader();
  let received = 0;
  while (received < min) {
    const { done, value } = await reader.read();
    if (done) break;
    received += value.length;
  }
  return { reader, received };
}

/** Reads the rest of a body: 'complete' with the byte count, or 'error' when the transfer was cut. */
async function readRest(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<{ outcome: 'complete' | 'error'; received: number }> {
  let received = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { outcome: 'complete', received };
      received += value.length;
    }
  } catch {
    return { outcome: 'error', received };
  }
}

beforeAll(async () => {
  pg = await startPostgres({ database: 'app' });
  // ~50 MB of incompressible bytes: the dump's hex text compresses only to about half.
  await pg.query(
    `CREATE TABLE blob (id int PRIMARY KEY, data bytea);
     INSERT INTO blob SELECT g, (SELECT decode(string_agg(md5(random()::text || g || i), ''), 'hex') FROM generate_series(1, 1000) i)
     FROM generate_series(1, 3300) g`,
    [],
    'app',
  );
  dir = await mkdtemp(join(tmpdir(), 'downloads-'));
  svc = await startService(
    {
      DB_HOST: pg.host, DB_PORT: String(pg.port), DB_NAME: 'app', DB_USER: pg.user, DB_PASSWORD: pg.password,
      STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: dir, API_TOKEN: TOKEN, HTTP_PORT: String(await freePort()), BACKUP_COMPRESSION_LEVEL: '1',
    },
    { waitFor: 'healthy' },
  );
  A = api(svc.baseUrl, TOKEN);
  job = await A.backup();
  expect(job.status).toBe('succeeded');
});
afterAll(async () => {
  await svc?.stop();
  await pg?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('large downloads', () => {
  it('releases the storage stream as soon as the client disconnects mid-body', async () => {
    const file = join(dir, job.backupId!);
    const controller = new AbortController();
    const res = await A.request(`/api/v1/backups/${job.backupId}/download`, { signal: controller.signal });
    expect(Number(res.headers.get('content-length'))).toBeGreaterThan(50 * 1024 * 1024);
    const reader = res.body!.getReader();
    let received = 0;
    while (received < 1024 * 1024) received += (await reader.read()).value?.length ?? 0;
    // Mid-body: the service is reading the backup file right now.
    expect(await openFiles(svc.pid)).toContain(file);
    controller.abort();
    await pollUntil(async () => ((await openFiles(svc.pid)).includes(file) ? undefined : true), {
      timeoutMs: 5_000, intervalMs: 20, what: 'the service to close the backup file',
    });
    await pollUntil(async () => (svc.logs.some((l) => l.includes('"aborted":true')) ? true : undefined), { timeoutMs: 5_000, what: 'the access log of the aborted download' });
    // The service is fine afterwards.
    expect((await fetch(`${svc.baseUrl}/health`)).status).toBe(200);
  });

  it('cuts the response when the stored object ends early, so the client never sees a complete file', async () => {
    const victim = await A.backup();
    const res = await A.request(`/api/v1/backups/${victim.backupId}/download`);
    const declared = Number(res.headers.get('content-length'));
    const reader = res.body!.getReader();
    let received = 0;
    while (received < 1024 * 1024) received += (await reader.read()).value?.length ?? 0;
    // Truncate the object behind the service's back while it streams.
    await truncate(join(dir, victim.backupId!), 10 * 1024 * 1024);
    const outcome = await (async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return 'complete';
          received += value.length;
        }
      } catch {
        return 'error';
      }
    })();
    expect(outcome).toBe('error');
    expect(received).toBeLessThan(declared);
    // The client sees the cut before the service's log line about it has crossed the pipe: wait for it.
    await svc.waitForLog('storage stream ended early', 30_000);
  });

  it('serves Range slices byte-exact (first byte, last byte, a slice across buffers, to the end, a suffix) and the whole file as stored', async () => {
    const stored = await readFile(join(dir, job.backupId!));
    const size = stored.length;
    const listed = (await A.json<Backup[]>('/api/v1/backups')).find((b) => b.id === job.backupId)!;
    expect(sha256(stored)).toBe(listed.sha256);
    const url = `/api/v1/backups/${job.backupId}/download`;

    const whole = await A.request(url);
    expect(whole.status).toBe(200);
    const body = Buffer.from(await whole.arrayBuffer());
    expect(body.length).toBe(size);
    expect(sha256(body)).toBe(listed.sha256);
    expect(whole.headers.get('repr-digest')).toBe(`sha-256=:${Buffer.from(listed.sha256, 'hex').toString('base64')}:`);

    const slices: [header: string, start: number, end: number][] = [
      ['bytes=0-0', 0, 0],
      [`bytes=${size - 1}-${size - 1}`, size - 1, size - 1],
      // Not aligned to any buffer size, and longer than the whole ring: the ring wraps several times.
      [`bytes=${MiB - 3}-${5 * MiB + 6}`, MiB - 3, 5 * MiB + 6],
      [`bytes=${size - 3 * MiB - 17}-`, size - 3 * MiB - 17, size - 1],
      // A last byte past the end is clamped to it.
      [`bytes=${size - 10}-${size + 1000}`, size - 10, size - 1],
      ['bytes=-1000', size - 1000, size - 1],
    ];
    for (const [range, start, end] of slices) {
      const res = await A.request(url, { headers: { Range: range } });
      expect(res.status, range).toBe(206);
      expect(res.headers.get('content-range'), range).toBe(`bytes ${start}-${end}/${size}`);
      expect(Number(res.headers.get('content-length')), range).toBe(end - start + 1);
      const part = Buffer.from(await res.arrayBuffer());
      expect(part.length, range).toBe(end - start + 1);
      expect(part.equals(stored.subarray(start, end + 1)), `${range}: the bytes differ`).toBe(true);
    }
  });

  it('leaves no file or socket open after clients that leave at any point (before reading, mid-body), and keeps serving', async () => {
    const file = join(dir, job.backupId!);
    const url = `/api/v1/backups/${job.backupId}/download`;
    const before = (await openFiles(svc.pid)).length;
    // 0: the client reads nothing, so the service waits for the socket with its buffers full.
    for (const readFirst of [0, 1, 3 * MiB, 7 * MiB, 0, 20 * MiB]) {
      const controller = new AbortController();
      const res = await A.request(url, { signal: controller.signal });
      expect(res.status).toBe(200);
      if (readFirst > 0) await readAtLeast(res, readFirst);
      controller.abort();
    }
    await pollUntil(
      async () => {
        const open = await openFiles(svc.pid);
        return !open.includes(file) && open.length <= before ? true : undefined;
      },
      { timeoutMs: 3_000, intervalMs: 20, what: `the service to close the backup file and the sockets (${before} fds before)` },
    );
    const res = await A.request(url);
    const body = Buffer.from(await res.arrayBuffer());
    expect(sha256(body)).toBe(sha256(await readFile(file)));
    expect((await openFiles(svc.pid)).includes(file)).toBe(false);
  });

  it('closes the file of a pipelined download whose connection closes while it waits behind the first response', async () => {
    const file = join(dir, job.backupId!);
    const path = `/api/v1/backups/${job.backupId}/download`;
    const socket = connect(svc.port, '127.0.0.1');
    await once(socket, 'connect');
    // Two requests in one write: the second response is queued until the first is sent, which never happens.
    const get = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`;
    socket.write(get + get);
    let received = 0;
    for await (const chunk of socket) {
      received += (chunk as Buffer).length;
      if (received >= MiB) break; // ends the iteration and destroys the socket
    }
    await pollUntil(async () => ((await openFiles(svc.pid)).includes(file) ? undefined : true), {
      timeoutMs: 3_000, intervalMs: 20, what: 'the service to close the backup file of both downloads',
    });
    expect((await fetch(`${svc.baseUrl}/health`)).status).toBe(200);
  });

  it('cuts the response when the file is emptied mid-download (never a silent short 200)', async () => {
    const victim = await A.backup();
    const res = await A.request(`/api/v1/backups/${victim.backupId}/download`);
    expect(res.status).toBe(200);
    const declared = Number(res.headers.get('content-length'));
    const { reader, received } = await readAtLeast(res, MiB);
    await truncate(join(dir, victim.backupId!), 0);
    const rest = await readRest(reader);
    expect(rest.outcome).toBe('error');
    expect(received + rest.received).toBeLessThan(declared);
    await pollUntil(async () => ((await openFiles(svc.pid)).includes(join(dir, victim.backupId!)) ? undefined : true), {
      timeoutMs: 5_000, intervalMs: 20, what: 'the service to close the emptied file',
    });
  });

  it('sends a backup deleted mid-download (by retention elsewhere) whole and exact: the open file keeps its bytes', async () => {
    const victim = await A.backup();
    const file = join(dir, victim.backupId!);
    const stored = await readFile(file);
    const res = await A.request(`/api/v1/backups/${victim.backupId}/download`);
    const reader = res.body!.getReader();
    const chunks: Buffer[] = [];
    let received = 0;
    while (received < MiB) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(Buffer.from(value));
      received += value.length;
    }
    await unlink(file);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(Buffer.from(value));
    }
    expect(sha256(Buffer.concat(chunks))).toBe(sha256(stored));
  });
});
