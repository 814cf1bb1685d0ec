// One service under test with its PostgreSQL, storage and the secrets handed to it.
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Transform, Writable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { contentsName, type Backup } from '@db-backup-service/contract';
import {
  api, fillVaried, fingerprint, freePort, IMAGE_RUNTIME_ENV, startPostgres, startS3, startService,
  type Api, type PostgresCluster, type S3Harness, type ServiceProcess,
} from '../../harness/index.js';
import { SecretWatch } from './secrets.js';

export const S3_PREFIX = 'db/backups';
const TRAILER = '-- PostgreSQL database dump complete';

export interface Rig {
  readonly backend: 'local' | 's3';
  readonly pg: PostgresCluster;
  readonly s3: S3Harness | null;
  /** The local backend's directory (also created, unused, for S3). */
  readonly dir: string;
  readonly token: string;
  readonly env: Record<string, string>;
  readonly watch: SecretWatch;
  svc: ServiceProcess;
  A: Api;
  /** Secrets by name, for SecretWatch instances of the test's own. */
  readonly secrets: Record<string, string>;
  /** Stops the service, scans its logs, removes everything. */
  tearDown(): Promise<void>;
}

export interface RigOptions {
  readonly backend: 'local' | 's3';
  /** Rows of fillVaried's `big` table: 150,000 is a ~4.5 MB gzip-1 dump, ~1-2 s per backup here. */
  readonly bigRows?: number;
  /** The local backend's directory (e.g. a tmpfs mount); default: a fresh temp dir. */
  readonly dir?: string;
  readonly env?: Record<string, string>;
}

export async function startRig(opts: RigOptions): Promise<Rig> {
  const pg = await startPostgres({ database: 'app' });
  const cleanups: (() => Promise<unknown>)[] = [() => pg.destroy()];
  try {
    await fillVaried(pg, 'app', { bigRows: opts.bigRows ?? 150_000 });
    const s3 = opts.backend === 's3' ? await startS3({ persist: true }) : null;
    if (s3) cleanups.push(() => s3.destroy());
    const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'faults-backups-')));
    if (!opts.dir) cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const token = randomBytes(32).toString('hex');
    const storageEnv: Record<string, string> = s3
      ? {
          STORAGE_BACKEND: 's3', S3_BUCKET: s3.bucket, S3_ENDPOINT: s3.endpoint, S3_PREFIX,
          AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
        }
      : { STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: dir };
    const env: Record<string, string> = {
      DB_HOST: pg.host, DB_PORT: String(pg.port), DB_NAME: 'app', DB_USER: pg.user, DB_PASSWORD: pg.password,
      API_TOKEN: token, HTTP_HOST: '127.0.0.1', HTTP_PORT: String(await freePort()),
      BACKUP_COMPRESSION_LEVEL: '1', RETENTION_DAYS: '30',
      // Clean-up leaves leftovers younger than BACKUP_TIMEOUT alone (they may be another writer's
      // upload in flight): short here, so that a fault's leftovers become removable within a test.
      // Backups of the rig's database take about a second, well inside it, faults included.
      BACKUP_TIMEOUT: '45s',
      // Memory is measured here: run the service with the image's runtime settings.
      ...IMAGE_RUNTIME_ENV,
      ...storageEnv, ...opts.env,
      // FAULTS_SERVICE_ENV='{"NAME":"value"}': extra service settings for an experiment (e.g. LOG_LEVEL).
      ...(JSON.parse(process.env.FAULTS_SERVICE_ENV ?? '{}') as Record<string, string>),
    };
    const secrets: Record<string, string> = { DB_PASSWORD: pg.password, API_TOKEN: token };
    if (s3) secrets.AWS_SECRET_ACCESS_KEY = s3.secretAccessKey;
    const watch = new SecretWatch(secrets);
    const svc = await startService(env, { waitFor: 'healthy' });
    const rig: Rig = {
      backend: opts.backend, pg, s3, dir, token, env, watch, svc, A: api(svc.baseUrl, token), secrets,
      async tearDown() {
        await rig.svc.stop('SIGTERM', 30_000).catch(() => rig.svc.kill());
        rig.svc.logs.forEach((line, i) => watch.scan(`service log line ${i + 1}`, line));
        // FAULTS_KEEP_LOGS=DIR keeps the service's log for a post-mortem.
        const keep = process.env.FAULTS_KEEP_LOGS;
        if (keep) await writeFile(join(keep, `service-${opts.backend}-${rig.svc.pid}.log`), `${rig.svc.logs.join('\n')}\n`);
        for (const c of cleanups.reverse()) await c().catch(() => undefined);
      },
    };
    return rig;
  } catch (error) {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    throw error;
  }
}

/** Restarts the service process with the rig's env (plus `extra`); the old logs are scanned first. */
export async function restartService(rig: Rig, extra: Record<string, string> = {}): Promise<void> {
  await rig.svc.stop('SIGTERM', 30_000);
  rig.svc.logs.forEach((line, i) => rig.watch.scan(`service log line ${i + 1} (before restart)`, line));
  rig.svc = await startService({ ...rig.env, ...extra }, { waitFor: 'healthy' });
  rig.A = api(rig.svc.baseUrl, rig.token);
}

export interface VerifiedBackup {
  readonly id: string;
  readonly sizeBytes: number;
  readonly uncompressedBytes: number;
}

/**
 * Downloads `backup` through the API and checks it: status 200, size and SHA-256 equal to the
 * listing, valid gzip to the end, and a plain dump that ends with pg_dump's completion trailer.
 * With `saveTo`, the compressed bytes are also written there (for a restore).
 */
export async function verifyBackup(A: Api, backup: Backup, saveTo?: string): Promise<VerifiedBackup> {
  const res = await A.request(`/api/v1/backups/${backup.id}/download`, { signal: AbortSignal.timeout(60_000) });
  if (res.status !== 200) throw new Error(`download of ${backup.id}: ${res.status} ${await res.text()}`);
  const hash = createHash('sha256');
  let size = 0;
  let uncompressed = 0;
  let tail = '';
  // The copy for a restore is written beside the check (a few MB: write-behind is fine).
  const copy = saveTo ? createWriteStream(saveTo, { mode: 0o600 }) : null;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      copy?.write(chunk);
      cb(null, chunk);
    },
  });
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      uncompressed += chunk.length;
      tail = (tail + chunk.toString('latin1')).slice(-2048);
      cb();
    },
  });
  try {
    await pipeline(Readable.fromWeb(res.body! as WebReadableStream), meter, createGunzip(), sink);
  } finally {
    if (copy) await new Promise<void>((resolve, reject) => copy.end((err?: Error | null) => (err ? reject(err) : resolve())));
  }
  const sha = hash.digest('hex');
  if (size !== backup.sizeBytes) throw new Error(`${backup.id}: downloaded ${size} bytes, listed ${backup.sizeBytes}`);
  if (sha !== backup.sha256) throw new Error(`${backup.id}: SHA-256 ${sha}, listed ${backup.sha256}`);
  if (!tail.includes(TRAILER)) throw new Error(`${backup.id}: the dump does not end with pg_dump's completion trailer`);
  return { id: backup.id, sizeBytes: size, uncompressedBytes: uncompressed };
}

/**
 * What storage holds besides complete backups (invariant 1): S3 keys under the prefix other than
 * `<id>` + `<id>.meta.json` pairs of listed backups (and their `<id>.contents.json`); local files other than such pairs (temp files
 * `.tmp-*` included). Empty when storage holds exactly the listed backups.
 *
 * fauxqs lists no multipart uploads (ListMultipartUploads is always empty), so an upload left
 * unaborted by an S3 outage cannot be seen here, only complete objects can; the abort path itself
 * is covered by the storage tests against the emulator's AbortMultipartUpload.
 */
export async function storageLeftovers(rig: Rig, listed: readonly Backup[]): Promise<string[]> {
  const expected = new Set(listed.flatMap((b) => [b.id, `${b.id}.meta.json`]));
  // A listed backup's contents manifest belongs to it (written before its sidecar).
  const companions = new Set(listed.map((b) => contentsName(b.id)));
  const present = rig.s3
    ? (await rig.s3.listKeys(`${S3_PREFIX}/`)).map((k) => k.slice(S3_PREFIX.length + 1))
    : await readdir(rig.dir);
  const extra = present.filter((name) => !expected.has(name) && !companions.has(name));
  const missing = [...expected].filter((name) => !present.includes(name)).map((n) => `missing: ${n}`);
  return [...extra, ...missing];
}

/** Files in the local backup directory whose mode is not owner-only (0600). */
export async function filesNotOwnerOnly(dir: string): Promise<string[]> {
  const bad: string[] = [];
  for (const name of await readdir(dir)) {
    const mode = (await stat(join(dir, name))).mode & 0o777;
    if (mode !== 0o600) bad.push(`${name} ${mode.toString(8)}`);
  }
  return bad;
}

/**
 * Fingerprint keys (tables, sequences, views, indexes, large objects) on which database `a` and
 * `b` differ, each printed with both values; empty when they hold the same data.
 */
export async function fingerprintDifferences(pg: PostgresCluster, a: string, b: string): Promise<string[]> {
  const [fa, fb] = [await fingerprint(pg, a), await fingerprint(pg, b)];
  return Object.keys({ ...fa, ...fb })
    .filter((k) => fa[k] !== fb[k])
    .map((k) => `${k}: ${a}=${fa[k] ?? '(missing)'} ${b}=${fb[k] ?? '(missing)'}`);
}
