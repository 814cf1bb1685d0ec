import { describe, expect, it } from 'vitest';
import { majorOfVersionNum, parseToolVersion, parseVersionText, psqlUnderstandsRestrict, RESTRICT_RELEASES } from './pg-version.js';

describe('PostgreSQL versions', () => {
  it('parses what the tools print', () => {
    expect(parseToolVersion('pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n')).toEqual({ text: '15.18', num: 150018, major: 15 });
    expect(parseToolVersion('psql (PostgreSQL) 18.6 (Debian 18.6-3)')).toEqual({ text: '18.6', num: 180006, major: 18 });
    expect(parseToolVersion('pg_dump (PostgreSQL) 9.6.24')).toEqual({ text: '9.6.24', num: 90624, major: 9.6 });
    expect(parseToolVersion('pg_dump (PostgreSQL) 19beta1')).toEqual({ text: '19beta1', num: 190000, major: 19 });
    expect(parseToolVersion('something else')).toBeNull();
  });

  it('parses server and header versions', () => {
    expect(parseVersionText('16.4 (Debian 16.4-1.pgdg120+1)')?.num).toBe(160004);
    expect(parseVersionText('13.22')?.major).toBe(13);
    expect(parseVersionText('x')).toBeNull();
    expect(majorOfVersionNum(160004)).toBe(16);
    expect(majorOfVersionNum(90624)).toBe(9.6);
  });

  it('knows which psql runs a dump that opens with \\restrict', () => {
    const understands = (t: string): boolean => psqlUnderstandsRestrict(parseVersionText(t)!);
    expect(['18.0', '17.6', '16.10', '15.14', '14.19', '13.22', '15.18'].map(understands)).toEqual([true, true, true, true, true, true, true]);
    expect(['17.5', '16.9', '15.13', '14.18', '13.21', '12.22', '9.6.24'].map(understands)).toEqual([false, false, false, false, false, false, false]);
    expect(RESTRICT_RELEASES).toBe('18.x, 17.6+, 16.10+, 15.14+, 14.19+ or 13.22+');
  });
});
