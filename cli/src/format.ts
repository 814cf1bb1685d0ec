/** Human-readable formatting for the list, the plan and progress lines. */
import type { Pin } from '@db-backup-service/sdk';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${UNITS[unit]}`;
}

/** "45s", "12m", "3h 12m", "5d 3h": two units at most, coarse enough to read at a glance. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${s % 60 ? ` ${s % 60}s` : ''}`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${m % 60 ? ` ${m % 60}m` : ''}`;
  const d = Math.floor(h / 24);
  return `${d}d${h % 24 ? ` ${h % 24}h` : ''}`;
}

/** Left-aligned columns separated by two spaces; the last column is not padded. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** ISO timestamp without milliseconds, e.g. 2026-05-10T01:01:14Z. */
export function formatTimestamp(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The longest pin reason the list shows; the rest is cut with an ellipsis (the JSON list has it whole). */
export const PIN_REASON_SHOWN = 40;

/**
 * The list's PINNED cell: empty when not pinned, `yes`, or `yes: <reason>` on one line, control
 * characters (a reason may hold newlines, or escapes a terminal would obey) as spaces.
 */
export function formatPin(pin: Pin | null): string {
  if (pin === null) return '';
  const reason = (pin.reason ?? '').replace(/[\p{Cc}\s]+/gu, ' ').trim();
  if (reason === '') return 'yes';
  const chars = [...reason];
  return `yes: ${chars.length > PIN_REASON_SHOWN ? `${chars.slice(0, PIN_REASON_SHOWN - 1).join('').trimEnd()}…` : reason}`;
}
