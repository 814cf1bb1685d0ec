// Restore drills of age-encrypted backups, end to end: the built service as a child process, real
// PostgreSQL, local storage. The encrypted backup is a real one of this service, encrypted as the
// encrypting backup path stores it: the dump and its contents manifest to the same recipient
// (`<id>.age`, `<id>.contents.json.age`), the sidecar plaintext with their ciphertexts' hashes.
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { contentsName, drillName, sidecarName, type Backup, type DrillRecord, type Info, type Job } from '@db-backup-service/contract';
import { encryptBuffer } from '@db-backup-service/restore';
import { api, fillRich, freePort, startPostgres, startService, type Api, type PostgresCluster, type ServiceProcess } from './harness/index.js';

const TOKEN = randomBytes(32).toString('hex');
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

let pg: PostgresCluster;
/** BACKUP_LOCAL_DIR, holding one encrypted backup. */
let dir: string;
let keys: string;
/** The service's TMPDIR: where a local drill cluster lives. */
let tmp: string;
let env: Record<string, string>;
/** The encrypted backup's id, and what its manifest says is in it. */
let id: string;
let expected: { tables: number; rows: number };
/** An encrypted backup (the same dump) whose sidecar records no contents manifest. */
let bare: string;
const key = { file: '', recipient: '', identity: '' };
const otherKey = { file: '', recipient: '', identity: '' };
const services: ServiceProcess[] = [];

function keygen(into: typeof key, file: string): void {
  execFileSync('age-keygen', ['-o', file], { stdio: 'ignore' });
  into.file = file;
  into.recipient = execFileSync('age-keygen', ['-y', file], { encoding: 'utf8' }).trim();
}

beforeAll(async () => {
  pg = await startPostgres({ database: 'app' });
  await fillRich(pg, 'app');
  dir = await mkdtemp(join(tmpdir(), 'svc-drills-age-'));
  keys = await mkdtemp(join(tmpdir(), 'svc-drills-age-keys-'));
  keygen(key, join(keys, 'key.txt'));
  keygen(otherKey, join(keys, 'other.txt'));
  key.identity = (await readFile(key.file, 'utf8')).split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-1'))!;
  otherKey.identity = (await readFile(otherKey.file, 'utf8')).split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-1'))!;
  tmp = await mkdtemp(join(tmpdir(), 'svc-drills-age-tmp-'));
  await chmod(tmp, 0o711);
  env = {
    DB_HOST: pg.host, DB_PORT: String(pg.port), DB_NAME: 'app', DB_USER: pg.user, DB_PASSWORD: pg.password, API_TOKEN: TOKEN,
    STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: dir, TMPDIR: tmp, RESTORE_DRILL_TARGET: 'server',
  };

  // A real backup, then encrypted in place of the plain one, as the encrypting backup path writes it.
  const svc = await start({});
  const plainId = (await svc.A.backup()).backupId!;
  await svc.svc.stop();
  id = `${plainId}.age`;
  const dump = await encryptBuffer(await readFile(join(dir, plainId)), [key.recipient]);
  const manifest = await encryptBuffer(await readFile(join(dir, contentsName(plainId))), [key.recipient]);
  const sidecar = JSON.parse(await readFile(join(dir, sidecarName(plainId)), 'utf8')) as Record<string, unknown> & { contents: { sha256: string; tables: number; rows: number } };
  expected = { tables: sidecar.contents.tables, rows: sidecar.contents.rows };
  await writeFile(join(dir, id), dump);
  await writeFile(join(dir, contentsName(id)), manifest);
  await writeFile(join(dir, sidecarName(id)), JSON.stringify({
    ...sidecar, id, sizeBytes: dump.length, sha256: sha256(dump), contents: { ...sidecar.contents, sha256: sha256(manifest) },
    encryption: { format: 'age', recipients: [key.recipient] },
  }));
  // And one without a contents manifest (as the reference service's): the drill counts the decrypted stream itself.
  // A minute older than the real one: retention keeps both, the listing's order is known.
  const bareAt = new Date(Date.parse(sidecar.createdAt as string) - 60_000);
  bare = `backup_${bareAt.toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '')}.sql.gz.age`;
  await writeFile(join(dir, bare), dump);
  await writeFile(join(dir, sidecarName(bare)), JSON.stringify({
    ...sidecar, id: bare, createdAt: bareAt.toISOString(), sizeBytes: dump.length, sha256: sha256(dump), contents: null,
    encryption: { format: 'age', recipients: [key.recipient] },
  }));
  for (const name of [sidecarName(plainId), contentsName(plainId), plainId]) await unlink(join(dir, name));
}, 300_000);

afterAll(async () => {
  for (const svc of services) await svc.stop('SIGTERM', 30_000).catch(() => svc.kill());
  const logs = services.flatMap((svc) => svc.logs).join('\n');
  // No secret in any line the service wrote: the password, the token, and neither identity.
  for (const secret of [pg?.password, TOKEN, key.identity, otherKey.identity].filter((s) => s)) expect(logs).not.toContain(secret);
  await pg?.destroy();
  for (const d of [dir, keys, tmp]) if (d) await rm(d, { recursive: true, force: true });
});

async function start(extra: Record<string, string>): Promise<{ svc: ServiceProcess; A: Api }> {
  const svc = await startService({ ...env, HTTP_PORT: String(await freePort()), ...extra }, { waitFor: 'healthy', timeoutMs: 60_000 });
  services.push(svc);
  return { svc, A: api(svc.baseUrl, TOKEN) };
}

async function drill(A: Api, which = id): Promise<Job> {
  const res = await A.request(`/api/v1/backups/${which}/drill`, { method: 'POST' });
  const body = (await res.json()) as Job;
  if (res.status !== 202) throw new Error(`POST drill: ${res.status} ${JSON.stringify(body)}`);
  return A.waitForJob(body.jobId, 180_000);
}

async function scratchDatabases(): Promise<string[]> {
  const { rows } = await pg.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datname LIKE 'app\\_\\_drill\\_%'");
  return rows.map((r) => r.datname);
}

const readRecord = async (which = id) => JSON.parse(await readFile(join(dir, drillName(which)), 'utf8')) as DrillRecord;
const listedOf = async (A: Api, which: string) => (await A.json<Backup[]>('/api/v1/backups')).find((b) => b.id === which);

describe('drills of an encrypted backup', () => {
  it('without RESTORE_DRILL_IDENTITY_FILE: warned at start, the drill is skipped with the reason (the job fails with it), never counted as verified', async () => {
    const { svc, A } = await start({ RESTORE_DRILL: 'after-backup', BACKUP_ENCRYPTION_RECIPIENTS: key.recipient });
    const warning = JSON.parse(await svc.waitForLog('drills will be skipped')) as Record<string, unknown>;
    expect(warning).toMatchObject({ level: 'warn', message: 'RESTORE_DRILL is on but backups are encrypted and RESTORE_DRILL_IDENTITY_FILE is unset: drills will be skipped' });
    const reason = `backup ${id} is encrypted (age); set RESTORE_DRILL_IDENTITY_FILE to an identity file holding the key of one of its recipients to drill it`;

    const job = await drill(A);
    expect(job).toMatchObject({ kind: 'drill', status: 'failed', backupId: id, errorMessage: reason });
    const listed = await listedOf(A, id);
    expect(listed).toMatchObject({ id, encryption: { format: 'age', recipients: [key.recipient] } });
    expect(listed!.drill).toMatchObject({ status: 'skipped', detail: reason, tablesChecked: 0, rowsChecked: 0 });
    expect(await readRecord()).toMatchObject({ status: 'skipped', detail: reason, serverVersion: null });
    const info = await A.json<Info>('/info');
    expect(info.drill.last).toMatchObject({ backupId: id, status: 'skipped', detail: reason });
    expect(info.backup).toMatchObject({ lastVerifiedBackupId: null, lastVerifiedBackupAgeSeconds: null });
    const metrics = await (await fetch(`${A.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/^dbbackup_drills_total\{status="skipped"\} 1$/m);
    expect(metrics).not.toMatch(/^dbbackup_drills_total\{status="passed"\}/m);
    expect(metrics).not.toMatch(/^dbbackup_drill_last_success_timestamp_seconds /m);
    expect(JSON.parse(await svc.waitForLog('restore drill skipped'))).toMatchObject({ level: 'warn', backupId: id, reason });
    expect(await scratchDatabases()).toEqual([]);
    await svc.stop();
  }, 300_000);

  it.each(['server', 'local'] as const)('target %s, with an identity of one of its recipients: decrypted while streaming, the drill passes with the exact counts and verifies the backup', async (target) => {
    const both = join(keys, 'both.txt');
    // Several identities, the right one second: each is tried.
    await writeFile(both, `${await readFile(otherKey.file, 'utf8')}\n${await readFile(key.file, 'utf8')}`);
    const { svc, A } = await start({ RESTORE_DRILL_IDENTITY_FILE: both, RESTORE_DRILL_TARGET: target });
    const job = await drill(A);
    expect(job, JSON.stringify(job)).toMatchObject({ kind: 'drill', status: 'succeeded', backupId: id, errorMessage: null });
    const listed = await listedOf(A, id);
    expect(listed!.drill).toEqual({ status: 'passed', at: expect.any(String), durationMs: expect.any(Number), tablesChecked: expected.tables, rowsChecked: expected.rows, detail: null });
    expect(await readRecord()).toMatchObject({ status: 'passed', target, mismatches: [], serverVersion: expect.stringMatching(/^\d+/) });
    expect((await A.json<Info>('/info')).backup.lastVerifiedBackupId).toBe(id);
    expect(await scratchDatabases()).toEqual([]);
    await svc.stop();
  }, 300_000);

  it('with identities of other keys only: the drill fails with age\'s message, naming the encrypted manifest, and leaves nothing behind', async () => {
    const { svc, A } = await start({ RESTORE_DRILL_IDENTITY_FILE: otherKey.file });
    const job = await drill(A);
    expect(job).toMatchObject({ kind: 'drill', status: 'failed', backupId: id });
    // The manifest is read first, and is encrypted to the same recipients: it is what refuses the key.
    expect(job.errorMessage).toMatch(new RegExp(`^the contents manifest ${contentsName(id).replace(/\./g, '\\.')} was encrypted to other keys: none of the 1 identity given opens it`));
    const record = await readRecord();
    expect(record).toMatchObject({ status: 'failed', detail: job.errorMessage, tablesChecked: 0 });
    const info = await A.json<Info>('/info');
    expect(info.drill.last).toMatchObject({ backupId: id, status: 'failed' });
    // The newest drill is what counts: failed, so not verified (whatever drill came before it).
    expect(info.backup.lastVerifiedBackupId).toBeNull();
    expect(await scratchDatabases()).toEqual([]);
    await svc.stop();
  }, 300_000);

  it('without a contents manifest: the right identity passes counting the decrypted stream; a wrong one fails with age\'s message and leaves no scratch database', async () => {
    const right = await start({ RESTORE_DRILL_IDENTITY_FILE: key.file });
    const passed = await drill(right.A, bare);
    expect(passed, JSON.stringify(passed)).toMatchObject({ status: 'succeeded', backupId: bare });
    expect((await listedOf(right.A, bare))!.drill).toMatchObject({ status: 'passed', tablesChecked: expected.tables, rowsChecked: expected.rows });
    await right.svc.stop();

    const wrong = await start({ RESTORE_DRILL_IDENTITY_FILE: otherKey.file });
    const failed = await drill(wrong.A, bare);
    expect(failed).toMatchObject({ status: 'failed', backupId: bare });
    expect(failed.errorMessage).toMatch(new RegExp(`^backup ${bare.replace(/\./g, '\\.')} was encrypted to other keys: none of the 1 identity given opens it`));
    // The dump's age header refused it (restore's peek, before CREATE DATABASE): the server was reached, no table checked.
    expect(await readRecord(bare)).toMatchObject({ status: 'failed', tablesChecked: 0, serverVersion: expect.stringMatching(/^\d+/) });
    expect(await scratchDatabases()).toEqual([]);
    await wrong.svc.stop();
  }, 300_000);
});
