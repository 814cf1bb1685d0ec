import { describe, expect, it } from 'vitest';
import { parseByteRate } from './byte-rate.js';
import { ConfigError, loadConfig } from './config.js';

const base = { DB_HOST: 'db', DB_NAME: 'app', DB_USER: 'app', DB_PASSWORD: 'pw', STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: '/backups', API_TOKEN: 'a'.repeat(64) };

describe('parseByteRate', () => {
  it('reads decimal units as powers of 1000 and binary ones as powers of 1024', () => {
    expect(parseByteRate('50MB/s')).toBe(50_000_000);
    expect(parseByteRate('500KB/s')).toBe(500_000);
    expect(parseByteRate('2.5MB/s')).toBe(2_500_000);
    expect(parseByteRate('1GB/s')).toBe(1_000_000_000);
    expect(parseByteRate('1GiB/s')).toBe(1024 ** 3);
    expect(parseByteRate('64KiB/s')).toBe(65_536);
    expect(parseByteRate('1.5MiB/s')).toBe(1_572_864);
    expect(parseByteRate('800B/s')).toBe(800);
    expect(parseByteRate(' 10 MB/s ')).toBe(10_000_000);
  });

  it('refuses what is not a byte rate: no unit, no /s, bits, lower-case units, zero, negatives', () => {
    for (const text of ['50', '50MB', '50Mb/s', '50mb/s', '50 MBps', '0MB/s', '0.0001B/s', '-5MB/s', 'fast', '1e3KB/s', '']) {
      expect(parseByteRate(text), text).toBeNull();
    }
  });
});

describe('BACKUP_MAX_UPLOAD_RATE', () => {
  it('is no limit when unset or empty, and bytes per second when set', () => {
    expect(loadConfig(base).backup.maxUploadBytesPerSecond).toBeNull();
    expect(loadConfig({ ...base, BACKUP_MAX_UPLOAD_RATE: '' }).backup.maxUploadBytesPerSecond).toBeNull();
    expect(loadConfig({ ...base, BACKUP_MAX_UPLOAD_RATE: '2MB/s' }).backup.maxUploadBytesPerSecond).toBe(2_000_000);
  });

  it('a bad value fails start-up naming the variable and the accepted forms', () => {
    let error: unknown;
    try {
      loadConfig({ ...base, BACKUP_MAX_UPLOAD_RATE: '50mbit' });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toContain('BACKUP_MAX_UPLOAD_RATE: "50mbit" is not a rate');
    expect((error as ConfigError).message).toContain('50MB/s, 500KB/s, 2.5MB/s or 1GiB/s');
    expect((error as ConfigError).message).toContain('KiB, MiB, GiB (powers of 1024)');
  });
});
