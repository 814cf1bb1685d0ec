import { EventEmitter, once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from './cli.js';
import { ExitCode } from './exit-codes.js';

const TOKEN = 'cli-test-token-0123456789abcdef0123456789';

function capture() {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (b: Buffer) => (text += b.toString()));
  return { stream, text: () => text };
}

async function run(args: string[], env: Record<string, string>) {
  const stdout = capture();
  const stderr = capture();
  const code = await runCli(args, {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdout: stdout.stream,
    stderr: stderr.stream as unknown as NodeJS.WriteStream,
    process: new EventEmitter() as unknown as NodeJS.Process,
    now: () => Date.parse('2026-05-12T04:00:00Z'),
    countdownSeconds: 0,
  });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

let server: Server | undefined;
let dir: string | undefined;
afterEach(async () => {
  if (server) {
    server.closeAllConnections();
    await new Promise((r) => server?.close(r));
  }
  server = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

const backup = (id: string, createdAt: string) => ({ id, createdAt, sizeBytes: 8_421_376, sha256: 'f'.repeat(64), pgVersion: '15.18', durationMs: 1, triggeredBy: 'api' });

describe('db-restore (in-process)', () => {
  it('documents the exit codes in --help', async () => {
    const { code, stdout } = await run(['--help'], {});
    expect(code).toBe(0);
    expect(stdout).toContain('7  db-backup-service unreachable');
  });

  it('exits 2 on usage errors', async () => {
    expect((await run(['--bogus'], {})).code).toBe(ExitCode.USAGE);
    const both = await run(['latest', '--file', '/x.sql.gz'], {});
    expect(both.code).toBe(ExitCode.USAGE);
    expect(both.stderr).toContain('not both');
    expect((await run(['--in-place'], { STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: '/tmp' })).code).toBe(ExitCode.USAGE);
  });

  it('exits 2 listing every missing variable', async () => {
    const { code, stderr } = await run(['latest'], {});
    expect(code).toBe(ExitCode.USAGE);
    expect(stderr).toMatch(/DB_HOST.*\n.*DB_USER.*\n.*DB_PASSWORD.*\n.*DB_NAME.*\n.*STORAGE_BACKEND/);
  });

  it('lists a local directory as a table, and as JSON', async () => {
    dir = await mkdtemp(join(tmpdir(), 'cli-list-'));
    for (const [id, at] of [['backup_20260510T010000Z.sql.gz', '2026-05-10T01:00:00Z'], ['backup_20260512T010000Z.sql.gz', '2026-05-12T01:00:00Z']] as const) {
      await writeFile(join(dir, id), 'x');
      await writeFile(join(dir, `${id}.meta.json`), JSON.stringify({ ...backup(id, at), pgDumpVersion: '15', uncompressedSizeBytes: 1, compression: { format: 'gzip', level: 6 }, database: 'app', serviceVersion: '0.1.0' }));
    }
    const pin = { at: '2026-05-11T08:00:00.000Z', reason: 'the last one before the 2.0 schema migration' };
    await writeFile(join(dir, 'backup_20260510T010000Z.sql.gz.pin.json'), JSON.stringify({ format: 1, backupId: 'backup_20260510T010000Z.sql.gz', ...pin }));
    const env = { STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: dir };
    const table = await run([], env);
    expect(table.code).toBe(0);
    expect(table.stdout.split('\n')).toEqual([
      'ID                              CREATED               SIZE      AGE        PINNED',
      'backup_20260512T010000Z.sql.gz  2026-05-12T01:00:00Z  8.03 MiB  3h ago',
      'backup_20260510T010000Z.sql.gz  2026-05-10T01:00:00Z  8.03 MiB  2d 3h ago  yes: the last one before the 2.0 schema migr…',
      '',
    ]);
    const json = await run(['--json'], env);
    expect(JSON.parse(json.stdout).map((b: { id: string; pinned: unknown }) => [b.id, b.pinned])).toEqual([
      ['backup_20260512T010000Z.sql.gz', null],
      ['backup_20260510T010000Z.sql.gz', pin],
    ]);
  });

  it('lists S3 backups through the service API, pins as the service reports them', async () => {
    const pin = { at: '2026-05-11T08:00:00.000Z', reason: null };
    server = createServer((req, res) => {
      expect(req.headers.authorization).toBe(`Bearer ${TOKEN}`);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify([backup('backup_20260512T010000Z.sql.gz', '2026-05-12T01:00:00Z'), { ...backup('backup_20260511T010000Z.sql.gz', '2026-05-11T01:00:00Z'), pinned: pin }]));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    const env = { STORAGE_BACKEND: 's3', API_TOKEN: TOKEN };
    const { code, stdout } = await run(['--json', '--service-url', `http://127.0.0.1:${port}`], env);
    expect(code).toBe(0);
    // A service without pins (older) sends no `pinned`: the SDK makes it null.
    expect(JSON.parse(stdout).map((b: { pinned: unknown }) => b.pinned)).toEqual([null, pin]);
    const table = await run(['--service-url', `http://127.0.0.1:${port}`], env);
    expect(table.stdout.split('\n').map((line) => line.split(/\s{2,}/).slice(4))).toEqual([['PINNED'], [], ['yes'], []]);
  });

  it('exits 7 with a fix when the service is unreachable (S3 backend), without the token', async () => {
    // A port that was free a moment ago: the connection is refused.
    const probe = createServer().listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const port = (probe.address() as { port: number }).port;
    await new Promise((r) => probe.close(r));
    const { code, stderr } = await run([], { STORAGE_BACKEND: 's3', API_TOKEN: TOKEN, DB_RESTORE_SERVICE_URL: `http://127.0.0.1:${port}` });
    expect(code).toBe(ExitCode.SERVICE_UNREACHABLE);
    expect(stderr).toContain(`cannot reach db-backup-service at http://127.0.0.1:${port}: ECONNREFUSED`);
    expect(stderr).toContain('/health');
    expect(stderr).not.toContain(TOKEN);
  });

  it('exits 2 when the service refuses the token', async () => {
    server = createServer((_req, res) => {
      res.writeHead(401, { 'content-type': 'application/problem+json' });
      res.end(JSON.stringify({ type: 'about:blank', title: 'Unauthorized', status: 401 }));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    const { code, stderr } = await run([], { STORAGE_BACKEND: 's3', API_TOKEN: TOKEN, DB_RESTORE_SERVICE_URL: `http://127.0.0.1:${port}` });
    expect(code).toBe(ExitCode.USAGE);
    expect(stderr).toContain('API_TOKEN');
  });

  it('exits 4 for an unknown backup and reports it in the JSON result', async () => {
    dir = await mkdtemp(join(tmpdir(), 'cli-missing-'));
    const env = { STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: dir, DB_HOST: '127.0.0.1', DB_USER: 'u', DB_PASSWORD: 'p', DB_NAME: 'app' };
    const { code, stdout } = await run(['--json', 'backup_20260510T010000Z.sql.gz'], env);
    expect(code).toBe(ExitCode.NOT_FOUND);
    expect(JSON.parse(stdout)).toMatchObject({ ok: false, exitCode: 4, target: { database: 'app' } });
  });
});
