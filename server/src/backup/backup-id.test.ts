import { BACKUP_ID_PATTERN, compressionOfId, contentsName, contentTypeOfId, isBackupId, isEncryptedId } from '@db-backup-service/contract';
import { describe, expect, it } from 'vitest';
import { formatBackupTimestamp, newBackupId } from './backup-id.js';

const AT = new Date('2026-05-10T01:00:00.999Z');

describe('newBackupId', () => {
  it('formats <prefix>_<yyyyMMddTHHmmssZ>.sql.gz in UTC', () => {
    expect(newBackupId('backup', AT, { format: 'gzip', encrypted: false }, () => false)).toBe('backup_20260510T010000Z.sql.gz');
    // A local-time offset must not leak into the name.
    expect(formatBackupTimestamp(new Date('2026-12-31T23:59:59+02:00'))).toBe('20261231T215959Z');
  });

  it('ends a zstd backup id in .sql.zst, which the id pattern accepts and compressionOfId reads back', () => {
    const id = newBackupId('backup', AT, { format: 'zstd', encrypted: false }, () => false);
    expect(id).toBe('backup_20260510T010000Z.sql.zst');
    expect(compressionOfId(id)).toBe('zstd');
    const taken = new Set([id]);
    expect(newBackupId('backup', AT, { format: 'zstd', encrypted: false }, (candidate) => taken.has(candidate))).toBe('backup_20260510T010000Z_2.sql.zst');
    expect(isBackupId(newBackupId('backup', AT, { format: 'zstd', encrypted: false }, (candidate) => taken.has(candidate)))).toBe(true);
  });

  it('ends an encrypted backup id in .age after its format, which the pattern accepts and the contract reads back', () => {
    for (const format of ['gzip', 'zstd'] as const) {
      const id = newBackupId('backup', AT, { format, encrypted: true }, () => false);
      expect(id).toBe(`backup_20260510T010000Z.sql.${format === 'gzip' ? 'gz' : 'zst'}.age`);
      expect(isBackupId(id)).toBe(true);
      expect(isEncryptedId(id)).toBe(true);
      expect(compressionOfId(id)).toBe(format);
      expect(contentTypeOfId(id)).toBe('application/octet-stream');
      expect(contentsName(id)).toBe(`${id}.contents.json.age`);
    }
    expect(isBackupId('backup_20260510T010000Z.sql.age')).toBe(false);
    expect(isBackupId('backup_20260510T010000Z.sql.gz.age.age')).toBe(false);
  });

  it('adds _2, _3, ... while the id is taken', () => {
    const taken = new Set(['db_20260510T010000Z.sql.gz', 'db_20260510T010000Z_2.sql.gz']);
    const id = newBackupId('db', AT, { format: 'gzip', encrypted: false }, (candidate) => taken.has(candidate));
    expect(id).toBe('db_20260510T010000Z_3.sql.gz');
    expect(BACKUP_ID_PATTERN.test(id)).toBe(true);
  });

  it('refuses a prefix that would not make a valid id', () => {
    expect(() => newBackupId('../x', AT, { format: 'gzip', encrypted: false }, () => false)).toThrow(/valid backup id/);
    expect(() => newBackupId('a_b', AT, { format: 'gzip', encrypted: false }, () => false)).toThrow(/valid backup id/);
  });

  it('gives up after the largest suffix the pattern allows', () => {
    expect(() => newBackupId('db', AT, { format: 'gzip', encrypted: false }, () => true)).toThrow(/more than 9999/);
  });
});
