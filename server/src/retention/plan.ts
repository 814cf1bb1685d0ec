import { compareNewestFirst, type RetentionPlan, type RetentionPolicy } from '@db-backup-service/contract';
import { PERIOD_KINDS, periodOf, type PeriodKind } from './periods.js';

/** The policy field (and RETENTION_KEEP_* variable) of each period rule. */
const KEEP_FIELDS = { daily: 'keepDaily', weekly: 'keepWeekly', monthly: 'keepMonthly', yearly: 'keepYearly' } as const satisfies Record<PeriodKind, keyof RetentionPolicy>;

/** What the plan needs to know of a listed (so successful) backup. */
export interface RetentionCandidate {
  readonly id: string;
  readonly createdAt: string;
  readonly pinned: boolean;
  /** Its newest drill passed (a failed or skipped drill proves nothing). */
  readonly verified: boolean;
}

/** One backup of the plan, as GET /api/v1/retention sends it: keep with the rules that keep it, or delete and `expired`. */
export type PlannedBackup = RetentionPlan['backups'][number];

const EXPIRED = 'expired';
const DAY_MS = 86_400_000;

/**
 * The retention plan: every backup, newest first, with the rules that keep it. Pure, so the API's
 * plan, the dry run and a real run are one computation.
 *
 * The period rules are restic's --keep-daily etc.: walking from the newest backup, the first
 * backup of each new period is kept, for the newest N periods that have a backup. They count
 * periods with backups, not calendar periods back from now, so a week without backups expires
 * nothing that a daily rule would keep. Each rule is applied to the whole history on its own (a
 * backup kept by one rule still counts for the others), so a rule's meaning does not depend on
 * the rest of the policy.
 */
export function planRetention(backups: readonly RetentionCandidate[], policy: RetentionPolicy, now: Date): PlannedBackup[] {
  const newestFirst = [...backups].sort(compareNewestFirst);
  const reasons = newestFirst.map(() => [] as string[]);
  const cutoff = now.getTime() - policy.days * DAY_MS;
  const minCount = Math.max(1, policy.minCount);
  newestFirst.forEach((backup, i) => {
    if (backup.pinned) reasons[i]!.push('pinned');
    if (i === 0) reasons[i]!.push('newest success');
    if (minCount > 1 && i < minCount) reasons[i]!.push(`newest ${minCount}`);
    if (Date.parse(backup.createdAt) >= cutoff && policy.days > 0) reasons[i]!.push(`younger than ${policy.days} day${policy.days === 1 ? '' : 's'}`);
  });
  if (policy.keepNewestVerified) {
    const verified = newestFirst.findIndex((b) => b.verified);
    if (verified >= 0) reasons[verified]!.push('newest verified');
  }
  for (const kind of PERIOD_KINDS) {
    let left = policy[KEEP_FIELDS[kind]];
    let last: string | null = null;
    for (let i = 0; i < newestFirst.length && left > 0; i++) {
      const period = periodOf(kind, new Date(newestFirst[i]!.createdAt));
      if (period === last) continue;
      last = period;
      left--;
      reasons[i]!.push(`${kind} ${period}`);
    }
  }
  return newestFirst.map(({ id, createdAt }, i) => {
    const kept = reasons[i]!;
    return kept.length > 0 ? { id, createdAt, action: 'keep', reasons: kept } : { id, createdAt, action: 'delete', reasons: [EXPIRED] };
  });
}

/** The policy in one line, for log lines: `RETENTION_DAYS=7, RETENTION_KEEP_DAILY=7, …` (rules that are off left out). */
export function describePolicy(policy: RetentionPolicy): string {
  const parts = [`RETENTION_DAYS=${policy.days}`, `RETENTION_MIN_COUNT=${policy.minCount}`];
  for (const kind of PERIOD_KINDS) if (policy[KEEP_FIELDS[kind]] > 0) parts.push(`RETENTION_KEEP_${kind.toUpperCase()}=${policy[KEEP_FIELDS[kind]]}`);
  if (policy.keepNewestVerified) parts.push('newest verified backup kept (RESTORE_DRILL is on)');
  return parts.join(', ');
}
