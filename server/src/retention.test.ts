import { describe, expect, it } from 'vitest';
import { COMPRESSION_FORMATS, type BackupSidecar, type CompressionFormat } from '@db-backup-service/contract';
import { selectExpired } from './retention.js';

const now = new Date('2026-05-20T12:00:00Z');
function backup(daysAgo: number, n = 0, format: CompressionFormat = 'gzip'): BackupSidecar {
  const createdAt = new Date(now.getTime() - daysAgo * 86_400_000 - n * 1000).toISOString();
  return {
    id: `backup_${createdAt.replace(/[-:]/g, '').replace(/\.\d+/, '')}${COMPRESSION_FORMATS[format].extension}`, createdAt, sizeBytes: 1, sha256: 'a'.repeat(64), pgVersion: '15', durationMs: 1,
    triggeredBy: 'api', pgDumpVersion: '15', uncompressedSizeBytes: 1, compression: { format, level: format === 'zstd' ? 3 : 6 }, database: 'db', serviceVersion: '0', format: 'plain', contents: null, encryption: null,
  };
}
const ids = (list: BackupSidecar[]) => list.map((b) => b.id).sort();

describe('selectExpired', () => {
  it('deletes backups older than the retention days', () => {
    const all = [backup(0), backup(3), backup(8), backup(30)];
    expect(ids(selectExpired(all, { days: 7, minCount: 1 }, now))).toEqual(ids([backup(8), backup(30)]));
  });

  it('always keeps the newest backup even when it is older than the retention days', () => {
    const all = [backup(40), backup(50)];
    expect(ids(selectExpired(all, { days: 7, minCount: 1 }, now))).toEqual(ids([backup(50)]));
    expect(selectExpired([backup(40)], { days: 0, minCount: 1 }, now)).toEqual([]);
  });

  it('keeps at least minCount newest backups', () => {
    const all = [backup(10), backup(20), backup(30), backup(40)];
    expect(ids(selectExpired(all, { days: 7, minCount: 3 }, now))).toEqual(ids([backup(40)]));
  });

  it('never returns the newest even with minCount 0 given', () => {
    expect(selectExpired([backup(9), backup(10)], { days: 1, minCount: 0 }, now).map((b) => b.id)).toEqual([backup(10).id]);
  });

  it('prunes .sql.zst backups like .sql.gz ones, by age across both formats, and keeps the newest whatever its format', () => {
    const all = [backup(0, 0, 'zstd'), backup(3, 0, 'gzip'), backup(8, 0, 'zstd'), backup(30, 0, 'gzip')];
    expect(ids(selectExpired(all, { days: 7, minCount: 1 }, now))).toEqual(ids([backup(8, 0, 'zstd'), backup(30, 0, 'gzip')]));
    expect(ids(selectExpired([backup(40, 0, 'zstd'), backup(50, 0, 'gzip')], { days: 7, minCount: 1 }, now))).toEqual([backup(50, 0, 'gzip').id]);
    expect(selectExpired([backup(40, 0, 'zstd')], { days: 0, minCount: 1 }, now)).toEqual([]);
  });
});
