import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ConfigError, loadConfig } from './config.js';
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
    expect(config.db).toEqual({ host: 'db', port: 5432, name: 'app', user: 'app', password: PASSWORD });
    expect(config.schedule).toEqual({ intervalMs: 86_400_000, intervalIso: 'PT24H', cron: null });
    expect(config.backup.namePrefix).toBe('backup');
    expect(config.backup.compressionLevel).toBe(6);
    expect(config.backup.compressionThreads).toBeGreaterThanOrEqual(1);
    expect(config.retention).toEqual({ days: 7, minCount: 1 });
    expect(config.storage).toEqual({ backend: 'local', dir: '/backups' });
    expect(config.http).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(config.log).toEqual({ format: 'json', level: 'info' });
    expect(config.shutdownTimeoutMs).toBe(60_000);
    expect(config.pgBinDir).toBeNull();
    expect(Object.isFrozen(config) && Object.isFrozen(config.db)).toBe(true);
  });

  it('applies the S3 defaults', () => {
    const config = loadConfig({ ...base, STORAGE_BACKEND: 's3', S3_BUCKET: 'b', AWS_ACCESS_KEY_ID: 'k', AWS_SECRET_ACCESS_KEY: AWS_SECRET });
    expect(config.storage).toEqual({
      backend: 's3', bucket: 'b', prefix: 'backups', endpoint: null, region: 'eu-central-1', accessKeyId: 'k', secretAccessKey: AWS_SECRET, partSizeBytes: null,
    });
  });

  it('reads every variable', () => {
    const config = loadConfig({
      ...base, DB_PORT: '6543', BACKUP_INTERVAL: '1h30m', BACKUP_NAME_PREFIX: 'prod-db', RETENTION_DAYS: '30', RETENTION_MIN_COUNT: '3',
      HTTP_PORT: '9000', LOG_FORMAT: 'plain', BACKUP_COMPRESSION_LEVEL: '1', BACKUP_COMPRESSION_THREADS: '4', SHUTDOWN_TIMEOUT: '2m', PG_BIN_DIR: '/opt/pg/bin',
      BACKUP_CRON: '0 3 * * *',
    });
    expect(config.db.port).toBe(6543);
    expect(config.schedule).toEqual({ intervalMs: 5_400_000, intervalIso: 'PT1H30M', cron: '0 3 * * *' });
    expect(config.backup).toEqual({ namePrefix: 'prod-db', compressionLevel: 1, compressionThreads: 4, timeoutMs: 6 * 3600_000 });
    expect(config.retention).toEqual({ days: 30, minCount: 3 });
    expect(config.http.port).toBe(9000);
    expect(config.log.format).toBe('plain');
    expect(config.shutdownTimeoutMs).toBe(120_000);
    expect(config.pgBinDir).toBe('/opt/pg/bin');
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
    expect(problems({ ...base, STORAGE_BACKEND: 's3' }).problems.map((p) => p.variable).sort()).toEqual(['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'S3_BUCKET']);
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
    expect(config.storage.backend === 's3' && config.storage.secretAccessKey).toBe(AWS_SECRET);

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
