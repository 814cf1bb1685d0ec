import { describe, expect, it } from 'vitest';
import { formatOfFileName } from './file-source.js';

describe('formatOfFileName', () => {
  it('takes the format from the extension, as for ids (.sql.gz / .gz gzip, .sql.zst / .zst zstd)', () => {
    expect(formatOfFileName('/tmp/backup_20260510T010000Z.sql.gz')).toBe('gzip');
    expect(formatOfFileName('/tmp/renamed.gz')).toBe('gzip');
    expect(formatOfFileName('/tmp/backup_20260510T010000Z.sql.zst')).toBe('zstd');
    expect(formatOfFileName('/tmp/renamed.zst')).toBe('zstd');
  });

  it('says nothing for any other name (the file\'s first bytes decide then)', () => {
    for (const name of ['/tmp/backup.sql', '/tmp/backup.dump', '/tmp/gz', '/tmp/backup.sql.gz.partial']) expect(formatOfFileName(name), name).toBeNull();
  });
});
