// The built service with BACKUP_ENCRYPTION_RECIPIENTS, driven over HTTP (issue 15): recipients
// that do not parse stop the start with one message naming the line; an encrypted backup lists
// its recipients, downloads as the ciphertext it is (application/octet-stream, a .age name, its
// SHA-256), and the stock age CLI opens it.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backup } from '@db-backup-service/contract';
import { createClient } from '@db-backup-service/sdk';
import { api, fingerprint, freePort, pollUntil, runProcess, startPostgres, startService, type Api, type PostgresCluster, type ServiceProcess } from './harness/index.js';

const TOKEN = randomBytes(32).toString('hex');
const REPO_ROOT = join(import.meta.dirname, '..');

let pg: PostgresCluster;
let dir: string;
let keyFile: string;
let recipient: string;

beforeAll(async () => {
  pg = await startPostgres({ database: 'app' });
  await pg.query("CREATE TABLE secrets_of_the_app (id int PRIMARY KEY, note text); INSERT INTO secrets_of_the_app SELECT g, 'confidential ' || g FROM generate_series(1, 5000) g", [], 'app');
  dir = await mkdtemp(join(tmpdir(), 'service-age-'));
  keyFile = join(dir, 'key.txt');
  execFileSync('age-keygen', ['-o', keyFile], { stdio: 'ignore' });
  recipient = execFileSync('age-keygen', ['-y', keyFile]).toString().trim();
});

afterAll(async () => {
  await pg?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function baseEnv(storageDir: string): Record<string, string> {
  return {
    DB_HOST: pg.host, DB_PORT: String(pg.port), DB_NAME: 'app', DB_USER: pg.user, DB_PASSWORD: pg.password,
    STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: storageDir, API_TOKEN: TOKEN, BACKUP_COMPRESSION_LEVEL: '1',
  };
}

/** Runs the built service to its exit (a configuration error), with only `env`. */
function startFails(env: Record<string, string>): { status: number | null; stderr: string } {
  const run = spawnSync(process.execPath, [join(REPO_ROOT, 'server/dist/bin.js')], {
    env: { PATH: process.env.PATH ?? '', ...env, HTTP_PORT: '1' },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: run.status, stderr: run.stderr };
}

describe('start-up with recipients that do not parse', () => {
  it('a bad recipient in BACKUP_ENCRYPTION_RECIPIENTS stops the start, naming the variable, the line and why', async () => {
    const storageDir = await mkdtemp(join(dir, 'bad-'));
    const { status, stderr } = startFails({ ...baseEnv(storageDir), BACKUP_ENCRYPTION_RECIPIENTS: `${recipient}\nage1thisisnotakey` });
    expect(status).toBe(1);
    expect(stderr).toMatch(/Invalid configuration \(1 problem\):\n {2}- BACKUP_ENCRYPTION_RECIPIENTS: BACKUP_ENCRYPTION_RECIPIENTS line 2: "age1thisisnotakey" is not a valid age recipient/);
  });

  it('a recipients file with an SSH key names the file and the line', async () => {
    const storageDir = await mkdtemp(join(dir, 'bad-'));
    const file = join(dir, 'recipients.txt');
    await writeFile(file, `# backups of app\n${recipient}\n\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops@host\n`);
    const { status, stderr } = startFails({ ...baseEnv(storageDir), BACKUP_ENCRYPTION_RECIPIENTS_FILE: file });
    expect(status).toBe(1);
    expect(stderr).toContain(`BACKUP_ENCRYPTION_RECIPIENTS_FILE: ${file} line 4: "ssh-ed25519 AAAAC3Nz…" is an SSH public key`);
  });
});

describe('an encrypting service', () => {
  let svc: ServiceProcess;
  let A: Api;
  let backup: Backup;
  let storageDir: string;

  beforeAll(async () => {
    storageDir = await mkdtemp(join(dir, 'store-'));
    const recipientsFile = join(dir, 'backup-recipients.txt');
    await writeFile(recipientsFile, `# created by age-keygen\n${recipient}\n`);
    svc = await startService(
      {
        ...baseEnv(storageDir), BACKUP_ENCRYPTION_RECIPIENTS_FILE: recipientsFile, HTTP_PORT: String(await freePort()),
        // End to end: each backup drilled after it is taken, decrypted with the identity.
        RESTORE_DRILL: 'after-backup', RESTORE_DRILL_IDENTITY_FILE: keyFile,
      },
      { waitFor: 'healthy' },
    );
    A = api(svc.baseUrl, TOKEN);
    const job = await A.backup();
    expect(job.status).toBe('succeeded');
    backup = (await A.json<Backup[]>('/api/v1/backups')).find((b) => b.id === job.backupId)!;
  });

  afterAll(async () => {
    await svc?.stop();
  });

  it('lists the backup under its .age id with the recipients it was encrypted to', async () => {
    expect(backup.id).toMatch(/^backup_\d{8}T\d{6}Z\.sql\.gz\.age$/);
    expect(backup.encryption).toEqual({ format: 'age', recipients: [recipient] });
    const listed = await A.json<Backup[]>('/api/v1/backups');
    expect(listed.map((b) => b.id)).toEqual([backup.id]);
  });

  it('downloads the ciphertext as stored: application/octet-stream, a .age file name, its SHA-256; age -d opens it', async () => {
    const res = await A.request(`/api/v1/backups/${backup.id}/download`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect(res.headers.get('content-disposition')).toBe(`attachment; filename="${backup.id}"`);
    const body = Buffer.from(await res.arrayBuffer());
    expect(createHash('sha256').update(body).digest('hex')).toBe(backup.sha256);
    expect(body.subarray(0, 22).toString()).toBe('age-encryption.org/v1\n');
    expect(body.includes('confidential')).toBe(false);
    const sql = gunzipSync(execFileSync('age', ['-d', '-i', keyFile], { input: body, maxBuffer: 64 * 1024 * 1024 })).toString();
    expect(sql).toContain('COPY public.secrets_of_the_app');
    expect(sql).toContain('-- PostgreSQL database dump complete');
  });

  it("the SDK's downloadToFile saves it under its id and verifies its hash", async () => {
    const client = createClient({ baseUrl: svc.baseUrl, token: TOKEN });
    const saved = await client.downloadToFile('latest', (id) => join(dir, id));
    expect(saved).toMatchObject({ id: backup.id, sha256: backup.sha256, sizeBytes: backup.sizeBytes });
    expect(createHash('sha256').update(await readFile(join(dir, backup.id))).digest('hex')).toBe(backup.sha256);
  });

  it('the after-backup drill decrypts it with RESTORE_DRILL_IDENTITY_FILE and passes with its counts', async () => {
    const drilled = await pollUntil(
      async () => {
        const found = (await A.json<Backup[]>('/api/v1/backups')).find((b) => b.id === backup.id);
        return found?.drill ?? undefined;
      },
      { timeoutMs: 120_000, what: `a drill of ${backup.id}` },
    );
    expect(drilled).toMatchObject({ status: 'passed', tablesChecked: 1, rowsChecked: 5000, detail: null });
  });

  it.each([
    ['through the service (as for S3)', { STORAGE_BACKEND: 's3' }],
    ['from the backup directory', { STORAGE_BACKEND: 'local' }],
  ] as const)('db-restore --identity restores it %s, data equal to the source; without the identity it says what to pass', async (how, env) => {
    const target = `restored_${env.STORAGE_BACKEND}`;
    const run = (args: string[]) =>
      runProcess(process.execPath, [join(REPO_ROOT, 'cli/dist/bin.js'), '--force', ...args], {
        DB_HOST: pg.host, DB_PORT: String(pg.port), DB_USER: pg.user, DB_PASSWORD: pg.password, DB_NAME: 'app',
        BACKUP_LOCAL_DIR: storageDir, DB_RESTORE_SERVICE_URL: svc.baseUrl, API_TOKEN: TOKEN, ...env,
      });
    const missing = await run(['--database', target, 'latest']);
    expect(missing.code, how).toBe(2);
    expect(missing.stderr).toMatch(/--identity/);
    const restored = await run(['--identity', keyFile, '--database', target, 'latest']);
    expect(restored.code, restored.stderr).toBe(0);
    expect(await fingerprint(pg, target)).toEqual(await fingerprint(pg, 'app'));
  });

  it('/info says which recipients new backups are encrypted to', async () => {
    expect((await A.json<{ encryption: unknown }>('/info')).encryption).toEqual({ format: 'age', recipients: [recipient] });
  });

  it('says nothing of the data or a key in /info, /metrics or its logs', async () => {
    const info = await (await A.request('/info')).text();
    const metrics = await (await A.request('/metrics')).text();
    const key = (await readFile(keyFile, 'utf8')).split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-'))!;
    for (const text of [info, metrics, svc.logs.join('\n')]) {
      expect(text).not.toContain(key);
      expect(text).not.toContain('confidential');
    }
  });
});
