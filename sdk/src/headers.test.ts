import { describe, expect, it } from 'vitest';
import {
  parseContentDispositionFilename,
  parseContentRange,
  parseLength,
  parseUnsatisfiedRangeTotal,
  sha256FromEtag,
  sha256FromReprDigest,
} from './headers.js';
import { displayUrl, networkErrorCode } from './errors.js';

const SHA = 'fa3c'.repeat(16);

describe('download headers', () => {
  it('reads the file name from Content-Disposition', () => {
    expect(parseContentDispositionFilename('attachment; filename="backup_20260510T010000Z.sql.gz"')).toBe('backup_20260510T010000Z.sql.gz');
    expect(parseContentDispositionFilename("attachment; filename=x; filename*=UTF-8''a%20b.sql.gz")).toBe('a b.sql.gz');
    expect(parseContentDispositionFilename('attachment; filename=plain.gz')).toBe('plain.gz');
    expect(parseContentDispositionFilename('attachment')).toBeNull();
    expect(parseContentDispositionFilename(null)).toBeNull();
  });

  it('parses Content-Range and rejects impossible ranges', () => {
    expect(parseContentRange('bytes 10-19/100')).toEqual({ start: 10, end: 19, total: 100 });
    expect(parseContentRange('bytes 0-0/*')).toEqual({ start: 0, end: 0, total: null });
    expect(parseContentRange('bytes 20-10/100')).toBeNull();
    expect(parseContentRange('bytes 10-100/100')).toBeNull();
    expect(parseUnsatisfiedRangeTotal('bytes */100')).toBe(100);
  });

  it('parses lengths strictly', () => {
    expect(parseLength('42')).toBe(42);
    expect(parseLength('4x2')).toBeNull();
    expect(parseLength(null)).toBeNull();
  });

  it('takes the SHA-256 from a quoted ETag or from Repr-Digest', () => {
    expect(sha256FromEtag(`"${SHA}"`)).toBe(SHA);
    expect(sha256FromEtag(`W/"${SHA.toUpperCase()}"`)).toBe(SHA);
    expect(sha256FromEtag('"abc"')).toBeNull();
    const b64 = Buffer.from(SHA, 'hex').toString('base64');
    expect(sha256FromReprDigest(`sha-512=:AAAA:, sha-256=:${b64}:`)).toBe(SHA);
    expect(sha256FromReprDigest('sha-256=:AAAA:')).toBeNull();
  });
});

describe('error helpers', () => {
  it('shows a base URL without credentials', () => {
    expect(displayUrl('http://u:p@host:8080/?token=x#y')).toBe('http://host:8080');
  });

  it('finds the system error code in a fetch failure', () => {
    const cause = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    expect(networkErrorCode(new TypeError('fetch failed', { cause }))).toBe('ECONNREFUSED');
    const aggregate = new AggregateError([Object.assign(new Error('x'), { code: 'EHOSTUNREACH' })]);
    expect(networkErrorCode(new TypeError('fetch failed', { cause: aggregate }))).toBe('EHOSTUNREACH');
  });
});
