// S3 credentials from the AWS SDK's standard chain, as the built service sends them. fauxqs checks
// no credentials at all, so a small recording proxy sits in front of it: every request's SigV4
// access key id (Authorization: ... Credential=<keyid>/...) and x-amz-security-token are recorded,
// then forwarded unchanged.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, freePort, startPostgres, startS3, startService, type PostgresCluster, type S3Harness } from './harness/index.js';

const TOKEN = randomBytes(32).toString('hex');

interface Seen {
  readonly keyId: string | null;
  readonly sessionToken: string | null;
}

let cluster: PostgresCluster;
let s3: S3Harness;
let proxy: { server: Server; endpoint: string; seen: Seen[] };
let work: string;

beforeAll(async () => {
  [cluster, s3] = await Promise.all([startPostgres({ database: 'app' }), startS3()]);
  await cluster.query('CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100)', [], 'app');
  work = await mkdtemp(join(tmpdir(), 's3-credentials-'));
  const seen: Seen[] = [];
  const target = new URL(s3.endpoint);
  const server = createServer((req, res) => {
    const auth = req.headers.authorization ?? '';
    const token = req.headers['x-amz-security-token'];
    seen.push({ keyId: /Credential=([^/]+)\//.exec(auth)?.[1] ?? null, sessionToken: typeof token === 'string' ? token : null });
    const upstream = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      pipeline(answer, res).catch(() => undefined);
    });
    upstream.on('error', () => res.destroy());
    pipeline(req, upstream).catch(() => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  proxy = { server, endpoint: `http://127.0.0.1:${address.port}`, seen };
});

afterAll(async () => {
  proxy?.server.closeAllConnections();
  await new Promise((resolve) => proxy?.server.close(resolve));
  await Promise.all([cluster?.destroy(), s3?.destroy()]);
  if (work) await rm(work, { recursive: true, force: true });
});

/** Runs one backup through the proxy and returns what the S3 server was sent, and the logs. */
async function backupWith(prefix: string, awsEnv: Record<string, string>): Promise<{ seen: Seen[]; logs: string }> {
  const before = proxy.seen.length;
  const svc = await startService(
    {
      DB_HOST: cluster.host, DB_PORT: String(cluster.port), DB_NAME: 'app', DB_USER: cluster.user, DB_PASSWORD: cluster.password,
      STORAGE_BACKEND: 's3', S3_BUCKET: s3.bucket, S3_ENDPOINT: proxy.endpoint, S3_PREFIX: prefix, AWS_REGION: s3.region,
      API_TOKEN: TOKEN, HTTP_PORT: String(await freePort()), BACKUP_COMPRESSION_LEVEL: '1',
      // The chain must find the credentials below, never an instance role.
      AWS_EC2_METADATA_DISABLED: 'true', AWS_CONFIG_FILE: join(work, 'no-config'),
      ...awsEnv,
    },
    { waitFor: 'healthy' },
  );
  const job = await api(svc.baseUrl, TOKEN).backup({ timeoutMs: 60_000 });
  expect(job.status, job.errorMessage ?? '').toBe('succeeded');
  await svc.stop();
  return { seen: proxy.seen.slice(before), logs: svc.logs.join('\n') };
}

describe('S3 credentials', () => {
  it('come from a shared credentials file and profile when no static keys are set', async () => {
    const file = join(work, 'credentials');
    const secret = randomBytes(20).toString('hex');
    await writeFile(file, `[default]\naws_access_key_id = AKIDWRONGPROFILE\naws_secret_access_key = wrong\n\n[backups]\naws_access_key_id = AKIDFROMFILE\naws_secret_access_key = ${secret}\n`);
    const { seen, logs } = await backupWith('from-file', { AWS_SHARED_CREDENTIALS_FILE: file, AWS_PROFILE: 'backups' });
    // HeadBucket (health), the multipart upload, the read-back and the sidecar at least.
    expect(seen.length).toBeGreaterThan(4);
    expect(new Set(seen.map((s) => s.keyId))).toEqual(new Set(['AKIDFROMFILE']));
    expect(seen.every((s) => s.sessionToken === null)).toBe(true);
    expect(logs).not.toContain(secret);
  });

  it('send AWS_SESSION_TOKEN with static keys', async () => {
    const sessionToken = `session-${randomBytes(16).toString('hex')}`;
    const { seen, logs } = await backupWith('session', {
      AWS_ACCESS_KEY_ID: 'AKIDSTATIC', AWS_SECRET_ACCESS_KEY: s3.secretAccessKey, AWS_SESSION_TOKEN: sessionToken,
    });
    expect(seen.length).toBeGreaterThan(4);
    expect(new Set(seen.map((s) => `${s.keyId} ${s.sessionToken}`))).toEqual(new Set([`AKIDSTATIC ${sessionToken}`]));
    expect(logs).not.toContain(sessionToken);
    expect(logs).not.toContain(s3.secretAccessKey);
  });
});
