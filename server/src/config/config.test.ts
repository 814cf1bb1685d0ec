import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ConfigError, loadConfig, MAX_TIMER_MS } from './config.js';
import { cgroupCpuQuota, usableCpus } from './cpu-limit.js';
import { formatIsoDuration, parseDuration } from './duration.js';

const TOKEN = 'a'.repeat(64);
const PASSWORD = 'pw-S3cr3t-value';
const AWS_SECRET = 'aws-secret-value-xyz';
const base = { DB_HOST: 'db', DB_NAME: 'app', DB_USER: 'app', DB_PASSWORD: PASSWORD, STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: '/backups', API_TOKEN: TOKEN };

function problems(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('applies every default', () => {
    const config = loadConfig(base);
    expect(config.db).toEqual({ host: 'db', port: 5432, name: 'app', user: 'app', password: PASSWORD, tls: { mode: 'prefer', rootCert: null, cert: null, key: null } });
    expect(config.schedule).toEqual({ intervalMs: 86_400_000, intervalIso: 'PT24H', cron: null });
    expect(config.backup.namePrefix).toBe('backup');
    expect(config.backup.compression).toEqual({ format: 'gzip', level: 5 });
    expect(config.backup.compressionThreads).toBeGreaterThanOrEqual(1);
    expect(config.retention).toEqual({ days: 7, minCount: 1, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepYearly: 0, keepNewestVerified: false, dryRun: false });
    expect(config.storage).toEqual({ backend: 'local', dir: '/backups' });
    expect(config.http).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(config.log).toEqual({ format: 'json', level: 'info' });
    expect(config.shutdownTimeoutMs).toBe(60_000);
    expect(config.backup.timeoutMs).toBe(6 * 3600_000);
    expect(config.backup.lockWaitTimeoutMs).toBe(60_000);
    expect(config.pgBinDir).toBeNull();
    expect(config.pgClientsDir).toBeNull();
    expect(Object.isFrozen(config) && Object.isFrozen(config.db)).toBe(true);
  });

  it('applies the S3 defaults', () => {
    const config = loadConfig({ ...base, STORAGE_BACKEND: 's3', S3_BUCKET: 'b', AWS_ACCESS_KEY_ID: 'k', AWS_SECRET_ACCESS_KEY: AWS_SECRET });
    expect(config.storage).toEqual({
      backend: 's3', bucket: 'b', prefix: 'backups', endpoint: null, region: 'eu-central-1', partSizeBytes: null,
      credentials: { accessKeyId: 'k', secretAccessKey: AWS_SECRET, sessionToken: null }, connectTimeoutMs: 10_000, requestTimeoutMs: 60_000,
    });
  });

  it('reads every variable', () => {
    const config = loadConfig({
      ...base, DB_PORT: '6543', BACKUP_INTERVAL: '1h30m', BACKUP_NAME_PREFIX: 'prod-db', RETENTION_DAYS: '30', RETENTION_MIN_COUNT: '3',
      RETENTION_KEEP_DAILY: '7', RETENTION_KEEP_WEEKLY: '5', RETENTION_KEEP_MONTHLY: '12', RETENTION_KEEP_YEARLY: '3', RETENTION_DRY_RUN: 'TRUE', RESTORE_DRILL: 'after-backup',
      HTTP_PORT: '9000', LOG_FORMAT: 'plain', BACKUP_COMPRESSION_LEVEL: '1', BACKUP_COMPRESSION_THREADS: '4', SHUTDOWN_TIMEOUT: '2m', PG_BIN_DIR: '/opt/pg/bin',
      PG_CLIENTS_DIR: '/opt/pg', BACKUP_CRON: '0 3 * * *', BACKUP_MAX_UPLOAD_RATE: '50MB/s',
    });
    expect(config.db.port).toBe(6543);
    expect(config.schedule).toEqual({ intervalMs: 5_400_000, intervalIso: 'PT1H30M', cron: '0 3 * * *' });
    expect(config.backup).toEqual({ namePrefix: 'prod-db', compression: { format: 'gzip', level: 1 }, compressionThreads: 4, timeoutMs: 6 * 3600_000, lockWaitTimeoutMs: 60_000, maxUploadBytesPerSecond: 50_000_000, encryption: null });
    expect(config.retention).toEqual({ days: 30, minCount: 3, keepDaily: 7, keepWeekly: 5, keepMonthly: 12, keepYearly: 3, keepNewestVerified: true, dryRun: true });
    expect(config.http.port).toBe(9000);
    expect(config.log.format).toBe('plain');
    expect(config.shutdownTimeoutMs).toBe(120_000);
    expect(config.pgBinDir).toBe('/opt/pg/bin');
    expect(config.pgClientsDir).toBe('/opt/pg');
  });

  it('reads BACKUP_COMPRESSION and checks BACKUP_COMPRESSION_LEVEL against that format (per-format range and default)', () => {
    expect(loadConfig({ ...base, BACKUP_COMPRESSION: 'zstd' }).backup.compression).toEqual({ format: 'zstd', level: 3 });
    expect(loadConfig({ ...base, BACKUP_COMPRESSION: 'zstd', BACKUP_COMPRESSION_LEVEL: '19' }).backup.compression).toEqual({ format: 'zstd', level: 19 });
    expect(loadConfig({ ...base, BACKUP_COMPRESSION: 'gzip', BACKUP_COMPRESSION_LEVEL: '9' }).backup.compression).toEqual({ format: 'gzip', level: 9 });
    // 12 is a zstd level, not a gzip one; 20 and up are zstd's --ultra levels, which the service does not offer.
    expect(problems({ ...base, BACKUP_COMPRESSION_LEVEL: '12' }).message).toContain(
      'BACKUP_COMPRESSION_LEVEL: "12" is not a whole number from 1 to 9. For gzip use 1 (fastest) to 9 (smallest); default 5.');
    expect(problems({ ...base, BACKUP_COMPRESSION: 'zstd', BACKUP_COMPRESSION_LEVEL: '20' }).message).toContain(
      'BACKUP_COMPRESSION_LEVEL: "20" is not a whole number from 1 to 19. For zstd use 1 (fastest) to 19 (smallest); default 3.');
    const bad = problems({ ...base, BACKUP_COMPRESSION: 'xz' });
    expect(bad.problems.map((p) => p.variable)).toEqual(['BACKUP_COMPRESSION']);
    expect(bad.message).toContain('BACKUP_COMPRESSION: "xz" is not one of gzip, zstd. Set it to one of: gzip, zstd.');
  });

  it('lists every missing required variable at once', () => {
    const error = problems({});
    const names = error.problems.map((p) => p.variable);
    expect(names).toEqual(expect.arrayContaining(['DB_HOST', 'DB_NAME', 'DB_USER', 'DB_PASSWORD', 'STORAGE_BACKEND', 'API_TOKEN']));
    expect(error.message).toMatch(/6 problems/);
    for (const p of error.problems) expect(p.fix.length).toBeGreaterThan(10);
  });

  it('requires the backend-specific variables', () => {
    expect(problems({ ...base, BACKUP_LOCAL_DIR: '' }).problems.map((p) => p.variable)).toEqual(['BACKUP_LOCAL_DIR']);
    expect(problems({ ...base, STORAGE_BACKEND: 's3' }).problems.map((p) => p.variable)).toEqual(['S3_BUCKET']);
    expect(problems({ ...base, STORAGE_BACKEND: 'ftp' }).message).toMatch(/STORAGE_BACKEND: "ftp" is not one of local, s3/);
  });

  it('refuses a short API token with a hint', () => {
    const error = problems({ ...base, API_TOKEN: 'short-token' });
    expect(error.message).toMatch(/API_TOKEN: too short \(11 characters; at least 32 needed\)/);
    expect(error.message).toContain('openssl rand -hex 32');
    expect(error.message).not.toContain('short-token');
  });

  it('rejects invalid values showing the value (never a secret)', () => {
    const error = problems({ ...base, DB_PORT: 'x', HTTP_PORT: '70000', BACKUP_INTERVAL: 'daily', LOG_FORMAT: 'xml', RETENTION_DAYS: '-1', BACKUP_CRON: 'every night', BACKUP_NAME_PREFIX: '../x', BACKUP_COMPRESSION_LEVEL: '0' });
    expect(error.problems.map((p) => p.variable).sort()).toEqual(
      ['BACKUP_COMPRESSION_LEVEL', 'BACKUP_CRON', 'BACKUP_INTERVAL', 'BACKUP_NAME_PREFIX', 'DB_PORT', 'HTTP_PORT', 'LOG_FORMAT', 'RETENTION_DAYS'].sort(),
    );
    expect(error.message).toContain('BACKUP_INTERVAL: "daily" is not a duration');
    expect(error.message).toContain('PT24H');
  });

  it('refuses a bad retention value or an unknown RETENTION_ name (a misspelt keep rule) with the variable and the fix', () => {
    const error = problems({
      ...base, RETENTION_KEEP_DAILY: '-7', RETENTION_KEEP_WEEKLY: '4w', RETENTION_KEEP_MONTHLY: '1.5', RETENTION_KEEP_YEARLY: 'all', RETENTION_DRY_RUN: 'maybe',
      RETENTION_DAYS: '7d', RETENTION_MIN_COUNT: '0', RETENTION_KEEP_DAYS: '7', RETENTION_KEEP_HOURLY: '24',
    });
    expect(error.problems.map((p) => p.variable).sort()).toEqual([
      'RETENTION_DAYS', 'RETENTION_DRY_RUN', 'RETENTION_KEEP_DAILY', 'RETENTION_KEEP_DAYS', 'RETENTION_KEEP_HOURLY', 'RETENTION_KEEP_MONTHLY', 'RETENTION_KEEP_WEEKLY',
      'RETENTION_KEEP_YEARLY', 'RETENTION_MIN_COUNT',
    ]);
    expect(error.message).toContain('RETENTION_KEEP_DAILY: "-7" is not a whole number from 0 to 100000. Set for how many of the newest days that have a backup');
    expect(error.message).toContain('e.g. RETENTION_KEEP_WEEKLY=4');
    expect(error.message).toContain('RETENTION_KEEP_DAYS: not a retention setting (misspelt?). Use one of RETENTION_DAYS, RETENTION_MIN_COUNT, RETENTION_KEEP_DAILY');
    expect(error.message).toContain('RETENTION_DRY_RUN: "maybe" is not true or false');
    // An empty value is unset, as for every variable.
    expect(loadConfig({ ...base, RETENTION_KEEP_DAILY: '', RETENTION_DRY_RUN: ' ' }).retention).toMatchObject({ keepDaily: 0, dryRun: false });
  });

  it('accepts <NAME>_FILE for every secret and never echoes the secret', () => {
    const dir = mkdtempSync(join(tmpdir(), 'config-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true })); // the files hold test secrets
    const files = { DB_PASSWORD_FILE: join(dir, 'pw'), API_TOKEN_FILE: join(dir, 'token'), AWS_SECRET_ACCESS_KEY_FILE: join(dir, 'aws') };
    writeFileSync(files.DB_PASSWORD_FILE, `${PASSWORD}\n`);
    writeFileSync(files.API_TOKEN_FILE, `${TOKEN}\n`);
    writeFileSync(files.AWS_SECRET_ACCESS_KEY_FILE, AWS_SECRET);
    const { DB_PASSWORD: _p, API_TOKEN: _t, ...rest } = base;
    const config = loadConfig({ ...rest, ...files, STORAGE_BACKEND: 's3', S3_BUCKET: 'b', AWS_ACCESS_KEY_ID: 'k' });
    expect(config.db.password).toBe(PASSWORD);
    expect(config.apiToken).toBe(TOKEN);
    expect(config.storage.backend === 's3' && config.storage.credentials?.secretAccessKey).toBe(AWS_SECRET);

    const both = problems({ ...base, DB_PASSWORD_FILE: files.DB_PASSWORD_FILE });
    expect(both.message).toContain('both DB_PASSWORD and DB_PASSWORD_FILE are set');
    const missing = problems({ ...rest, DB_PASSWORD_FILE: join(dir, 'absent'), API_TOKEN: TOKEN });
    expect(missing.message).toMatch(/DB_PASSWORD_FILE: cannot read .*absent \(ENOENT\)/);
    writeFileSync(join(dir, 'short'), 'tiny-token-value');
    const short = problems({ ...base, API_TOKEN: '', API_TOKEN_FILE: join(dir, 'short') });
    for (const secret of [PASSWORD, TOKEN, AWS_SECRET, 'tiny-token-value']) {
      expect(both.message + missing.message + short.message).not.toContain(secret);
    }
  });
});

describe('timeouts', () => {
  it('reads every timeout variable', () => {
    const config = loadConfig({
      ...base, STORAGE_BACKEND: 's3', S3_BUCKET: 'b', BACKUP_TIMEOUT: '2h', BACKUP_LOCK_WAIT_TIMEOUT: '5s', S3_CONNECT_TIMEOUT: '3s', S3_REQUEST_TIMEOUT: '2m',
    });
    expect(config.backup.timeoutMs).toBe(7_200_000);
    expect(config.backup.lockWaitTimeoutMs).toBe(5_000);
    expect(config.storage.backend === 's3' && [config.storage.connectTimeoutMs, config.storage.requestTimeoutMs]).toEqual([3_000, 120_000]);
  });

  it('refuses every timer duration a Node timer cannot hold, all at once', () => {
    const names = ['BACKUP_TIMEOUT', 'BACKUP_LOCK_WAIT_TIMEOUT', 'SHUTDOWN_TIMEOUT', 'INDEX_REFRESH_INTERVAL', 'S3_CONNECT_TIMEOUT', 'S3_REQUEST_TIMEOUT'];
    const env: Record<string, string> = { ...base, STORAGE_BACKEND: 's3', S3_BUCKET: 'b' };
    for (const name of names) env[name] = '25d';
    const error = problems(env);
    expect(error.problems.map((p) => p.variable).sort()).toEqual([...names].sort());
    expect(error.message).toContain('INDEX_REFRESH_INTERVAL: "25d" is longer than a timer can wait');
    // The largest value that fits is accepted (24 days fit, 2^31-1 ms is 24.86 days).
    expect(loadConfig({ ...base, INDEX_REFRESH_INTERVAL: '24d' }).indexRefreshMs).toBeLessThanOrEqual(MAX_TIMER_MS);
    // BACKUP_INTERVAL is not one: the scheduler re-arms its timer in steps (scheduler.ts).
    expect(loadConfig({ ...base, BACKUP_INTERVAL: '30d' }).schedule.intervalMs).toBe(30 * 86_400_000);
  });
});

describe('S3 credentials', () => {
  const s3 = { ...base, STORAGE_BACKEND: 's3', S3_BUCKET: 'b' };

  it('leaves them to the AWS default chain without static keys', () => {
    const config = loadConfig(s3);
    expect(config.storage.backend === 's3' && config.storage.credentials).toBeNull();
  });

  it('takes a session token with static keys, as a secret', () => {
    const config = loadConfig({ ...s3, AWS_ACCESS_KEY_ID: 'AKIA1', AWS_SECRET_ACCESS_KEY: AWS_SECRET, AWS_SESSION_TOKEN: 'session-token-value' });
    expect(config.storage.backend === 's3' && config.storage.credentials).toEqual({ accessKeyId: 'AKIA1', secretAccessKey: AWS_SECRET, sessionToken: 'session-token-value' });
    expect(config.runtime.childEnv.AWS_SESSION_TOKEN).toBeUndefined();
  });

  it('refuses one key without the other, naming both', () => {
    for (const env of [{ ...s3, AWS_ACCESS_KEY_ID: 'AKIA1' }, { ...s3, AWS_SECRET_ACCESS_KEY: AWS_SECRET }]) {
      const error = problems(env);
      expect(error.problems).toHaveLength(1);
      expect(error.message).toContain('AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together');
      expect(error.message).not.toContain(AWS_SECRET);
    }
  });
});

describe('PostgreSQL TLS', () => {
  it('reads PGSSLMODE and the certificate paths, checking the files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'config-tls-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'ca.pem'), 'ca');
    const config = loadConfig({ ...base, PGSSLMODE: 'verify-full', PGSSLROOTCERT: join(dir, 'ca.pem') });
    expect(config.db.tls).toEqual({ mode: 'verify-full', rootCert: join(dir, 'ca.pem'), cert: null, key: null });
    expect(loadConfig({ ...base, PGSSLROOTCERT: 'system' }).db.tls.rootCert).toBe('system');
    const error = problems({ ...base, PGSSLMODE: 'on', PGSSLROOTCERT: join(dir, 'absent.pem'), PGSSLCERT: join(dir, 'ca.pem') });
    expect(error.problems.map((p) => p.variable).sort()).toEqual(['PGSSLKEY', 'PGSSLMODE', 'PGSSLROOTCERT']);
    expect(error.message).toMatch(/PGSSLROOTCERT: cannot read .*absent\.pem \(ENOENT\)/);
  });

  it('passes PGSSL* to child processes, but no secret, no AWS_* and no connection setting', () => {
    const config = loadConfig({ ...base, PGSSLMODE: 'require', PGSSLROOTCERT: 'system', PGHOST: 'elsewhere', PATH: '/usr/bin', AWS_SECRET_ACCESS_KEY: AWS_SECRET, AWS_WEB_IDENTITY_TOKEN_FILE: '/var/run/token' });
    expect(config.runtime.childEnv).toEqual({ ...base, PGSSLMODE: 'require', PGSSLROOTCERT: 'system', PATH: '/usr/bin', DB_PASSWORD: undefined, API_TOKEN: undefined });
    expect(config.runtime.path).toBe('/usr/bin');
  });
});

describe('restore drills', () => {
  /** A PG_CLIENTS_DIR holding `<major>/bin` with the given tools (empty scripts: only their presence counts here). */
  function clientsDir(layout: Record<string, string[]>): string {
    const dir = mkdtempSync(join(tmpdir(), 'config-clients-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    for (const [major, tools] of Object.entries(layout)) {
      mkdirSync(join(dir, major, 'bin'), { recursive: true });
      for (const tool of tools) writeFileSync(join(dir, major, 'bin', tool), '#!/bin/sh\n', { mode: 0o755 });
    }
    return dir;
  }

  it('defaults: off, target local on the newest server found (else server), the drill server is the backed-up one', () => {
    const dir = clientsDir({ 15: ['initdb', 'postgres', 'psql'], 17: ['initdb', 'postgres'], 18: ['psql'] });
    const local = loadConfig({ ...base, PG_CLIENTS_DIR: dir });
    expect(local.drill).toEqual({
      mode: 'off', schedule: null, target: 'local', localBinDir: join(dir, '17', 'bin'), query: null, identities: null,
      server: { host: 'db', port: 5432, user: 'app', password: PASSWORD, tls: { mode: 'prefer', rootCert: null, cert: null, key: null } },
    });
    const clientsOnly = loadConfig({ ...base, PG_CLIENTS_DIR: clientsDir({ 17: ['psql', 'pg_dump'] }) });
    expect(clientsOnly.drill).toMatchObject({ target: 'server', localBinDir: null });
  });

  it('reads after-backup, an interval, a cron expression, the target server and the query', () => {
    const dir = clientsDir({});
    expect(loadConfig({ ...base, PG_CLIENTS_DIR: dir, RESTORE_DRILL: 'after-backup' }).drill).toMatchObject({ mode: 'after-backup', schedule: null });
    expect(loadConfig({ ...base, PG_CLIENTS_DIR: dir, RESTORE_DRILL: 'P1D' }).drill).toMatchObject({ mode: 'schedule', schedule: { intervalMs: 86_400_000, cron: null } });
    expect(loadConfig({ ...base, PG_CLIENTS_DIR: dir, RESTORE_DRILL: '12h' }).drill.schedule).toEqual({ intervalMs: 43_200_000, cron: null });
    expect(loadConfig({ ...base, PG_CLIENTS_DIR: dir, RESTORE_DRILL: '0 4 * * 0' }).drill).toMatchObject({ mode: 'schedule', schedule: { intervalMs: null, cron: '0 4 * * 0' } });
    const server = loadConfig({
      ...base, PG_CLIENTS_DIR: dir, RESTORE_DRILL_TARGET: 'server', RESTORE_DRILL_DB_HOST: 'scratch', RESTORE_DRILL_DB_PORT: '6432',
      RESTORE_DRILL_DB_USER: 'driller', RESTORE_DRILL_DB_PASSWORD: 'drill-pw-value', RESTORE_DRILL_QUERY: 'SELECT count(*) > 0 FROM orders', PGSSLMODE: 'require',
    });
    expect(server.drill).toMatchObject({
      target: 'server', query: 'SELECT count(*) > 0 FROM orders',
      server: { host: 'scratch', port: 6432, user: 'driller', password: 'drill-pw-value', tls: { mode: 'require' } },
    });
  });

  it('names the variable and the fix for a bad value, an explicit local without a server, and a bad password file; never echoes the password', () => {
    const dir = clientsDir({ 17: ['psql'] });
    const pwFile = join(dir, 'drill-pw');
    writeFileSync(pwFile, 'drill-secret-value\n');
    expect(loadConfig({ ...base, PG_CLIENTS_DIR: dir, RESTORE_DRILL_DB_PASSWORD_FILE: pwFile }).drill.server.password).toBe('drill-secret-value');
    const error = problems({
      ...base, PG_CLIENTS_DIR: dir, RESTORE_DRILL: 'weekly', RESTORE_DRILL_TARGET: 'local', RESTORE_DRILL_DB_PORT: '0',
      RESTORE_DRILL_DB_PASSWORD: 'drill-secret-value', RESTORE_DRILL_DB_PASSWORD_FILE: pwFile,
    });
    expect(error.problems.map((p) => p.variable)).toEqual(['RESTORE_DRILL', 'RESTORE_DRILL_TARGET', 'RESTORE_DRILL_DB_PORT', 'RESTORE_DRILL_DB_PASSWORD']);
    expect(error.message).toContain('RESTORE_DRILL: "weekly" is not off, after-backup, a duration (at most 24d) or a cron expression');
    expect(error.message).toMatch(/RESTORE_DRILL_TARGET: local needs PostgreSQL server binaries .* none under .*\. Install the PostgreSQL server package .* or set RESTORE_DRILL_TARGET=server/);
    expect(error.message).toContain('both RESTORE_DRILL_DB_PASSWORD and RESTORE_DRILL_DB_PASSWORD_FILE are set');
    expect(error.message).not.toContain('drill-secret-value');
    expect(problems({ ...base, PG_CLIENTS_DIR: dir, RESTORE_DRILL_TARGET: 'nearby' }).message).toContain('RESTORE_DRILL_TARGET: "nearby" is not one of local, server');
  });

  it('keeps the drill password out of child processes', () => {
    const config = loadConfig({ ...base, PG_CLIENTS_DIR: clientsDir({}), RESTORE_DRILL_DB_PASSWORD: 'drill-secret-value' });
    expect(Object.values(config.runtime.childEnv)).not.toContain('drill-secret-value');
  });
});

describe('compression threads', () => {
  const cgroup = (files: Record<string, string>) => {
    const dir = mkdtempSync(join(tmpdir(), 'cgroup-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, name)), { recursive: true });
      writeFileSync(join(dir, name), text);
    }
    return dir;
  };

  it('reads the cgroup v2 and v1 CPU quota', () => {
    expect(cgroupCpuQuota(cgroup({ 'cpu.max': '150000 100000\n' }))).toBe(1.5);
    expect(cgroupCpuQuota(cgroup({ 'cpu.max': 'max 100000\n' }))).toBeNull();
    expect(cgroupCpuQuota(cgroup({ 'cpu/cpu.cfs_quota_us': '200000\n', 'cpu/cpu.cfs_period_us': '100000\n' }))).toBe(2);
    expect(cgroupCpuQuota(cgroup({ 'cpu/cpu.cfs_quota_us': '-1\n', 'cpu/cpu.cfs_period_us': '100000\n' }))).toBeNull();
    expect(cgroupCpuQuota(cgroup({}))).toBeNull();
  });

  it('defaults to the CPUs the container may use, not the host\'s cores', () => {
    const limited = cgroup({ 'cpu.max': '100000 100000\n' });
    expect(usableCpus(limited)).toBe(1);
    expect(loadConfig(base, { cgroupRoot: limited }).backup.compressionThreads).toBe(1);
    const unlimited = cgroup({ 'cpu.max': 'max 100000\n' });
    expect(loadConfig(base, { cgroupRoot: unlimited }).backup.compressionThreads).toBe(Math.min(64, availableParallelism()));
    // A fractional quota rounds up: 1.5 CPUs can keep 2 threads busy part of the time.
    expect(usableCpus(cgroup({ 'cpu.max': '150000 100000' }))).toBe(Math.min(2, availableParallelism()));
  });
});

describe('parseDuration', () => {
  it.each([
    ['PT24H', 86_400_000], ['P1D', 86_400_000], ['PT30M', 1_800_000], ['P1DT12H', 129_600_000], ['pt1h', 3_600_000],
    ['24h', 86_400_000], ['12h', 43_200_000], ['30m', 1_800_000], ['90s', 90_000], ['1h30m', 5_400_000], ['2d', 172_800_000],
  ])('%s', (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each(['', 'P', 'PT', '24', 'h', '1y', 'P1M', 'daily', '-1h', '0s', '1.5h', '24 h', 'PT0S'])('rejects %j', (text) => {
    expect(parseDuration(text)).toBeNull();
  });

  it('formats ISO-8601 like java.time.Duration', () => {
    expect(formatIsoDuration(86_400_000)).toBe('PT24H');
    expect(formatIsoDuration(5_400_000)).toBe('PT1H30M');
    expect(formatIsoDuration(90_000)).toBe('PT1M30S');
    expect(formatIsoDuration(45_000)).toBe('PT45S');
  });
});

describe('age encryption and drill identities', () => {
  function tempDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'config-age-'));
    // The files hold test identities: removed with the test.
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  /** A key pair as the stock tool writes it: the identity file and its recipient (public key). */
  function keygen(dir: string, name: string): { file: string; identity: string; recipient: string } {
    const file = join(dir, name);
    execFileSync('age-keygen', ['-o', file], { stdio: 'ignore' });
    const identity = readFileSync(file, 'utf8').split('\n').find((line) => line.startsWith('AGE-SECRET-KEY-1'))!;
    return { file, identity, recipient: execFileSync('age-keygen', ['-y', file], { encoding: 'utf8' }).trim() };
  }

  it('RESTORE_DRILL_IDENTITY_FILE: the identities of an age-keygen file (comments skipped); unset: none', () => {
    const dir = tempDir();
    const one = keygen(dir, 'one.txt');
    const two = keygen(dir, 'two.txt');
    expect(loadConfig(base).drill.identities).toBeNull();
    expect(loadConfig({ ...base, RESTORE_DRILL_IDENTITY_FILE: one.file }).drill.identities).toEqual([one.identity]);
    const both = join(dir, 'both.txt');
    writeFileSync(both, `${readFileSync(one.file, 'utf8')}\n${readFileSync(two.file, 'utf8')}`);
    expect(loadConfig({ ...base, RESTORE_DRILL_IDENTITY_FILE: both }).drill.identities).toEqual([one.identity, two.identity]);
  });

  it('RESTORE_DRILL_IDENTITY_FILE: a bad line is named by its number, never by its content; the good keys are not echoed either', () => {
    const dir = tempDir();
    const good = keygen(dir, 'key.txt');
    const file = join(dir, 'bad.txt');
    // Line 4: a cut key (its checksum fails). Line 5: a recipient where an identity belongs.
    const cut = good.identity.slice(0, -6);
    writeFileSync(file, `${readFileSync(good.file, 'utf8')}${cut}\n${good.recipient}\n`);
    const error = problems({ ...base, RESTORE_DRILL_IDENTITY_FILE: file });
    expect(error.problems.map((p) => p.variable)).toEqual(['RESTORE_DRILL_IDENTITY_FILE']);
    expect(error.message).toContain(`${file} line 4 is not a valid age identity (a mistyped or cut key: its checksum or length is wrong)`);
    expect(error.message).toContain(`${file} line 5 is not an age identity (they begin with AGE-SECRET-KEY-1…)`);
    expect(error.message).toContain('Use the file age-keygen wrote');
    expect(error.message).not.toContain(cut.slice(15));
    expect(error.message).not.toContain(good.identity.slice(15));
    expect(error.message).not.toContain(good.recipient);
  });

  it('RESTORE_DRILL_IDENTITY_FILE: a file that cannot be read, or holds no identity, stops the start saying so', () => {
    const dir = tempDir();
    const missing = join(dir, 'absent.txt');
    expect(problems({ ...base, RESTORE_DRILL_IDENTITY_FILE: missing }).message).toContain(
      `RESTORE_DRILL_IDENTITY_FILE: cannot read ${missing} (ENOENT). Point it at a readable age identity file (age-keygen -o key.txt), or unset it.`);
    // A directory: readable by root, whom these tests may run as, yet no file.
    expect(problems({ ...base, RESTORE_DRILL_IDENTITY_FILE: dir }).message).toContain(`RESTORE_DRILL_IDENTITY_FILE: cannot read ${dir} (EISDIR)`);
    const comments = join(dir, 'comments.txt');
    writeFileSync(comments, '# created: 2026-05-10\n\n# nothing else\n');
    expect(problems({ ...base, RESTORE_DRILL_IDENTITY_FILE: comments }).message).toContain(`${comments} holds no identity (AGE-SECRET-KEY-1… lines, as age-keygen writes)`);
  });

  it('BACKUP_ENCRYPTION_RECIPIENTS: one recipient, several comma- or newline-separated; unset: no encryption', () => {
    const dir = tempDir();
    const [a, b, c] = ['a.txt', 'b.txt', 'c.txt'].map((name) => keygen(dir, name).recipient) as [string, string, string];
    expect(loadConfig(base).backup.encryption).toBeNull();
    expect(loadConfig({ ...base, BACKUP_ENCRYPTION_RECIPIENTS: a }).backup.encryption).toEqual({ format: 'age', recipients: [a] });
    expect(loadConfig({ ...base, BACKUP_ENCRYPTION_RECIPIENTS: ` ${a} , ${b},${c} ` }).backup.encryption).toEqual({ format: 'age', recipients: [a, b, c] });
    expect(loadConfig({ ...base, BACKUP_ENCRYPTION_RECIPIENTS: `${a}\n${b},\n${c}\n` }).backup.encryption).toEqual({ format: 'age', recipients: [a, b, c] });
    // The same key twice encrypts to it once.
    expect(loadConfig({ ...base, BACKUP_ENCRYPTION_RECIPIENTS: `${a},${a}` }).backup.encryption).toEqual({ format: 'age', recipients: [a] });
  });

  it('BACKUP_ENCRYPTION_RECIPIENTS_FILE: age\'s recipients-file format (comments, blank lines)', () => {
    const dir = tempDir();
    const [a, b] = ['a.txt', 'b.txt'].map((name) => keygen(dir, name).recipient) as [string, string];
    const file = join(dir, 'recipients.txt');
    writeFileSync(file, `# ops team\n${a}\n\n  # offline backup key, in the safe\n${b}\n`);
    expect(loadConfig({ ...base, BACKUP_ENCRYPTION_RECIPIENTS_FILE: file }).backup.encryption).toEqual({ format: 'age', recipients: [a, b] });
  });

  it('a recipient that does not parse stops the start naming its line; so do both variables set, an unreadable file and one of comments only', () => {
    const dir = tempDir();
    const good = keygen(dir, 'a.txt').recipient;
    const cut = good.slice(0, -4);
    const direct = problems({ ...base, BACKUP_ENCRYPTION_RECIPIENTS: `${good}\n${good},${cut}` });
    expect(direct.problems.map((p) => p.variable)).toEqual(['BACKUP_ENCRYPTION_RECIPIENTS']);
    expect(direct.message).toContain(`BACKUP_ENCRYPTION_RECIPIENTS: BACKUP_ENCRYPTION_RECIPIENTS line 2: "${cut.slice(0, 20)}…" is not a valid age recipient (a mistyped or cut key: its checksum or length is wrong)`);
    expect(direct.message).toContain('the "Public key" line age-keygen prints');

    const file = join(dir, 'recipients.txt');
    writeFileSync(file, `# keys\n${good}\nnot-a-key\n`);
    expect(problems({ ...base, BACKUP_ENCRYPTION_RECIPIENTS_FILE: file }).message).toContain(
      `BACKUP_ENCRYPTION_RECIPIENTS_FILE: ${file} line 3: "not-a-key" is not an age recipient (they begin with age1…; \`age-keygen\` prints one as "Public key")`);

    const both = problems({ ...base, BACKUP_ENCRYPTION_RECIPIENTS: good, BACKUP_ENCRYPTION_RECIPIENTS_FILE: file });
    expect(both.problems.map((p) => p.variable)).toEqual(['BACKUP_ENCRYPTION_RECIPIENTS']);
    expect(both.message).toContain('both BACKUP_ENCRYPTION_RECIPIENTS and BACKUP_ENCRYPTION_RECIPIENTS_FILE are set. Set only one of them.');

    const missing = join(dir, 'absent.txt');
    expect(problems({ ...base, BACKUP_ENCRYPTION_RECIPIENTS_FILE: missing }).message).toContain(`BACKUP_ENCRYPTION_RECIPIENTS_FILE: cannot read ${missing} (ENOENT)`);

    // A file of comments alone would mean no encryption at all: refused, not taken as "off".
    const comments = join(dir, 'comments.txt');
    writeFileSync(comments, '# the key goes here\n\n');
    expect(problems({ ...base, BACKUP_ENCRYPTION_RECIPIENTS_FILE: comments }).message).toContain(
      `BACKUP_ENCRYPTION_RECIPIENTS_FILE: ${comments} holds no recipient (one age1… public key per line; lines starting with # are comments)`);
  });
});
