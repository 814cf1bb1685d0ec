// db-restore's progress bar for restores through the service: the built service (a child process)
// with real PostgreSQL and pg_dump, db-restore run in-process (runCli) with a terminal for stderr,
// so that it draws its bar as on an operator's screen.
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { runCli } from '@db-backup-service/cli';
import type { Job } from '@db-backup-service/contract';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatBytes } from '../cli/src/format.js';
import { api, freePort, startPostgres, startService, type Api, type PostgresCluster, type ServiceProcess } from './harness/index.js';

const TOKEN = randomBytes(32).toString('hex');

let pg: PostgresCluster;
let dir: string;
let svc: ServiceProcess;
let A: Api;
let backup: Job;

beforeAll(async () => {
  pg = await startPostgres({ database: 'app' });
  // A few MB of random hex: a restore long enough for the bar to move on its 5 frames a second.
  await pg.query('CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes SELECT g, md5(random()::text) || md5(random()::text) FROM generate_series(1, 40000) g', [], 'app');
  dir = await mkdtemp(join(tmpdir(), 'cli-progress-'));
  svc = await startService(
    {
      DB_HOST: pg.host, DB_PORT: String(pg.port), DB_NAME: 'app', DB_USER: pg.user, DB_PASSWORD: pg.password,
      API_TOKEN: TOKEN, HTTP_PORT: String(await freePort()), STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: dir,
      BACKUP_CRON: '0 0 1 1 *',
    },
    { waitFor: 'healthy' },
  );
  A = api(svc.baseUrl, TOKEN);
  backup = await A.backup();
  expect(backup.status).toBe('succeeded');
}, 120_000);

afterAll(async () => {
  await svc?.stop('SIGTERM', 30_000).catch(() => svc.kill());
  await pg?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
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
  const res = await A.request(`/api/v1/backups/${backup.backupId}/download`, { method: 'HEAD' });
  expect(res.status).toBe(200);
  return Number(res.headers.get('content-length'));
}

/** The bar's frames for `phase`: `[done, of]` as drawn, in order. */
function frames(drawn: string, phase: string): { done: string; of: string; speed: string }[] {
  const frame = new RegExp(`${phase}\\s+\\[[= ]+\\] \\d+% \\| (.+?) of (.+?) \\| (.+?) \\|`, 'g');
  return [...drawn.matchAll(frame)].map((m) => ({ done: m[1]!, of: m[2]!, speed: m[3]! }));
}

describe('db-restore through the service, on a terminal', () => {
  it.each([
    ['by id, swap', () => [backup.backupId!], 'restore'],
    ['latest, swap', () => ['latest'], 'restore'],
    ['by id, --in-place (downloaded first)', () => [backup.backupId!, '--in-place'], 'download'],
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
