// The express app in process: real LocalStorage in a temp directory, the real engine (never
// started, i.e. in the state it has while shutting down: it accepts no backups), the real health
// probes against a port where no PostgreSQL listens, and a logger that keeps what it writes.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, request, type Server } from 'node:http';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { constants, gzipSync, zstdCompressSync } from 'node:zlib';
import winston from 'winston';
import { afterEach, describe, expect, it } from 'vitest';
import { apiContract, compressionOfId, type BackupSidecar } from '@db-backup-service/contract';
import { freePort, pollUntil } from '../../../test/harness/index.js';
import { loadConfig } from '../config/config.js';
import { BackupIndex } from '../backup-index.js';
import { checkDatabase } from '../db.js';
import { silentLogger } from '../logger.js';
import { BackupEngine } from '../engine.js';
import { LocalStorage } from '../storage/local-storage.js';
import type { Storage } from '../storage/storage.js';
import { createApp } from './app.js';
import { HealthCheck } from './health.js';
import { Metrics } from './metrics.js';
import { NO_DRILLS } from '../drill/no-drills.test-helper.js';
import { storageWith } from '../storage/storage-with.test-helper.js';

const TOKEN = 'test-token-0123456789abcdef0123456789abcdef';
const DB_USER = 'backup_role_for_app_test';
const BACKUP_ID = 'backup_20260510T010000Z.sql.gz';

interface LogEntry {
  level: string;
  message: string;
  [field: string]: unknown;
}

interface TestApp {
  readonly url: string;
  readonly dir: string;
  readonly dbPort: number;
  readonly logs: LogEntry[];
  readonly engine: BackupEngine;
  readonly probeCalls: () => number;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/**
 * The app's local storage as a backend without `openReader` (as S3 is), so downloads take the
 * stream path; `get` may be replaced (a stream that ends early or fails).
 */
function streamOnly(get?: Storage['get']): (local: LocalStorage) => Storage {
  return (local) => storageWith(local, { openReader: undefined, ...(get ? { get } : {}) });
}

async function startApp(backend: (local: LocalStorage) => Storage = (local) => local): Promise<TestApp> {
  const root = await mkdtemp(join(tmpdir(), 'app-test-'));
  const dir = join(root, 'backups');
  await mkdir(dir);
  const dbPort = await freePort();
  const config = loadConfig({
    DB_HOST: '127.0.0.1', DB_PORT: String(dbPort), DB_NAME: 'appdb', DB_USER, DB_PASSWORD: 'a-password-nobody-sees',
    API_TOKEN: TOKEN, STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: dir, LOG_LEVEL: 'debug',
  });
  const logs: LogEntry[] = [];
  const logger = winston.createLogger({
    level: 'debug',
    transports: [new winston.transports.Stream({ stream: new Writable({ objectMode: true, write: (entry: LogEntry, _enc, done) => done(void logs.push(entry)) }) })],
  });
  const storage = backend(new LocalStorage(dir));
  const engine = new BackupEngine({
    config,
    storage,
    logger,
    runBackup: () => Promise.reject(new Error('no backup runs in these tests')),
    exclusive: (fn) => fn().then(() => true),
    drills: NO_DRILLS,
  });
  let calls = 0;
  const health = new HealthCheck(
    {
      database: (signal) => {
        calls++;
        return checkDatabase(config.db, signal);
      },
      storage: (signal) => storage.check({ signal }),
    },
    logger,
  );
  const metrics = new Metrics(engine.index, engine.jobs);
  const app = createApp({ config, engine, storage, health, metrics, logger, pgDump: () => ({ version: '15.18', clients: [{ version: '15.18', binDir: '/usr/lib/postgresql/15/bin' }], pinned: false }) });
  const server: Server = createServer(app).listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await rm(root, { recursive: true, force: true });
  });
  return { url: `http://127.0.0.1:${port}`, dir, dbPort, logs, engine, probeCalls: () => calls };
}

/** Stores one backup (dump + sidecar) the way the pipeline leaves it, and loads it into the index. */
async function storeBackup(app: TestApp, id = BACKUP_ID): Promise<{ body: Buffer; sidecar: BackupSidecar }> {
  const sql = Buffer.from('-- a dump\nSELECT 1;\n-- PostgreSQL database dump complete\n');
  const format = compressionOfId(id);
  const body = format === 'zstd' ? zstdCompressSync(sql, { params: { [constants.ZSTD_c_checksumFlag]: 1 } }) : gzipSync(sql);
  const sidecar: BackupSidecar = {
    id, createdAt: '2026-05-10T01:00:00.000Z', sizeBytes: body.length, sha256: createHash('sha256').update(body).digest('hex'),
    pgVersion: '15.18', durationMs: 1234, triggeredBy: 'api', pgDumpVersion: '15.18', uncompressedSizeBytes: 60,
    compression: { format, level: format === 'zstd' ? 3 : 6 }, database: 'appdb', serviceVersion: '0.1.0', format: 'plain', contents: null, encryption: null,
  };
  await writeFile(join(app.dir, id), body);
  await writeFile(join(app.dir, `${id}.meta.json`), JSON.stringify(sidecar));
  await app.engine.index.refresh();
  return { body, sidecar };
}

const auth = { Authorization: `Bearer ${TOKEN}` };

function withBody(url: string, method: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = request(url, { method, headers: { ...auth, 'Content-Type': 'text/plain', 'Content-Length': String(body.length) } }, (res) => {
      answered = true;
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk)).on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    // The service answers without reading the body and closes: a write error after the answer is expected.
    req.on('error', (error) => answered || reject(error)).end(body);
  });
}
const accessLines = (app: TestApp) => app.logs.filter((l) => l.message === 'http request');

describe('/health and /health/live', () => {
  it('/health names the DOWN component without the error text; the text goes to the log once per change', async () => {
    const app = await startApp();
    const answers: string[] = [];
    // Several real checks (the 1.5 s cache must expire in between), all with the database down.
    await pollUntil(
      async () => {
        const res = await fetch(`${app.url}/health`);
        answers.push(await res.text());
        expect(res.status).toBe(503);
        return app.probeCalls() >= 3 ? true : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: 'three database checks' },
    );
    expect(JSON.parse(answers.at(-1)!)).toEqual({ status: 'DOWN', components: { database: { status: 'DOWN' }, storage: { status: 'UP' } } });
    for (const answer of answers) {
      for (const leak of [String(app.dbPort), '127.0.0.1', DB_USER, 'ECONNREFUSED', app.dir]) expect(answer).not.toContain(leak);
    }
    const databaseLines = app.logs.filter((l) => l.message === 'health: database DOWN');
    expect(databaseLines).toHaveLength(1);
    expect(databaseLines[0]).toMatchObject({ level: 'warn', error: expect.stringContaining(String(app.dbPort)) });

    // The storage directory vanishes, then comes back: one DOWN line naming it, one UP line.
    await rm(app.dir, { recursive: true });
    await pollUntil(
      async () => {
        const body = (await (await fetch(`${app.url}/health`)).json()) as { components: { storage: { status: string } } };
        return body.components.storage.status === 'DOWN' ? true : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 200, what: 'storage DOWN' },
    );
    await mkdir(app.dir);
    const up = await pollUntil(
      async () => {
        const res = await fetch(`${app.url}/health`);
        const text = await res.text();
        return (JSON.parse(text) as { components: { storage: { status: string } } }).components.storage.status === 'UP' ? text : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 200, what: 'storage UP again' },
    );
    expect(up).not.toContain(app.dir);
    const storageLines = app.logs.filter((l) => String(l.message).startsWith('health: storage'));
    expect(storageLines.map((l) => [l.level, l.message])).toEqual([['warn', 'health: storage DOWN'], ['info', 'health: storage UP']]);
    expect(String(storageLines[0]!.error)).toContain(app.dir);
  });

  it('/health/live answers 200 without auth and without asking the database or storage', async () => {
    const app = await startApp();
    await rm(app.dir, { recursive: true });
    const res = await fetch(`${app.url}/health/live`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'UP' });
    expect(app.probeCalls()).toBe(0);
  });

  it('logs probes and scrapes at debug, API requests at info', async () => {
    const app = await startApp();
    for (const path of ['/health', '/health/live', '/metrics', '/info']) await (await fetch(`${app.url}${path}`)).text();
    await (await fetch(`${app.url}/api/v1/backups`, { headers: auth })).text();
    await pollUntil(async () => (accessLines(app).length >= 5 ? true : undefined), { timeoutMs: 5_000, what: 'five access log lines' });
    const levels = Object.fromEntries(accessLines(app).map((l) => [String(l.route), l.level]));
    expect(levels).toEqual({ '/health': 'debug', '/health/live': 'debug', '/metrics': 'debug', '/info': 'info', '/api/v1/backups': 'info' });
  });
});

describe('/metrics', () => {
  it('has no dbbackup_last_success_* series before a successful backup, the right values after one', async () => {
    const app = await startApp();
    const before = await (await fetch(`${app.url}/metrics`)).text();
    // absent(dbbackup_last_success_timestamp_seconds) alerts rely on this: a 0 would hide it.
    expect(before).not.toMatch(/^dbbackup_last_success_\w+ /m);
    expect(before).toMatch(/^dbbackup_backups_stored 0$/m);
    const { sidecar } = await storeBackup(app);
    const after = await (await fetch(`${app.url}/metrics`)).text();
    expect(after).toMatch(new RegExp(`^dbbackup_last_success_timestamp_seconds ${Date.parse(sidecar.createdAt) / 1000}$`, 'm'));
    expect(after).toMatch(new RegExp(`^dbbackup_last_success_size_bytes ${sidecar.sizeBytes}$`, 'm'));
    expect(after).toMatch(/^dbbackup_last_success_duration_seconds 1.234$/m);
  });

  it('labels requests by route pattern, one plain label per route (not "/docs,/docs/")', async () => {
    const app = await startApp();
    for (const path of ['/docs', '/docs/', `/api/v1/backups/${BACKUP_ID}/download`]) await (await fetch(`${app.url}${path}`, { headers: auth })).text();
    const text = await (await fetch(`${app.url}/metrics`)).text();
    const routes = [...text.matchAll(/^dbbackup_http_requests_total\{[^}]*route="([^"]*)"/gm)].map((m) => m[1]);
    expect(new Set(routes)).toEqual(new Set(['/docs', '/api/v1/backups/:id/download']));
    expect(text).toMatch(/^dbbackup_http_requests_total\{method="GET",route="\/docs",status="200"\} 2$/m);
  });
});

describe('pins and the retention plan', () => {
  const pinUrl = (app: TestApp, id = BACKUP_ID) => `${app.url}/api/v1/backups/${id}/pin`;
  const put = (app: TestApp, body?: string, headers: Record<string, string> = { 'Content-Type': 'application/json' }, id = BACKUP_ID) =>
    fetch(pinUrl(app, id), { method: 'PUT', headers: { ...auth, ...(body === undefined ? {} : headers) }, ...(body === undefined ? {} : { body }) });

  it('pins with a reason (a JSON body of any Content-Type, as curl -d sends it), shows it in the list, replaces it, unpins', async () => {
    const app = await startApp();
    await storeBackup(app);
    const res = await put(app, JSON.stringify({ reason: '  before the v2 migration ' }), { 'Content-Type': 'application/x-www-form-urlencoded' });
    expect(res.status).toBe(200);
    const pinned = (await res.json()) as { id: string; pinned: { at: string; reason: string | null } };
    expect(pinned).toMatchObject({ id: BACKUP_ID, pinned: { reason: 'before the v2 migration' } });
    expect(Date.now() - Date.parse(pinned.pinned.at)).toBeLessThan(60_000);
    const record = JSON.parse(await readFile(join(app.dir, `${BACKUP_ID}.pin.json`), 'utf8')) as unknown;
    expect(record).toEqual({ format: 1, backupId: BACKUP_ID, at: pinned.pinned.at, reason: 'before the v2 migration' });
    const listed = (await (await fetch(`${app.url}/api/v1/backups`, { headers: auth })).json()) as { pinned: unknown }[];
    expect(listed[0]!.pinned).toEqual(pinned.pinned);
    expect(await (await fetch(`${app.url}/metrics`)).text()).toMatch(/^dbbackup_backups_pinned 1$/m);
    expect(((await (await fetch(`${app.url}/api/v1/backups/latest`, { headers: auth })).json()) as { pinned: unknown }).pinned).toEqual(pinned.pinned);

    // No body: pinned without a reason, the old pin replaced.
    expect(((await (await put(app)).json()) as { pinned: { reason: unknown } }).pinned.reason).toBeNull();
    expect(JSON.parse(await readFile(join(app.dir, `${BACKUP_ID}.pin.json`), 'utf8'))).toMatchObject({ reason: null });
    // A restart reads the pin back from storage.
    const restarted = new BackupIndex(new LocalStorage(app.dir), { namePrefix: 'backup', database: 'appdb' }, silentLogger());
    await restarted.refresh();
    expect(restarted.pinOf(BACKUP_ID)).toMatchObject({ reason: null });

    const unpinned = await fetch(pinUrl(app), { method: 'DELETE', headers: auth });
    expect(unpinned.status).toBe(200);
    expect(((await unpinned.json()) as { pinned: unknown }).pinned).toBeNull();
    expect(existsSync(join(app.dir, `${BACKUP_ID}.pin.json`))).toBe(false);
    // Unpinning what is not pinned is no error.
    expect((await fetch(pinUrl(app), { method: 'DELETE', headers: auth })).status).toBe(200);
    expect(await (await fetch(`${app.url}/metrics`)).text()).toMatch(/^dbbackup_backups_pinned 0$/m);
    expect(app.logs.filter((l) => l.message === 'backup pinned' || l.message === 'backup unpinned').map((l) => l.message)).toEqual(['backup pinned', 'backup pinned', 'backup unpinned']);
  });

  it('refuses a body that is not {"reason": "…"}, an unknown backup and a malformed id, leaving storage as it was', async () => {
    const app = await startApp();
    await storeBackup(app);
    for (const body of ['{not json', '"a string"', '{"reason": 5}', '{"reason": ""}', `{"reason": "${'x'.repeat(501)}"}`, '{"reason": "ok", "until": "2030"}']) {
      const res = await put(app, body);
      expect(res.status, body).toBe(400);
      expect(res.headers.get('content-type'), body).toMatch(/^application\/problem\+json/);
    }
    expect(((await (await put(app, '{"reason":')).json()) as { detail: string }).detail).toBe('the request body is not valid JSON (a pin takes {"reason": "…"} or no body)');
    expect(((await (await put(app, `{"reason": "${'x'.repeat(501)}"}`)).json()) as { detail: string }).detail).toBe('invalid request body: reason: String must contain at most 500 character(s)');
    expect(((await (await put(app, '{"until": "2030"}')).json()) as { detail: string }).detail).toMatch(/^invalid request body: body: Unrecognized key\(s\) in object: 'until'/);
    for (const id of ['backup_20200101T000000Z.sql.gz', '..%2F..%2Fetc', 'backup_latest.sql.gz']) {
      for (const method of ['PUT', 'DELETE']) {
        const res = await fetch(pinUrl(app, id), { method, headers: auth });
        expect(res.status, `${method} ${id}`).toBe(404);
      }
    }
    expect((await fetch(pinUrl(app), { method: 'PUT' })).status).toBe(401);
    // The body is not even parsed without the token.
    expect((await fetch(pinUrl(app), { method: 'PUT', body: '{not json' })).status).toBe(401);
    expect((await readdir(app.dir)).sort()).toEqual([BACKUP_ID, `${BACKUP_ID}.meta.json`]);
  });

  it('answers 503 with Retry-After when the pin cannot be stored, and the index says what storage holds', async () => {
    let pins = 0;
    const app = await startApp((local) =>
      storageWith(local, {
        // The first pin is stored; the second (a new reason) fails after the old pin was removed.
        putSmall: (name, data) => (name.endsWith('.pin.json') && pins++ > 0 ? Promise.reject(new Error('disk full')) : local.putSmall(name, data)),
      }),
    );
    await storeBackup(app);
    expect((await put(app, '{"reason":"first"}')).status).toBe(200);
    const res = await put(app, '{"reason":"keep"}');
    expect(res.status).toBe(503);
    expect(existsSync(join(app.dir, `${BACKUP_ID}.pin.json`))).toBe(false);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(app.engine.index.pinOf(BACKUP_ID)).toBeNull();
    expect(app.logs).toContainEqual(expect.objectContaining({ message: 'could not change a pin: storage failed', error: 'disk full' }));
  });

  it('GET /api/v1/retention: the policy and every backup newest first with the rules that keep it, or expired', async () => {
    const app = await startApp();
    await storeBackup(app);
    const newer = 'backup_20260511T010000Z.sql.gz';
    await storeBackup(app, newer);
    await put(app, '{"reason":"audit"}');
    const res = await fetch(`${app.url}/api/v1/retention`, { headers: auth });
    expect(res.status).toBe(200);
    const plan = (await res.json()) as { policy: unknown; evaluatedAt: string; backups: unknown[] };
    expect(plan.policy).toEqual({ days: 7, minCount: 1, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepYearly: 0, keepNewestVerified: false, dryRun: false });
    expect(Date.now() - Date.parse(plan.evaluatedAt)).toBeLessThan(60_000);
    // Both backups are of May 2026, long before "now": only the floors keep them.
    expect(plan.backups).toEqual([
      { id: newer, createdAt: '2026-05-10T01:00:00.000Z', action: 'keep', reasons: ['newest success'] },
      { id: BACKUP_ID, createdAt: '2026-05-10T01:00:00.000Z', action: 'keep', reasons: ['pinned'] },
    ]);
    await fetch(pinUrl(app), { method: 'DELETE', headers: auth });
    const after = (await (await fetch(`${app.url}/api/v1/retention`, { headers: auth })).json()) as { backups: { action: string; reasons: string[] }[] };
    expect(after.backups[1]).toMatchObject({ action: 'delete', reasons: ['expired'] });
    expect((await fetch(`${app.url}/api/v1/retention`)).status).toBe(401);
  });
});

describe('downloads', () => {
  it('sends a .sql.zst backup as application/zstd and a .sql.gz one as application/gzip (whole, ranged, HEAD, latest)', async () => {
    const app = await startApp();
    const zstdId = 'backup_20260511T010000Z.sql.zst';
    await storeBackup(app);
    const { body } = await storeBackup(app, zstdId);
    expect(app.engine.index.list().map((b) => b.id)).toEqual([zstdId, BACKUP_ID]);
    for (const [path, init, type] of [
      [`/api/v1/backups/${zstdId}/download`, {}, 'application/zstd'],
      [`/api/v1/backups/${zstdId}/download`, { headers: { Range: 'bytes=0-9' } }, 'application/zstd'],
      [`/api/v1/backups/${zstdId}/download`, { method: 'HEAD' }, 'application/zstd'],
      ['/api/v1/backups/latest/download', {}, 'application/zstd'],
      [`/api/v1/backups/${BACKUP_ID}/download`, {}, 'application/gzip'],
    ] as const) {
      const res = await fetch(`${app.url}${path}`, { ...init, headers: { ...auth, ...('headers' in init ? init.headers : {}) } });
      expect(res.status, path).toBe('headers' in init ? 206 : 200);
      expect(res.headers.get('content-type'), `${path} ${JSON.stringify(init)}`).toBe(type);
      const id = type === 'application/zstd' ? zstdId : BACKUP_ID;
      expect(res.headers.get('content-disposition')).toBe(`attachment; filename="${id}"`);
      const received = Buffer.from(await res.arrayBuffer());
      if (path.endsWith(`${zstdId}/download`) && !('method' in init)) expect(received).toEqual('headers' in init ? body.subarray(0, 10) : body);
    }
  });

  it('answers 416 with Content-Range but no download headers (curl -OJ must not save the problem as the backup)', async () => {
    const app = await startApp();
    const { body } = await storeBackup(app);
    const res = await fetch(`${app.url}/api/v1/backups/${BACKUP_ID}/download`, { headers: { ...auth, Range: `bytes=${body.length}-` } });
    expect(res.status).toBe(416);
    expect(res.headers.get('content-range')).toBe(`bytes */${body.length}`);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    for (const header of ['content-disposition', 'etag', 'repr-digest', 'last-modified']) expect(res.headers.get(header), header).toBeNull();
    expect(await res.json()).toMatchObject({ status: 416, code: 'RANGE_NOT_SATISFIABLE' });
    const ok = await fetch(`${app.url}/api/v1/backups/${BACKUP_ID}/download`, { headers: { ...auth, Range: 'bytes=0-9' } });
    expect(ok.status).toBe(206);
    expect(ok.headers.get('content-disposition')).toBe(`attachment; filename="${BACKUP_ID}"`);
    await ok.arrayBuffer();
  });

  it('answers 503 + Retry-After (not 404) while the backup directory is gone, and keeps the backup listed', async () => {
    const app = await startApp();
    const { body } = await storeBackup(app);
    await rm(app.dir, { recursive: true });
    for (const path of [`/api/v1/backups/${BACKUP_ID}/download`, '/api/v1/backups/latest/download']) {
      const res = await fetch(`${app.url}${path}`, { headers: auth });
      expect(res.status, path).toBe(503);
      expect(res.headers.get('retry-after')).toBe('5');
      const text = await res.text();
      expect(JSON.parse(text)).toMatchObject({ status: 503, code: 'STORAGE_UNAVAILABLE' });
      expect(text).not.toContain(app.dir);
    }
    expect(app.engine.index.get(BACKUP_ID)).toBeDefined();
    // The directory is back (a remount): the same download works.
    await mkdir(app.dir);
    await writeFile(join(app.dir, BACKUP_ID), body);
    const res = await fetch(`${app.url}/api/v1/backups/${BACKUP_ID}/download`, { headers: auth });
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(body);
  });
});

describe('downloads from a backend without openReader (the stream path, as S3)', () => {
  it('sends the whole object and a Range byte-exact', async () => {
    const app = await startApp(streamOnly());
    const { body } = await storeBackup(app);
    const whole = await fetch(`${app.url}/api/v1/backups/${BACKUP_ID}/download`, { headers: auth });
    expect(whole.status).toBe(200);
    expect(Buffer.from(await whole.arrayBuffer()).equals(body)).toBe(true);
    const part = await fetch(`${app.url}/api/v1/backups/${BACKUP_ID}/download`, { headers: { ...auth, Range: 'bytes=3-12' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 3-12/${body.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(body.subarray(3, 13))).toBe(true);
  });

  for (const [what, stream] of [
    ['ends early', () => Readable.from([Buffer.from('short')])],
    ['fails mid-body', () => Readable.from((function* () { yield Buffer.from('some'); throw new Error('connection reset by the bucket'); })())],
  ] as const) {
    it(`cuts the response when the object's stream ${what} (never a complete-looking file)`, async () => {
      const app = await startApp(streamOnly(() => Promise.resolve(stream())));
      await storeBackup(app);
      const res = await fetch(`${app.url}/api/v1/backups/${BACKUP_ID}/download`, { headers: auth });
      expect(res.status).toBe(200);
      await expect(res.arrayBuffer()).rejects.toThrow();
      await pollUntil(async () => (app.logs.some((l) => l.message === 'download aborted: storage stream failed') ? true : undefined), {
        timeoutMs: 5_000, what: 'the log line of the cut download',
      });
    });
  }
});

describe('the contract lists what the routes answer', () => {
  const routes = Object.entries(apiContract);
  const pathOf = (path: string) => path.replace(':jobId', '9b7c4a8e-0000-4000-8000-000000000000').replace(':id', BACKUP_ID);

  it('413 BODY_TOO_LARGE on every route', async () => {
    const app = await startApp();
    for (const [name, route] of routes) {
      // node:http, not fetch: fetch refuses a body on GET, and the limit applies to every method.
      const res = await withBody(`${app.url}${pathOf(route.path)}`, route.method, 'x'.repeat(20_000));
      expect(res.status, name).toBe(413);
      expect(JSON.parse(res.body)).toMatchObject({ code: 'BODY_TOO_LARGE' });
      expect(Object.keys(route.responses), name).toContain('413');
    }
  });

  it('400 INVALID_REQUEST on every route with a path parameter (a bad percent-encoding)', async () => {
    const app = await startApp();
    const withParams = routes.filter(([, route]) => route.path.includes('/:'));
    expect(withParams.length).toBeGreaterThan(0);
    for (const [name, route] of withParams) {
      const res = await fetch(`${app.url}${route.path.replace(/:\w+/, '%E0%A4%A')}`, { method: route.method, headers: auth });
      expect(res.status, name).toBe(400);
      expect(await res.json()).toMatchObject({ code: 'INVALID_REQUEST' });
      expect(Object.keys(route.responses), name).toContain('400');
    }
  });

  it('503 SHUTTING_DOWN for a trigger while the engine accepts no backups', async () => {
    const app = await startApp();
    const res = await fetch(`${app.url}/api/v1/backups`, { method: 'POST', headers: auth });
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ status: 503, code: 'SHUTTING_DOWN' });
    expect(Object.keys(apiContract.triggerBackup.responses)).toContain('503');
  });
});
