// The retention plan on hand-made histories: each case checked by hand. The generated histories
// against an independent reference computation are in plan.reference.test.ts.
import { describe, expect, it } from 'vitest';
import { COMPRESSION_FORMATS, type CompressionFormat } from '@db-backup-service/contract';
import { periodOf } from './periods.js';
import { describePolicy, planRetention, type RetentionCandidate } from './plan.js';
import { policyOf } from './policy.test-helper.js';

const now = new Date('2026-05-20T12:00:00Z');
const DAY = 86_400_000;

function at(createdAt: Date, extra: Partial<RetentionCandidate> = {}, format: CompressionFormat = 'gzip'): RetentionCandidate {
  const iso = createdAt.toISOString();
  return { id: `backup_${iso.replace(/[-:]/g, '').replace(/\.\d+/, '')}${COMPRESSION_FORMATS[format].extension}`, createdAt: iso, pinned: false, verified: false, ...extra };
}
const ago = (days: number, extra: Partial<RetentionCandidate> = {}, format: CompressionFormat = 'gzip') => at(new Date(now.getTime() - days * DAY), extra, format);
const deleted = (plan: ReturnType<typeof planRetention>) => plan.filter((b) => b.action === 'delete').map((b) => b.id).sort();
const ids = (list: RetentionCandidate[]) => list.map((b) => b.id).sort();

describe('planRetention: age, count and the newest success (the behaviour before GFS, unchanged)', () => {
  it('deletes backups older than RETENTION_DAYS, and says why each is kept', () => {
    const plan = planRetention([ago(0), ago(3), ago(8), ago(30)], policyOf(), now);
    expect(deleted(plan)).toEqual(ids([ago(8), ago(30)]));
    expect(plan.map((b) => b.reasons)).toEqual([['newest success', 'younger than 7 days'], ['younger than 7 days'], ['expired'], ['expired']]);
  });

  it('always keeps the newest backup even when it is older than the retention days, also with RETENTION_DAYS=0', () => {
    expect(deleted(planRetention([ago(40), ago(50)], policyOf(), now))).toEqual(ids([ago(50)]));
    expect(planRetention([ago(40)], policyOf({ days: 0 }), now)).toEqual([{ id: ago(40).id, createdAt: ago(40).createdAt, action: 'keep', reasons: ['newest success'] }]);
  });

  it('keeps the newest RETENTION_MIN_COUNT whatever their age, and never fewer than the newest one', () => {
    const plan = planRetention([ago(10), ago(20), ago(30), ago(40)], policyOf({ minCount: 3 }), now);
    expect(deleted(plan)).toEqual(ids([ago(40)]));
    expect(plan[2]!.reasons).toEqual(['newest 3']);
    expect(deleted(planRetention([ago(9), ago(10)], policyOf({ days: 1, minCount: 0 }), now))).toEqual(ids([ago(10)]));
  });

  it('plans .sql.zst and .sql.gz backups as one history, and keeps the newest whatever its format', () => {
    const all = [ago(0, {}, 'zstd'), ago(3), ago(8, {}, 'zstd'), ago(30)];
    expect(deleted(planRetention(all, policyOf(), now))).toEqual(ids([ago(8, {}, 'zstd'), ago(30)]));
    expect(deleted(planRetention([ago(40, {}, 'zstd'), ago(50)], policyOf(), now))).toEqual(ids([ago(50)]));
  });

  it('lists newest first whatever the input order; same-second backups ordered by their _n suffix', () => {
    const base = ago(1);
    const second = { ...base, id: base.id.replace('.sql.gz', '_1.sql.gz') };
    const plan = planRetention([ago(5), base, second, ago(2)], policyOf(), now);
    expect(plan.map((b) => b.id)).toEqual([second.id, base.id, ago(2).id, ago(5).id]);
  });
});

describe('planRetention: floors', () => {
  it('a pinned backup is kept whatever its age, and the reason says so', () => {
    const plan = planRetention([ago(0), ago(400, { pinned: true }), ago(500)], policyOf({ days: 1 }), now);
    expect(plan.map((b) => [b.action, b.reasons])).toEqual([['keep', ['newest success', 'younger than 1 day']], ['keep', ['pinned']], ['delete', ['expired']]]);
  });

  it('with drills on, the newest backup whose drill passed is kept; with them off it is not', () => {
    const history = [ago(0), ago(30, { verified: true }), ago(60, { verified: true })];
    expect(planRetention(history, policyOf({ keepNewestVerified: true }), now).map((b) => b.reasons)).toEqual([
      ['newest success', 'younger than 7 days'], ['newest verified'], ['expired'],
    ]);
    expect(deleted(planRetention(history, policyOf(), now))).toEqual(ids([ago(30), ago(60)]));
  });
});

describe('planRetention: daily, weekly, monthly and yearly rules', () => {
  it('keeps the newest backup of each of the newest N days that have one (several a day, gaps)', () => {
    // Three a day on the 20th, none on the 19th, one on the 18th and two on the 15th.
    const history = [
      at(new Date('2026-05-20T11:00:00Z')), at(new Date('2026-05-20T06:00:00Z')), at(new Date('2026-05-20T00:00:00Z')),
      at(new Date('2026-05-18T23:59:59Z')),
      at(new Date('2026-05-15T20:00:00Z')), at(new Date('2026-05-15T01:00:00Z')),
    ];
    const plan = planRetention(history, policyOf({ days: 0, keepDaily: 3 }), now);
    expect(plan.map((b) => b.reasons)).toEqual([
      ['newest success', 'daily 2026-05-20'], ['expired'], ['expired'], ['daily 2026-05-18'], ['daily 2026-05-15'], ['expired'],
    ]);
  });

  it('a week of failed backups expires nothing a daily rule keeps: it counts days with backups, not days back from now', () => {
    const history = [ago(10), ago(11), ago(12), ago(13)];
    expect(deleted(planRetention(history, policyOf({ keepDaily: 3 }), now))).toEqual(ids([ago(13)]));
  });

  it('days, weeks, months and years are UTC: 23:30 at UTC-1 is the next UTC day', () => {
    const lateEvening = new Date('2026-05-19T23:30:00-01:00');
    expect(periodOf('daily', lateEvening)).toBe('2026-05-20');
    expect(periodOf('monthly', new Date('2026-06-01T00:30:00+02:00'))).toBe('2026-05');
    expect(periodOf('yearly', new Date('2027-01-01T00:30:00+01:00'))).toBe('2026');
  });

  it('ISO weeks: start on Monday, belong to the year of their Thursday', () => {
    const cases: [string, string][] = [
      ['2026-11-30T00:00:00Z', '2026-W49'], // a Monday
      ['2026-11-29T23:59:59Z', '2026-W48'], // the Sunday before
      ['2026-12-31T12:00:00Z', '2026-W53'], // 2026 has 53 weeks (it starts on a Thursday)
      ['2027-01-03T12:00:00Z', '2026-W53'], // a Sunday in 2027, still 2026's last week
      ['2027-01-04T00:00:00Z', '2027-W01'],
      ['2024-12-30T00:00:00Z', '2025-W01'], // a Monday in 2024 in 2025's first week
      ['2021-01-03T00:00:00Z', '2020-W53'],
      ['2024-02-29T12:00:00Z', '2024-W09'], // leap day
    ];
    for (const [instant, week] of cases) expect(periodOf('weekly', new Date(instant)), instant).toBe(week);
  });

  it('each rule counts on its own: a backup kept by one still counts as its period\'s for another', () => {
    // One backup a day for 40 days: daily 7 keeps 7, weekly 2 keeps the newest of this and last ISO week.
    const history = Array.from({ length: 40 }, (_, i) => ago(i));
    const plan = planRetention(history, policyOf({ days: 0, keepDaily: 7, keepWeekly: 2, keepMonthly: 2 }), now);
    const kept = plan.filter((b) => b.action === 'keep');
    // 2026-05-20 is a Wednesday: weekly keeps it (W21) and Sunday 05-17 (W20); monthly: it and 04-30.
    expect(plan[0]!.reasons).toEqual(['newest success', 'daily 2026-05-20', 'weekly 2026-W21', 'monthly 2026-05']);
    expect(kept.map((b) => b.createdAt.slice(0, 10))).toEqual(['2026-05-20', '2026-05-19', '2026-05-18', '2026-05-17', '2026-05-16', '2026-05-15', '2026-05-14', '2026-04-30']);
    expect(plan.find((b) => b.createdAt.startsWith('2026-05-17'))!.reasons).toEqual(['daily 2026-05-17', 'weekly 2026-W20']);
    expect(plan.find((b) => b.createdAt.startsWith('2026-04-30'))!.reasons).toEqual(['monthly 2026-04']);
  });

  it('yearly keeps the newest backup of each of the newest N years with backups, across a leap year', () => {
    const history = [at(new Date('2026-03-01T00:00:00Z')), at(new Date('2024-12-31T23:59:59Z')), at(new Date('2024-02-29T12:00:00Z')), at(new Date('2021-06-01T00:00:00Z'))];
    const plan = planRetention(history, policyOf({ days: 0, keepYearly: 2 }), now);
    expect(plan.map((b) => b.reasons)).toEqual([['newest success', 'yearly 2026'], ['yearly 2024'], ['expired'], ['expired']]);
  });
});

describe('describePolicy', () => {
  it('names the variables in force, for the deletion log lines', () => {
    expect(describePolicy(policyOf())).toBe('RETENTION_DAYS=7, RETENTION_MIN_COUNT=1');
    expect(describePolicy(policyOf({ days: 0, keepDaily: 7, keepYearly: 3, keepNewestVerified: true }))).toBe(
      'RETENTION_DAYS=0, RETENTION_MIN_COUNT=1, RETENTION_KEEP_DAILY=7, RETENTION_KEEP_YEARLY=3, newest verified backup kept (RESTORE_DRILL is on)',
    );
  });
});
