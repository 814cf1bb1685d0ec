import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { REPO_ROOT, REQUIRED_VARIABLES, documentedVariables, durationSeconds, hasVariable } from './image-deploy-helpers.js';

/**
 * The two compose examples, validated by Debian's docker-compose (1.29, no engine needed:
 * `docker-compose -f FILE config`), then checked against the README's configuration table.
 */

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile?: string };
  environment?: Record<string, string | null>;
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] | string };
  stop_grace_period?: string;
  command?: string[] | string;
  entrypoint?: string[] | string;
  user?: string;
}
interface ComposeConfig {
  services: Record<string, ComposeService>;
}

const API_TOKEN = 'a'.repeat(16) + 'b'.repeat(16) + 'c'.repeat(32);

function compose(file: string, env: Record<string, string>) {
  // Only PATH and what the test sets: no API_TOKEN or password from the caller's environment.
  const result = spawnSync('docker-compose', ['-f', file, 'config'], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, error: result.error };
}

const configs = new Map<string, ComposeConfig>();
/** `docker-compose -f file config` with API_TOKEN set, parsed (once per file: each run takes ~1 s). */
function config(file: string): ComposeConfig {
  const cached = configs.get(file);
  if (cached) return cached;
  const r = compose(file, { API_TOKEN });
  expect(r.stderr + (r.error?.message ?? ''), `docker-compose -f ${file} config`).not.toMatch(/error/i);
  expect(r.status).toBe(0);
  const parsed = parse(r.stdout) as ComposeConfig;
  configs.set(file, parsed);
  return parsed;
}

function healthTest(service: ComposeService | undefined): string {
  const test = service?.healthcheck?.test;
  return Array.isArray(test) ? test.join(' ') : String(test ?? '');
}

beforeAll(() => {
  const version = spawnSync('docker-compose', ['version', '--short'], { encoding: 'utf8' });
  if (version.error || version.status !== 0) {
    throw new Error('docker-compose is not installed: run `bash scripts/setup.sh` (it installs Debian\'s docker-compose)');
  }
});

describe.each([
  { file: 'docker-compose.local.yml', backend: 'local' as const },
  { file: 'docker-compose.s3.yml', backend: 's3' as const },
])('$file', ({ file, backend }) => {
  it('validates with docker-compose config', () => {
    const c = config(file);
    expect(Object.keys(c.services)).toContain('db-backup');
    expect(Object.keys(c.services)).toContain('postgres');
  });

  it('uses no image another service builds: each one is built by its own service or pulled', () => {
    const services = Object.entries(config(file).services);
    const built = new Set(services.filter(([, s]) => s.build).map(([, s]) => s.image));
    // docker-compose v1 pulls the image of a service without `build` before it builds any other.
    expect(services.filter(([, s]) => !s.build && built.has(s.image)).map(([name]) => name)).toEqual([]);
  });

  it('refuses to start without API_TOKEN, naming it', () => {
    const r = compose(file, {});
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('set API_TOKEN');
  });

  it('gives the service every required variable, only documented names, and builds the image from docker/Dockerfile', () => {
    const c = config(file);
    const svc = c.services['db-backup'];
    const env = svc?.environment ?? {};
    for (const name of [...REQUIRED_VARIABLES.common, ...REQUIRED_VARIABLES[backend]]) {
      expect(hasVariable(env, name), `${file}: db-backup needs ${name}`).toBe(true);
    }
    const documented = documentedVariables();
    expect(documented.size).toBeGreaterThan(20);
    for (const name of Object.keys(env)) expect(documented, `${name} is not in the README's configuration table`).toContain(name);
    expect(env.STORAGE_BACKEND).toBe(backend);
    expect(env.API_TOKEN).toBe(API_TOKEN);
    expect(svc?.build?.dockerfile).toBe('docker/Dockerfile');
    expect(svc?.build?.context).toBe(REPO_ROOT.replace(/\/$/, ''));
  });

  it('points the service at the PostgreSQL 18 service with matching credentials', () => {
    const c = config(file);
    const env = c.services['db-backup']?.environment ?? {};
    const pg = c.services[String(env.DB_HOST)];
    expect(pg?.image).toBe('postgres:18');
    expect(env.DB_PORT).toBe('5432');
    expect(env.DB_NAME).toBe(pg?.environment?.POSTGRES_DB);
    expect(env.DB_USER).toBe(pg?.environment?.POSTGRES_USER);
    expect(env.DB_PASSWORD).toBe(pg?.environment?.POSTGRES_PASSWORD);
    expect(healthTest(pg)).toContain('pg_isready');
  });

  it('keeps the PostgreSQL 18 data in a volume at /var/lib/postgresql (its data directory is versioned below it)', () => {
    const c = config(file);
    const pg = c.services[String(c.services['db-backup']?.environment?.DB_HOST)];
    // postgres:18: PGDATA=/var/lib/postgresql/18/docker; a volume at .../data (17 and older) would not hold it.
    expect(pg?.volumes ?? []).toContainEqual(expect.stringMatching(/^pgdata:\/var\/lib\/postgresql(:rw)?$/));
    expect(pg?.volumes ?? []).not.toContainEqual(expect.stringMatching(/\/var\/lib\/postgresql\/data/));
    expect(pg?.environment?.PGDATA).toBeUndefined();
  });

  it('starts the service after its dependencies are healthy, with a /health check and a stop grace period above SHUTDOWN_TIMEOUT', () => {
    const c = config(file);
    const svc = c.services['db-backup'];
    expect(svc?.depends_on?.postgres?.condition).toBe('service_healthy');
    expect(healthTest(svc)).toMatch(/curl -fsS .*http:\/\/127\.0\.0\.1:8080\/health/);
    const shutdown = durationSeconds(svc?.environment?.SHUTDOWN_TIMEOUT ?? '60s');
    expect(durationSeconds(svc?.stop_grace_period)).toBeGreaterThan(shutdown);
    // Internal use only: the API is published on the host's loopback interface.
    for (const port of svc?.ports ?? []) expect(port).toMatch(/^127\.0\.0\.1:/);
  });

  if (backend === 'local') {
    it('mounts the host directory ./backups at BACKUP_LOCAL_DIR, made writable for uid 10001 first', () => {
      const c = config(file);
      const svc = c.services['db-backup'];
      const dir = String(svc?.environment?.BACKUP_LOCAL_DIR);
      const hostDir = join(REPO_ROOT, 'backups');
      expect(svc?.volumes ?? []).toContainEqual(expect.stringMatching(new RegExp(`^${hostDir}:${dir}(:rw)?$`)));
      const init = c.services['backups-dir'];
      expect(svc?.depends_on?.['backups-dir']?.condition).toBe('service_completed_successfully');
      expect(init?.user).toBe('0:0');
      expect([init?.entrypoint].flat().join(' ')).toBe(`chown 10001:10001 ${dir}`);
      expect(init?.volumes ?? []).toContainEqual(expect.stringMatching(new RegExp(`^${hostDir}:${dir}(:rw)?$`)));
    });
  } else {
    it('creates the bucket in MinIO with a one-shot job before the service starts, and uses MinIO as S3_ENDPOINT', () => {
      const c = config(file);
      const svc = c.services['db-backup'];
      const env = svc?.environment ?? {};
      expect(c.services.minio?.image).toMatch(/^minio\/minio:/);
      expect(healthTest(c.services.minio)).toContain('mc ready local');
      expect(env.S3_ENDPOINT).toBe('http://minio:9000');
      const job = c.services['create-bucket'];
      expect(job?.depends_on?.minio?.condition).toBe('service_healthy');
      expect(svc?.depends_on?.['create-bucket']?.condition).toBe('service_completed_successfully');
      expect([job?.command].flat().join(' ')).toContain(`mc mb --ignore-existing local/${env.S3_BUCKET}`);
      expect(env.AWS_ACCESS_KEY_ID).toBe(c.services.minio?.environment?.MINIO_ROOT_USER);
      expect(env.AWS_SECRET_ACCESS_KEY).toBe(c.services.minio?.environment?.MINIO_ROOT_PASSWORD);
    });
  }
});
