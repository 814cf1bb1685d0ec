import { describe, expect, it } from 'vitest';
import { formatBytes, formatDuration, formatPin, formatTable, formatTimestamp } from './format.js';

describe('format', () => {
  it('formats sizes in binary units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1536)).toBe('1.50 KiB');
    expect(formatBytes(8_421_376)).toBe('8.03 MiB');
    expect(formatBytes(50 * 1024 ** 3)).toBe('50.0 GiB');
  });

  it('formats durations with at most two units', () => {
    expect(formatDuration(999)).toBe('0s');
    expect(formatDuration(45_000)).toBe('45s');
    expect(formatDuration(12 * 60_000)).toBe('12m');
    expect(formatDuration((3 * 60 + 12) * 60_000)).toBe('3h 12m');
    expect(formatDuration((5 * 24 + 3) * 3_600_000)).toBe('5d 3h');
  });

  it('aligns table columns', () => {
    expect(formatTable(['ID', 'SIZE'], [['a', '1 B'], ['longer', '2 B']])).toBe('ID      SIZE\na       1 B\nlonger  2 B');
  });

  it('prints timestamps without milliseconds', () => {
    expect(formatTimestamp('2026-05-10T01:01:14.123Z')).toBe('2026-05-10T01:01:14Z');
  });

  it('marks a pin: nothing, yes, or yes with its reason on one line, cut at 40 characters', () => {
    const at = '2026-05-16T09:30:00.000Z';
    expect(formatPin(null)).toBe('');
    expect(formatPin({ at, reason: null })).toBe('yes');
    expect(formatPin({ at, reason: 'before the 2.0 migration' })).toBe('yes: before the 2.0 migration');
    expect(formatPin({ at, reason: 'line one\nline\ttwo \u001b[31mred' })).toBe('yes: line one line two [31mred');
    expect(formatPin({ at, reason: 'x'.repeat(40) })).toBe(`yes: ${'x'.repeat(40)}`);
    expect(formatPin({ at, reason: `${'x'.repeat(38)}  and more` })).toBe(`yes: ${'x'.repeat(38)}…`);
    expect(formatPin({ at, reason: '🙂'.repeat(41) })).toBe(`yes: ${'🙂'.repeat(39)}…`);
  });
});
