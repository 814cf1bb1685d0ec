import { describe, expect, it } from 'vitest';
import { sideDatabaseName, validateDatabaseName } from './restore.js';

describe('sideDatabaseName', () => {
  it('appends the kind and a random suffix', () => {
    expect(sideDatabaseName('app', 'restore', 'deadbeef')).toBe('app__restore_deadbeef');
    expect(sideDatabaseName('app', 'old', 'deadbeef')).toBe('app__old_deadbeef');
  });

  it('shortens long names by whole characters to fit 63 bytes', () => {
    const long = 'ä'.repeat(40); // 80 bytes
    const name = sideDatabaseName(long, 'restore', 'deadbeef');
    expect(Buffer.byteLength(name)).toBeLessThanOrEqual(63);
    expect(name.endsWith('__restore_deadbeef')).toBe(true);
    expect(name).not.toContain('\uFFFD');
  });

  it('refuses names PostgreSQL would truncate and the templates', () => {
    expect(() => validateDatabaseName('x'.repeat(64))).toThrow(/1-63 bytes/);
    expect(() => validateDatabaseName('template1')).toThrow(/refusing/);
    expect(() => validateDatabaseName('app')).not.toThrow();
  });
});
