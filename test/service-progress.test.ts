// Live progress and the upload rate limit, end to end: the built service as a child process, real
// PostgreSQL and pg_dump, the local backend. BACKUP_MAX_UPLOAD_RATE slows the backup down to a few
// seconds deterministically, so that polling the job sees it move. Then db-restore's progress bar
// for restores through the service: db-restore in-process (runCli) with a terminal for stderr, so
// that it draws its bar as on an operator's screen.
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { runCli } from '@db-backup-service/cli';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupSidecarSchema, sidecarName, type Backup, type BackupSidecar, type Job, type JobProgress } from '@db-backup-service/contract';
import { formatBytes } from '../cli/src/format.js';
import { api, freePort, startPostgres, startService, type Api, type PostgresCluster, type ServiceProcess } from './harness/index.js';

const TOKEN = randomBytes(32).toString('hex');
const RATE = 2_000_000;
/** What a token bucket may pass beyond the rate: its first piece and an idle bucket's tokens, 100 ms worth each. */
const BURST = RATE / 5;

let pg: PostgresCluster;
let dir: string;
let svc: ServiceProcess;
let A: Api;
/** The backup db-restore restores. */
let backupId: string;

beforeAll(async () => {
  pg = await startPostgres({ database: 'app' });
  // ~12 MB of dump that gzip cannot squeeze much (random hex): ~6 MB stored, ~3 s at 2 MB/s.
  await pg.query(
    'CREATE TABLE noise (id int PRIMARY KEY, a text, b text, c text, d text); ' +
      'INSERT INTO noise SELECT g, md5(random()::text), md5(random()::text), md5(random()::text), md5(random()::text) FROM generate_series(1, 85000) g',
    [],
    'app',
  );
  dir = await mkdtemp(join(tmpdir(), 'svc-progress-'));
  svc = await startService(
    {
      DB_HOST: pg.host, DB_PORT: String(pg.port), DB_NAME: 'app', DB_USER: pg.user, DB_PASSWORD: pg.password,
      API_TOKEN: TOKEN, HTTP_PORT: String(await freePort()), STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: dir,
      BACKUP_MAX_UPLOAD_RATE: '2MB/s',
      // A cron that fires once a year keeps the scheduler's first backup out of the way.
      BACKUP_CRON: '0 0 1 1 *',
    },
    { waitFor: 'healthy' },
  );
  A = api(svc.baseUrl, TOKEN);
}, 120_000);

afterAll(async () => {
  await svc?.stop('SIGTERM', 30_000).catch(() => svc.kill());
  await pg?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Starts a backup and polls its job every 50 ms until it ends; returns every progress seen while running, and the end. */
async function backupWatched(): Promise<{ running: JobProgress[]; job: Job; backup: BackupSidecar }> {
  const res = await A.request('/api/v1/backups', { method: 'POST' });
  expect(res.status).toBe(202);
  const { jobId } = (await res.json()) as Job;
  const running: JobProgress[] = [];
  const deadline = Date.now() + 120_000;
  for (;;) {
    const job = await A.json<Job>(`/api/v1/backups/jobs/${jobId}`);
    if (job.status === 'succeeded' || job.status === 'failed') {
      expect(job.errorMessage).toBeNull();
      // The sidecar: the listing does not show the dump's uncompressed size.
      const backup = BackupSidecarSchema.parse(JSON.parse(await readFile(join(dir, sidecarName(job.backupId!)), 'utf8')));
      return { running, job, backup };
    }
    if (job.progress !== null) running.push(job.progress);
    if (Date.now() > deadline) throw new Error(`job ${jobId} still ${job.status} after 120 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function expectMonotonic(seen: readonly JobProgress[]): void {
  for (const [prev, next] of seen.slice(1).map((p, i) => [seen[i]!, p] as const)) {
    expect(next.dumpedBytes).toBeGreaterThanOrEqual(prev.dumpedBytes);
    expect(next.storedBytes).toBeGreaterThanOrEqual(prev.storedBytes);
    expect(next.elapsedMs).toBeGreaterThanOrEqual(prev.elapsedMs);
  }
}

describe('live progress of a backup job, at a capped upload rate', () => {
  it('grows while the backup runs, ends at the backup\'s sizes, and estimates the second backup from the first', async () => {
    const first = await backupWatched();
    const final = first.job.progress!;
    expect(final).not.toBeNull();
    expect(final.dumpedBytes).toBe(first.backup.uncompressedSizeBytes);
    expect(final.storedBytes).toBe(first.backup.sizeBytes);
    expect(final.estimatedTotalBytes).toBeNull();
    expect(final.bytesPerSecond).toBe(Math.round((final.dumpedBytes * 1000) / final.elapsedMs));
    // Seen moving: several reports part-way (the stored count moves steadily at the capped rate;
    // the dumped count in the compressor's blocks), none beyond the end.
    const partWay = first.running.filter((p) => p.storedBytes > 0 && p.storedBytes < final.storedBytes);
    expect(new Set(partWay.map((p) => p.storedBytes)).size).toBeGreaterThanOrEqual(3);
    expect(first.running.some((p) => p.dumpedBytes > 0 && p.dumpedBytes < final.dumpedBytes)).toBe(true);
    expectMonotonic([...first.running, final]);
    for (const p of first.running) {
      expect(p.storedBytes).toBeLessThanOrEqual(first.backup.sizeBytes);
      expect(p.estimatedTotalBytes).toBeNull();
    }

    // BACKUP_MAX_UPLOAD_RATE=2MB/s: the storage writes took at least what the cap allows, burst aside.
    expect(first.backup.sizeBytes).toBeGreaterThan(4_000_000);
    const measured = first.backup.sizeBytes / (final.elapsedMs / 1000);
    expect(measured).toBeLessThanOrEqual(RATE * (first.backup.sizeBytes / (first.backup.sizeBytes - BURST)));

    const second = await backupWatched();
    expect(second.running.length).toBeGreaterThan(0);
    for (const p of [...second.running, second.job.progress!]) expect(p.estimatedTotalBytes).toBe(first.backup.uncompressedSizeBytes);
    expectMonotonic([...second.running, second.job.progress!]);
    expect(second.job.progress!.dumpedBytes).toBe(second.backup.uncompressedSizeBytes);
  }, 180_000);
});

/** A stderr that says it is a terminal (as process.stderr on one), recording what is drawn. */
function terminal(): { stream: NodeJS.WriteStream; text: () => string } {
  const stream = new PassThrough() as unknown as NodeJS.WriteStream & PassThrough;
  Object.assign(stream, { isTTY: true, columns: 160, rows: 40 });
  let text = '';
  stream.on('data', (b: Buffer) => (text += b.toString()));
  return { stream, text: () => text };
}

async function restore(args: string[], stderr: NodeJS.WriteStream): Promise<number> {
  return runCli(['--force', ...args], {
    env: {
      PATH: process.env.PATH ?? '',
      DB_HOST: pg.host, DB_PORT: String(pg.port), DB_NAME: 'app', DB_USER: pg.user, DB_PASSWORD: pg.password,
      STORAGE_BACKEND: 's3', API_TOKEN: TOKEN, DB_RESTORE_SERVICE_URL: svc.baseUrl,
    },
    stdout: new PassThrough(),
    stderr,
    process: new EventEmitter() as unknown as NodeJS.Process,
    countdownSeconds: 0,
  });
}

/** The download's size as the service sends it: what the bar must count up to. */
async function contentLength(): Promise<number> {
  const res = await A.request(`/api/v1/backups/${backupId}/download`, { method: 'HEAD' });
  expect(res.status).toBe(200);
  return Number(res.headers.get('content-length'));
}

/** The bar's frames for `phase` as drawn, in order: bytes done, of what total, at what rate. */
function frames(drawn: string, phase: string): { done: string; of: string; speed: string }[] {
  const frame = new RegExp(`${phase}\\s+\\[[= ]+\\] \\d+% \\| (.+?) of (.+?) \\| (.+?) \\|`, 'g');
  return [...drawn.matchAll(frame)].map((m) => ({ done: m[1]!, of: m[2]!, speed: m[3]! }));
}

describe('db-restore through the service, on a terminal', () => {
  beforeAll(async () => {
    // The progress test's backup, or a new one when this describe runs alone.
    const res = await A.request('/api/v1/backups/latest');
    backupId = res.status === 200 ? ((await res.json()) as Backup).id : (await A.backup()).backupId!;
  }, 60_000);

  it.each([
    ['by id, swap', () => [backupId], 'restore'],
    ['latest, swap', () => ['latest'], 'restore'],
    ['by id, --in-place (downloaded first)', () => [backupId, '--in-place'], 'download'],
  ])("draws the bar up to the download's Content-Length, fed with the downloaded bytes (%s)", async (_name, args, phase) => {
    const tty = terminal();
    expect(await restore(args(), tty.stream)).toBe(0);
    const total = formatBytes(await contentLength());
    const drawn = frames(tty.text(), phase);
    expect(drawn.length).toBeGreaterThanOrEqual(2);
    expect(drawn[0]).toEqual({ done: '0 B', of: total, speed: '-' });
    for (const f of drawn) expect(f.of).toBe(total);
    // The last frame: all of it, at a rate measured from the bytes received (done() alone draws none).
    expect(drawn.at(-1)!.done).toBe(total);
    expect(drawn.at(-1)!.speed).toMatch(/^[\d.]+ (B|KiB|MiB|GiB)\/s$/);
  }, 60_000);
});
