// Retention end to end (issue 16), on both backends: the built service as a child process, real
// PostgreSQL and pg_dump, a local directory or the S3 emulator. Each test plants a history behind
// the service's back (dumps with sidecars, drill records, leftovers), lets a real backup start
// retention, and compares what is gone from storage with the service's own plan and log.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  contentsName, drillName, DrillRecordSchema, parseSidecar, pinName, PinRecordSchema, sidecarName,
  type Backup, type DrillRecord, type Info, type Job, type RetentionPlan,
} from '@db-backup-service/contract';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  api, freePort, pollUntil, startService, storageLocation, usePostgres, useS3,
  type Api, type ServiceProcess, type StorageBackend, type StorageLocation,
} from './harness/index.js';

const TOKEN = randomBytes(32).toString('hex');
// No scheduled backups: each retention run follows a backup the test triggers.
const NO_SCHEDULE = { BACKUP_CRON: '0 0 1 1 *', INDEX_REFRESH_INTERVAL: '1s' };
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const DELETED = 'retention deleted a backup';
const WOULD_DELETE = 'retention dry run: would delete a backup';
const UNFINISHED_REMOVED = 'removed an unfinished backup (a dump without a sidecar)';
const LEFTOVER_REMOVED = "removed a backup's leftover contents manifest or drill record (its dump and sidecar are gone)";
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

const cluster = usePostgres();
const s3 = useS3();
let work: string;
/** The services the running test started: stopped after it, so each test has only its own. */
const services: ServiceProcess[] = [];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'service-retention-'));
});

afterEach(async () => {
  for (const svc of services.splice(0)) await svc.stop('SIGTERM', 30_000).catch(() => svc.kill());
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

interface Service {
  readonly svc: ServiceProcess;
  readonly A: Api;
}

/** A database of the test's own, with a table, so that its backups are real dumps of something. */
async function database(name: string): Promise<string> {
  await cluster.createDatabase(name);
  await cluster.query('CREATE TABLE t AS SELECT n FROM generate_series(1, 10) AS n', [], name);
  return name;
}

async function launch(db: string, where: StorageLocation, extra: Record<string, string>): Promise<Service> {
  const env = {
    DB_HOST: cluster.host, DB_PORT: String(cluster.port), DB_NAME: db, DB_USER: cluster.user, DB_PASSWORD: cluster.password,
    API_TOKEN: TOKEN, ...NO_SCHEDULE, ...where.env, ...extra, HTTP_PORT: String(await freePort()),
  };
  const svc = await startService(env, { waitFor: 'healthy' });
  services.push(svc);
  return { svc, A: api(svc.baseUrl, TOKEN) };
}

/** Whole seconds, as backup ids (and so their createdAt) have them. */
const wholeSeconds = (ms: number) => new Date(Math.floor(ms / 1000) * 1000);

/** The id the service gives a backup taken at `at`. */
function idAt(at: Date): string {
  return `backup_${at.toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '')}.sql.gz`;
}

function drillRecord(id: string, at: Date, status: 'passed' | 'failed'): DrillRecord {
  const passed = status === 'passed';
  return DrillRecordSchema.parse({
    format: 1, backupId: id, target: 'server', serverVersion: '15.0', status, at: new Date(at.getTime() + HOUR).toISOString(), durationMs: 800,
    tablesChecked: 1, rowsChecked: passed ? 10 : 9, detail: passed ? null : 'rows of table public.t: 10 expected, 9 restored',
    mismatches: passed ? [] : [{ what: 'rows of table public.t', expected: 10, actual: 9 }], query: null,
  });
}

/**
 * Plants a backup of `db` taken at `at`, as an earlier run of the service would have left it: a
 * small gzip dump, optionally its contents manifest, its sidecar, optionally a drill record.
 */
async function plant(where: StorageLocation, db: string, at: Date, opts: { drill?: 'passed' | 'failed'; contents?: boolean } = {}): Promise<string> {
  const id = idAt(at);
  const sql = `-- fake dump of ${db}\n--\n-- PostgreSQL database dump complete\n--\n`;
  const dump = gzipSync(sql);
  let contents = null;
  if (opts.contents) {
    const manifest = Buffer.from(JSON.stringify({
      format: 1, tables: [{ schema: 'public', name: 't', rows: 10 }], largeObjects: 0, objects: { tables: 1, sequences: 0, views: 0, functions: 0, indexes: 0 },
    }));
    await where.write(contentsName(id), manifest);
    contents = { sha256: sha256(manifest), tables: 1, rows: 10, largeObjects: 0 };
  }
  await where.write(id, dump);
  const sidecar = JSON.stringify({
    id, createdAt: at.toISOString(), sizeBytes: dump.length, sha256: sha256(dump), pgVersion: '15.0', durationMs: 1200, triggeredBy: 'scheduler',
    pgDumpVersion: '15.0', uncompressedSizeBytes: sql.length, compression: { format: 'gzip', level: 6 }, database: db, serviceVersion: 'test', format: 'plain', contents,
  });
  // A fake the service would ignore must fail here, not read as a retention bug.
  expect(parseSidecar(sidecar, id)).toMatchObject({ ok: true, sidecar: { database: db } });
  await where.write(sidecarName(id), Buffer.from(sidecar));
  if (opts.drill) await where.write(drillName(id), Buffer.from(JSON.stringify(drillRecord(id, at, opts.drill))));
  return id;
}

/** Every object that can belong to backup `id`: dump, sidecar and companions. */
const objectsOf = (id: string) => [id, sidecarName(id), contentsName(id), drillName(id), pinName(id)];

/** `names` without any object of the backups `ids`. */
function without(names: readonly string[], ids: readonly string[]): string[] {
  const gone = new Set(ids.flatMap(objectsOf));
  return names.filter((n) => !gone.has(n));
}

/** What a real backup of ours stores: dump, contents manifest, sidecar. */
const realObjects = (id: string) => [id, contentsName(id), sidecarName(id)];

const sorted = (values: Iterable<string>) => [...values].sort();

async function backup(A: Api): Promise<string> {
  const job = await A.backup();
  expect(job.status, job.errorMessage ?? '').toBe('succeeded');
  return job.backupId!;
}

/**
 * Waits until the retention run that followed the backup `newest` is over: until `effect` holds
 * (what it should have done is visible), then behind the run itself. Pin changes wait for a
 * running retention (the engine runs the two one at a time, so that a pin set meanwhile is never
 * deleted), and the run is queued before the backup job reads as finished: an unpin of the new,
 * never pinned, backup returns once that run is over, so nothing more is deleted after it.
 */
async function afterRetention(A: Api, newest: string, effect: () => Promise<boolean>): Promise<void> {
  await pollUntil(async () => (await effect()) || undefined, { timeoutMs: 30_000, intervalMs: 100, what: 'retention to run' });
  const res = await A.request(`/api/v1/backups/${newest}/pin`, { method: 'DELETE' });
  expect(res.status).toBe(200);
}

/** The service's JSON log lines with this message. */
function logged(svc: ServiceProcess, message: string): Record<string, unknown>[] {
  return svc.logs.flatMap((line) => {
    try {
      const entry = JSON.parse(line) as Record<string, unknown>;
      return entry.message === message ? [entry] : [];
    } catch {
      return [];
    }
  });
}

const retentionPlan = (A: Api) => A.json<RetentionPlan>('/api/v1/retention');
const toDelete = (plan: RetentionPlan) => plan.backups.filter((b) => b.action === 'delete').map((b) => b.id);

/** mulberry32: the same irregular history on every run, so that a failure reproduces. */
function seeded(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/**
 * A year of backups at irregular times up to two hours ago: mostly one every 1-5 days, some
 * days several a few hours apart, now and then a gap of 7-12 days (never a whole month: every
 * month has one). None within two hours of the 3-day cutoff, which moves while the test runs.
 */
function yearOfHistory(now: number, cutoffDays: number): Date[] {
  const random = seeded(16);
  const times: Date[] = [];
  for (let t = now - 365 * DAY; t < now - 2 * HOUR;) {
    if (Math.abs(now - cutoffDays * DAY - t) > 2 * HOUR) times.push(wholeSeconds(t));
    const r = random();
    t += r < 0.2 ? HOUR + random() * 5 * HOUR : r < 0.8 ? DAY + random() * 4 * DAY : 7 * DAY + random() * 5 * DAY;
  }
  return times;
}

/** Every object of `from` written to `to` (the sidecars last, as a backup is written). */
async function copyObjects(from: StorageLocation, to: StorageLocation, names: readonly string[]): Promise<void> {
  const sidecarsLast = [...names.filter((n) => !n.endsWith('.meta.json')), ...names.filter((n) => n.endsWith('.meta.json'))];
  for (const name of sidecarsLast) await to.write(name, await from.read(name));
}

describe.each(['local', 's3'] as const)('%s backend', (backend: StorageBackend) => {
  const location = (tag: string) => storageLocation(backend, { tag, dir: work, s3 });

  it('GFS over a year of irregular backups: retention deletes exactly the plan\'s delete set, with companions, one log line each', async () => {
    const db = await database(`gfs_${backend}`);
    const where = await location('gfs');
    const now = Date.now();
    const policy = { RETENTION_DAYS: '3', RETENTION_KEEP_DAILY: '7', RETENTION_KEEP_WEEKLY: '5', RETENTION_KEEP_MONTHLY: '12', RETENTION_KEEP_YEARLY: '2' };
    const fakes: string[] = [];
    for (const [i, at] of yearOfHistory(now, 3).entries()) fakes.push(await plant(where, db, at, { contents: i % 3 === 0, drill: i % 5 === 0 ? 'failed' : undefined }));
    const { svc, A } = await launch(db, where, policy);

    // The plan lists the planted history, newest first, with the policy as configured.
    const before = await retentionPlan(A);
    expect(before.policy).toEqual({ days: 3, minCount: 1, keepDaily: 7, keepWeekly: 5, keepMonthly: 12, keepYearly: 2, keepNewestVerified: false, dryRun: false });
    expect(before.backups.map((b) => b.id)).toEqual([...fakes].reverse());

    // What retention after the next backup is about to do cannot be read from this service once
    // the backup succeeded (retention follows at once). So the storage as it is now, plus that
    // backup, goes to a copy, whose plan (a dry-run service over it) is the plan that run saw.
    const snapshotNames = await where.names();
    const snapshot = await location('gfs-copy');
    await copyObjects(where, snapshot, snapshotNames);
    const real = await backup(A);
    await copyObjects(where, snapshot, realObjects(real));
    const copy = await launch(db, snapshot, { ...policy, RETENTION_DRY_RUN: 'true' });
    const plan = await retentionPlan(copy.A);
    expect(plan.backups.map((b) => b.id)).toEqual([real, ...before.backups.map((b) => b.id)]);

    // The plan's reasons name the rules, checked against the simplest reading of each rule.
    const entries = plan.backups;
    const evaluatedAt = Date.parse(plan.evaluatedAt);
    expect(entries[0]!.reasons).toContain('newest success');
    for (const entry of entries) {
      expect(entry.reasons.includes('younger than 3 days'), entry.id).toBe(evaluatedAt - Date.parse(entry.createdAt) < 3 * DAY);
      expect(entry.action === 'delete', entry.id).toBe(entry.reasons.length === 1 && entry.reasons[0] === 'expired');
    }
    // daily, monthly, yearly: the newest backup of each of the newest N days/months/years with a backup.
    for (const [kind, length, count] of [['daily', 10, 7], ['monthly', 7, 12], ['yearly', 4, 2]] as const) {
      const newestOfPeriod = new Map<string, string>();
      for (const entry of entries) if (!newestOfPeriod.has(entry.createdAt.slice(0, length))) newestOfPeriod.set(entry.createdAt.slice(0, length), entry.id);
      const expected = [...newestOfPeriod].slice(0, count).map(([period, id]) => ({ id, reason: `${kind} ${period}` }));
      const found = entries.flatMap((e) => e.reasons.filter((r) => r.startsWith(`${kind} `)).map((reason) => ({ id: e.id, reason })));
      expect(found, kind).toEqual(expected);
    }
    const weekly = entries.flatMap((e) => e.reasons.filter((r) => r.startsWith('weekly ')));
    expect(weekly).toHaveLength(5);
    for (const reason of weekly) expect(reason).toMatch(/^weekly \d{4}-W\d{2}$/);
    expect(sorted(weekly).reverse()).toEqual(weekly);
    expect(new Set(weekly).size).toBe(5);
    expect(entries[0]!.reasons.some((r) => r.startsWith('weekly '))).toBe(true);

    const expired = toDelete(plan);
    expect(expired.length).toBeGreaterThan(20);
    // Retention on the real location deleted exactly those, dump, sidecar and companions.
    const gone = (names: string[]) => expired.every((id) => !names.includes(sidecarName(id)) && !names.includes(id));
    await afterRetention(A, real, async () => gone(await where.names()));
    expect(await where.names()).toEqual(sorted([...without(snapshotNames, expired), ...realObjects(real)]));

    const lines = logged(svc, DELETED);
    expect(sorted(lines.map((l) => String(l.deletedBackupId)))).toEqual(sorted(expired));
    const byId = new Map(entries.map((e) => [e.id, e]));
    for (const line of lines) {
      expect(line).toMatchObject({ level: 'info', createdAt: byId.get(String(line.deletedBackupId))!.createdAt, reasons: ['expired'] });
      expect(line.rule).toBe('RETENTION_DAYS=3, RETENTION_MIN_COUNT=1, RETENTION_KEEP_DAILY=7, RETENTION_KEEP_WEEKLY=5, RETENTION_KEEP_MONTHLY=12, RETENTION_KEEP_YEARLY=2');
    }
    expect(logged(svc, 'retention could not delete a backup')).toEqual([]);

    // What is left is what the plan kept, for the same reasons: a second run would delete nothing.
    const kept = entries.filter((e) => e.action === 'keep');
    expect((await retentionPlan(A)).backups).toEqual(kept);
    expect((await A.json<Backup[]>('/api/v1/backups')).map((b) => b.id)).toEqual(kept.map((e) => e.id));
  }, 180_000);

  it('a pinned backup a year old survives RETENTION_DAYS=1 until it is unpinned; bad pin requests change nothing', async () => {
    const db = await database(`pins_${backend}`);
    const where = await location('pins');
    const now = Date.now();
    const old = await plant(where, db, wholeSeconds(now - 365 * DAY), { drill: 'passed' });
    const middle = await plant(where, db, wholeSeconds(now - 200 * DAY), { contents: true });
    const { svc, A } = await launch(db, where, { RETENTION_DAYS: '1' });
    const pin = (id: string, init: RequestInit & { token?: null } = {}) => A.request(`/api/v1/backups/${id}/pin`, { method: 'PUT', ...init });
    const json = (body: string) => ({ body, headers: { 'Content-Type': 'application/json' } });

    // Requests that must not pin anything, nor reach storage.
    const untouched = await where.names();
    const outside = where.env.BACKUP_LOCAL_DIR ? await readdir(dirname(where.env.BACKUP_LOCAL_DIR)) : [];
    expect((await pin(idAt(wholeSeconds(now - 100 * DAY)))).status).toBe(404);
    for (const malformed of ['not-a-backup', sidecarName(old), `..%2F${old}`, '..%2F..%2Fescape', `${old}%2F..%2F..%2Fescape`]) {
      const res = await pin(malformed, json('{"reason":"x"}'));
      expect([400, 404], malformed).toContain(res.status);
      expect(await res.json()).toMatchObject({ status: res.status });
    }
    for (const body of ['{"reason":', '{"reason":"x","until":"2027-01-01"}', '{"reason":42}', '{"reason":"   "}', '["x"]', `{"reason":"${'x'.repeat(501)}"}`]) {
      const res = await pin(middle, json(body));
      expect(res.status, body).toBe(400);
      expect(await res.json()).toMatchObject({ status: 400 });
    }
    expect((await pin(middle, { ...json('{"reason":"x"}'), token: null })).status).toBe(401);
    expect(await where.names()).toEqual(untouched);
    if (where.env.BACKUP_LOCAL_DIR) expect(await readdir(dirname(where.env.BACKUP_LOCAL_DIR))).toEqual(outside);
    expect((await A.json<Backup[]>('/api/v1/backups')).map((b) => b.pinned)).toEqual([null, null]);

    // A JSON body, then the same with curl -d's form type: read as JSON, the reason is kept (the
    // second pin replaces the first).
    const first = await pin(old, json('{"reason":"first look"}'));
    expect(first.status).toBe(200);
    expect(await first.json()).toMatchObject({ id: old, pinned: { reason: 'first look' } });
    const pinnedAt = Date.now();
    const second = await pin(old, { body: '{"reason":"audit 2026"}', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
    expect(second.status).toBe(200);
    const pinned = (await second.json()) as Backup;
    expect(pinned).toMatchObject({ id: old, pinned: { reason: 'audit 2026' } });
    expect(Date.parse(pinned.pinned!.at)).toBeGreaterThanOrEqual(pinnedAt - 1000);
    const listed = await A.json<Backup[]>('/api/v1/backups');
    expect(listed.map((b) => [b.id, b.pinned])).toEqual([[middle, null], [old, pinned.pinned]]);
    const record = PinRecordSchema.parse(JSON.parse((await where.read(pinName(old))).toString('utf8')));
    expect(record).toEqual({ format: 1, backupId: old, ...pinned.pinned });
    expect((await retentionPlan(A)).backups).toEqual([
      { id: middle, createdAt: expect.any(String), action: 'keep', reasons: ['newest success'] },
      { id: old, createdAt: expect.any(String), action: 'keep', reasons: ['pinned'] },
    ]);

    // After a backup: the 200-day one goes (with its manifest), the pinned year-old one stays whole.
    const r1 = await backup(A);
    await afterRetention(A, r1, async () => !(await where.names()).includes(middle));
    expect(await where.names()).toEqual(sorted([...without(untouched, [middle]), pinName(old), ...realObjects(r1)]));
    expect(logged(svc, DELETED).map((l) => l.deletedBackupId)).toEqual([middle]);
    expect((await A.json<Backup[]>('/api/v1/backups')).map((b) => [b.id, b.pinned?.reason ?? null])).toEqual([[r1, null], [old, 'audit 2026']]);

    // Unpinned, it is an expired backup like any other: the next backup's retention deletes it.
    const unpin = await A.request(`/api/v1/backups/${old}/pin`, { method: 'DELETE' });
    expect(unpin.status).toBe(200);
    expect(await unpin.json()).toMatchObject({ id: old, pinned: null });
    expect(await where.names()).not.toContain(pinName(old));
    expect((await retentionPlan(A)).backups.find((b) => b.id === old)).toMatchObject({ action: 'delete', reasons: ['expired'] });
    const r2 = await backup(A);
    await afterRetention(A, r2, async () => !(await where.names()).includes(old));
    expect(await where.names()).toEqual(sorted([...realObjects(r1), ...realObjects(r2)]));
    expect(logged(svc, DELETED).map((l) => l.deletedBackupId)).toEqual([middle, old]);
  }, 120_000);

  it('a dry run deletes and cleans up nothing and logs exactly what the next real run deletes', async () => {
    const db = await database(`dry_${backend}`);
    const where = await location('dry');
    const now = Date.now();
    const policy = { RETENTION_DAYS: '7', BACKUP_TIMEOUT: '1m' };
    const expired = [
      await plant(where, db, wholeSeconds(now - 100 * DAY), { contents: true }),
      await plant(where, db, wholeSeconds(now - 40 * DAY), { drill: 'passed' }),
      await plant(where, db, wholeSeconds(now - 15 * DAY)),
      await plant(where, db, wholeSeconds(now - 8 * DAY), { contents: true, drill: 'failed' }),
    ];
    // Leftovers the clean-up removes once they are older than BACKUP_TIMEOUT: a dump without a
    // sidecar, and a drill record whose backup is gone. Only local files can be made old.
    const unfinished = idAt(wholeSeconds(now - 2 * DAY));
    const leftover = drillName(idAt(wholeSeconds(now - 50 * DAY)));
    await where.write(unfinished, gzipSync('-- an interrupted dump\n'));
    await where.write(leftover, Buffer.from(JSON.stringify(drillRecord(idAt(wholeSeconds(now - 50 * DAY)), new Date(now - 50 * DAY), 'passed'))));
    const aged = (await where.backdate(unfinished, new Date(now - 2 * DAY))) && (await where.backdate(leftover, new Date(now - 50 * DAY)));
    expect(aged).toBe(backend === 'local');
    const planted = await where.names();

    const dry = await launch(db, where, { ...policy, RETENTION_DRY_RUN: 'true' });
    await dry.svc.waitForLog('RETENTION_DRY_RUN is on');
    const dryPlan = await retentionPlan(dry.A);
    expect(dryPlan.policy).toMatchObject({ days: 7, dryRun: true });
    // Before a backup the newest of them is the newest success: the one floor of the plan.
    expect(dryPlan.backups.map((b) => [b.id, b.reasons])).toEqual([...expired].reverse().map((id, i) => [id, i === 0 ? ['newest success'] : ['expired']]));
    const r1 = await backup(dry.A);
    await afterRetention(dry.A, r1, async () => logged(dry.svc, WOULD_DELETE).length >= expired.length);
    const wouldDelete = logged(dry.svc, WOULD_DELETE);
    expect(sorted(wouldDelete.map((l) => String(l.wouldDeleteBackupId)))).toEqual(sorted(expired));
    for (const line of wouldDelete) expect(line).toMatchObject({ reasons: ['expired'], rule: expect.stringContaining('RETENTION_DAYS=7') });
    // Nothing deleted, nothing cleaned up.
    expect(await where.names()).toEqual(sorted([...planted, ...realObjects(r1)]));
    expect(logged(dry.svc, DELETED)).toEqual([]);
    for (const message of [UNFINISHED_REMOVED, LEFTOVER_REMOVED, 'removed an interrupted upload']) expect(logged(dry.svc, message), message).toEqual([]);
    await dry.svc.stop();

    const real = await launch(db, where, policy);
    const r2 = await backup(real.A);
    const leftovers = [unfinished, leftover];
    // On S3 the leftovers are as young as the test: whether they are old enough for the clean-up
    // depends on how long it took, so they are left out of what is compared there.
    const compared = async () => (await where.names()).filter((n) => backend === 'local' || !leftovers.includes(n));
    await afterRetention(real.A, r2, async () => {
      const names = await compared();
      return expired.every((id) => !names.includes(id)) && (backend === 's3' || leftovers.every((n) => !names.includes(n)));
    });
    expect(sorted(logged(real.svc, DELETED).map((l) => String(l.deletedBackupId)))).toEqual(sorted(wouldDelete.map((l) => String(l.wouldDeleteBackupId))));
    expect(await compared()).toEqual(sorted([...without(planted, [...expired, ...leftovers]), ...realObjects(r1), ...realObjects(r2)]));
    if (backend === 'local') {
      expect(logged(real.svc, UNFINISHED_REMOVED)).toMatchObject([{ deletedBackupId: unfinished }]);
      expect(logged(real.svc, LEFTOVER_REMOVED)).toMatchObject([{ object: leftover }]);
    }
  }, 120_000);

  describe('restore drills on: the verified floor', () => {
    const drillEnv = { RESTORE_DRILL: '0 0 1 1 *', RESTORE_DRILL_TARGET: 'server', RESTORE_DRILL_QUERY: 'SELECT false', RETENTION_DAYS: '1' };

    /** X, 60 days old, whose drill passed; Y, 30 days old, whose drill failed. */
    async function history(where: StorageLocation, db: string): Promise<{ x: string; y: string }> {
      const now = Date.now();
      return {
        x: await plant(where, db, wholeSeconds(now - 60 * DAY), { contents: true, drill: 'passed' }),
        y: await plant(where, db, wholeSeconds(now - 30 * DAY), { contents: true, drill: 'failed' }),
      };
    }

    it('the newest backup whose drill passed survives when the newest backups\' drill failed', async () => {
      const db = await database(`floor_${backend}`);
      const where = await location('floor');
      const { x, y } = await history(where, db);
      const { svc, A } = await launch(db, where, drillEnv);
      const info = await A.json<Info>('/info');
      expect(info.drill.mode).toBe('schedule');
      expect(info.retention).toMatchObject({ days: 1, keepNewestVerified: true });
      expect(info.backup.lastVerifiedBackupId).toBe(x);
      expect((await retentionPlan(A)).backups).toEqual([
        { id: y, createdAt: expect.any(String), action: 'keep', reasons: ['newest success'] },
        { id: x, createdAt: expect.any(String), action: 'keep', reasons: ['newest verified'] },
      ]);

      const b = await backup(A);
      await afterRetention(A, b, async () => !(await where.names()).includes(y));
      expect(logged(svc, DELETED).map((l) => l.deletedBackupId)).toEqual([y]);

      // B's drill fails (RESTORE_DRILL_QUERY returns false): it proves nothing, X stays the newest verified.
      const res = await A.request(`/api/v1/backups/${b}/drill`, { method: 'POST' });
      expect(res.status).toBe(202);
      const drill = await A.waitForJob(((await res.json()) as Job).jobId);
      expect(drill).toMatchObject({ kind: 'drill', status: 'failed', backupId: b, errorMessage: expect.stringContaining('RESTORE_DRILL_QUERY') });
      expect((await A.json<Backup[]>('/api/v1/backups')).find((e) => e.id === b)!.drill).toMatchObject({ status: 'failed' });

      const c = await backup(A);
      await afterRetention(A, c, async () => true);
      expect(await where.names()).toEqual(sorted([...objectsOf(x).slice(0, 4), ...realObjects(b), drillName(b), ...realObjects(c)]));
      expect(logged(svc, DELETED).map((l) => l.deletedBackupId)).toEqual([y]);
      const plan = await retentionPlan(A);
      expect(plan.backups.map((e) => [e.id, e.action])).toEqual([[c, 'keep'], [b, 'keep'], [x, 'keep']]);
      expect(plan.backups[2]!.reasons).toEqual(['newest verified']);
      expect(plan.backups[1]!.reasons).toEqual(['younger than 1 day']);
      expect((await A.json<Info>('/info')).backup.lastVerifiedBackupId).toBe(x);
    }, 180_000);

    it('control: the same history with RESTORE_DRILL=off loses X to RETENTION_DAYS=1', async () => {
      const db = await database(`nofloor_${backend}`);
      const where = await location('nofloor');
      const { x, y } = await history(where, db);
      const { svc, A } = await launch(db, where, { ...drillEnv, RESTORE_DRILL: 'off' });
      expect((await A.json<Info>('/info')).retention.keepNewestVerified).toBe(false);
      expect((await retentionPlan(A)).backups.map((e) => [e.id, e.action])).toEqual([[y, 'keep'], [x, 'delete']]);
      const b = await backup(A);
      await afterRetention(A, b, async () => {
        const names = await where.names();
        return !names.includes(x) && !names.includes(y);
      });
      expect(await where.names()).toEqual(sorted(realObjects(b)));
      expect(sorted(logged(svc, DELETED).map((l) => String(l.deletedBackupId)))).toEqual(sorted([x, y]));
      expect((await A.json<Info>('/info')).backup.lastVerifiedBackupId).toBeNull();
    }, 120_000);
  });
});
