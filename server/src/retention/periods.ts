/**
 * The calendar periods the keep-daily/-weekly/-monthly/-yearly rules count, in UTC: a backup's
 * day (`2026-11-30`), ISO 8601 week (`2026-W48`), month (`2026-11`) and year (`2026`). UTC, not
 * the server's zone, so a plan never depends on where the service runs or on daylight saving.
 */
export type PeriodKind = 'daily' | 'weekly' | 'monthly' | 'yearly';

export const PERIOD_KINDS: readonly PeriodKind[] = ['daily', 'weekly', 'monthly', 'yearly'];

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/** The period of `kind` an instant falls in, as it is written in a plan's reasons. */
export function periodOf(kind: PeriodKind, at: Date): string {
  const year = at.getUTCFullYear();
  switch (kind) {
    case 'daily':
      return `${year}-${pad(at.getUTCMonth() + 1)}-${pad(at.getUTCDate())}`;
    case 'weekly':
      return isoWeekOf(at);
    case 'monthly':
      return `${year}-${pad(at.getUTCMonth() + 1)}`;
    case 'yearly':
      return String(year);
  }
}

/**
 * ISO 8601 week: weeks start on Monday and belong to the year of their Thursday, so 2026-12-31
 * (a Thursday) is 2026-W53 and 2027-01-01 (Friday) still 2026-W53.
 */
function isoWeekOf(at: Date): string {
  const day = Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate());
  const weekday = (at.getUTCDay() + 6) % 7; // Monday 0 … Sunday 6
  const thursday = new Date(day + (3 - weekday) * 86_400_000);
  const weekYear = thursday.getUTCFullYear();
  const week = Math.floor((thursday.getTime() - Date.UTC(weekYear, 0, 1)) / (7 * 86_400_000)) + 1;
  return `${weekYear}-W${pad(week)}`;
}
