// The retention plan over generated histories, compared with a reference computed here from the
// issue's semantics alone. The reference is deliberately written differently from plan.ts and
// periods.ts (ISO weeks from the ISO 8601 ordinal-day formula with a weekday from Sakamoto's method,
// UTC days/months/years as toISOString() slices, each period rule as "group, sort the periods, take
// N"), so that a shared mistake is unlikely. Every history comes from a seed, printed with a failure.
import { describe, expect, it } from 'vitest';
import type { RetentionPolicy } from '@db-backup-service/contract';
import { planRetention, type PlannedBackup, type RetentionCandidate } from './plan.js';
import { seededRandom } from '../../../test/harness/random.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

// ---------------------------------------------------------------------------------------------
// The reference.

const isLeap = (y: number) => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
const DAYS_BEFORE_MONTH = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];

/** ISO weekday, Monday 1 .. Sunday 7 (Sakamoto's method, not Date). */
function isoWeekday(y: number, m: number, d: number): number {
  const t = [0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4];
  const yy = m < 3 ? y - 1 : y;
  const sunday0 = (yy + Math.floor(yy / 4) - Math.floor(yy / 100) + Math.floor(yy / 400) + t[m - 1]! + d) % 7;
  return sunday0 === 0 ? 7 : sunday0;
}

/** 52 or 53: a year has 53 ISO weeks when it starts on a Thursday, or is a leap year starting on a Wednesday. */
function isoWeeksIn(y: number): number {
  const p = (x: number) => (x + Math.floor(x / 4) - Math.floor(x / 100) + Math.floor(x / 400)) % 7;
  return p(y) === 4 || p(y - 1) === 3 ? 53 : 52;
}

/** `YYYY-Www` of a `YYYY-MM-DD` (UTC) day: week = floor((ordinal - weekday + 10) / 7), ISO 8601. */
function isoWeekOfDay(day: string): string {
  const [y, m, d] = day.split('-').map(Number) as [number, number, number];
  const ordinal = DAYS_BEFORE_MONTH[m - 1]! + d + (m > 2 && isLeap(y) ? 1 : 0);
  let year = y;
  let week = Math.floor((ordinal - isoWeekday(y, m, d) + 10) / 7);
  if (week < 1) {
    year = y - 1;
    week = isoWeeksIn(year);
  } else if (week > isoWeeksIn(y)) {
    year = y + 1;
    week = 1;
  }
  return `${year}-W${String(week).padStart(2, '0')}`;
}

const PERIOD_RULES = [
  { field: 'keepDaily', name: 'daily', of: (iso: string) => iso.slice(0, 10) },
  { field: 'keepWeekly', name: 'weekly', of: (iso: string) => isoWeekOfDay(iso.slice(0, 10)) },
  { field: 'keepMonthly', name: 'monthly', of: (iso: string) => iso.slice(0, 7) },
  { field: 'keepYearly', name: 'yearly', of: (iso: string) => iso.slice(0, 4) },
] as const;

/** The plan, straight from the issue's wording. */
function referencePlan(backups: readonly RetentionCandidate[], policy: RetentionPolicy, now: Date): PlannedBackup[] {
  const sorted = [...backups].sort((a, b) => {
    const ta = Date.parse(a.createdAt);
    const tb = Date.parse(b.createdAt);
    if (ta !== tb) return tb - ta;
    return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
  });
  const reasons = new Map<string, string[]>(sorted.map((b) => [b.id, []]));
  const add = (id: string, reason: string) => reasons.get(id)!.push(reason);

  for (const b of sorted) if (b.pinned) add(b.id, 'pinned');
  if (sorted.length > 0) add(sorted[0]!.id, 'newest success');
  if (policy.minCount > 1) for (const b of sorted.slice(0, policy.minCount)) add(b.id, `newest ${policy.minCount}`);
  if (policy.days > 0) {
    const cutoff = now.getTime() - policy.days * DAY;
    for (const b of sorted) if (Date.parse(b.createdAt) >= cutoff) add(b.id, `younger than ${policy.days} ${policy.days === 1 ? 'day' : 'days'}`);
  }
  if (policy.keepNewestVerified) {
    const verified = sorted.find((b) => b.verified);
    if (verified) add(verified.id, 'newest verified');
  }
  for (const rule of PERIOD_RULES) {
    // The newest backup of every period that has one; then the N latest periods.
    const newestOf = new Map<string, string>();
    for (const b of sorted) {
      const period = rule.of(new Date(b.createdAt).toISOString());
      if (!newestOf.has(period)) newestOf.set(period, b.id);
    }
    const latest = [...newestOf.keys()].sort().reverse().slice(0, policy[rule.field]);
    for (const period of latest) add(newestOf.get(period)!, `${rule.name} ${period}`);
  }
  // Reasons were added rule by rule, so they already follow the listed order.
  return sorted.map((b) => {
    const why = reasons.get(b.id)!;
    return { id: b.id, createdAt: b.createdAt, action: why.length > 0 ? 'keep' : 'delete', reasons: why.length > 0 ? why : ['expired'] };
  });
}

// ---------------------------------------------------------------------------------------------
// Generated histories.

interface Random {
  (): number;
  int(lo: number, hi: number): number;
  chance(p: number): boolean;
  pick<T>(list: readonly T[]): T;
}

function randomOf(seed: number): Random {
  const next = seededRandom(seed);
  const r = (() => next()) as Random;
  r.int = (lo, hi) => lo + Math.floor(next() * (hi - lo + 1));
  r.chance = (p) => next() < p;
  r.pick = (list) => list[Math.floor(next() * list.length)]!;
  return r;
}

const utc = (y: number, m: number, d: number, h = 0, min = 0, s = 0) => Date.UTC(y, m - 1, d, h, min, s);

interface History {
  readonly now: Date;
  readonly policy: RetentionPolicy;
  readonly backups: RetentionCandidate[];
}

interface HistoryShape {
  readonly from: number;
  readonly to: number;
  /** Gaps mostly of hours, for the targeted windows of a few weeks. */
  readonly dense?: boolean;
  /** Override parts of the random policy. */
  readonly policy?: Partial<RetentionPolicy>;
}

function randomPolicy(r: Random): RetentionPolicy {
  const keep = () => (r.chance(0.3) ? 0 : r.int(1, 15));
  return {
    days: r.chance(0.25) ? 0 : r.int(1, 60),
    minCount: r.int(1, 5),
    keepDaily: keep(),
    keepWeekly: keep(),
    keepMonthly: keep(),
    keepYearly: keep(),
    keepNewestVerified: r.chance(0.5),
    dryRun: r.chance(0.5),
  };
}

/** Instants that sit on an edge: UTC midnight, month ends, ISO week-year changes, leap days, far time zones. */
function edgeInstants(r: Random, from: number, to: number): number[] {
  const out: number[] = [];
  const firstDay = Math.floor(from / DAY) * DAY;
  for (let day = firstDay; day <= to; day += DAY) {
    const date = new Date(day);
    const [m, d] = [date.getUTCMonth() + 1, date.getUTCDate()];
    const lastOfMonth = new Date(day + DAY).getUTCDate() === 1;
    // Within minutes of UTC midnight, on either side.
    if (r.chance(0.04)) out.push(day + r.int(0, 300) * SECOND, day - r.int(1, 300) * SECOND);
    // Local midnight at +14:00 is 10:00Z, at -11:00 it is 11:00Z: another local day either side.
    if (r.chance(0.03)) out.push(day + 10 * HOUR + r.int(-1800, 1800) * SECOND);
    if (r.chance(0.03)) out.push(day + 11 * HOUR + r.int(-1800, 1800) * SECOND);
    if (lastOfMonth && r.chance(0.4)) out.push(day + DAY - r.int(1, 600) * SECOND, day + DAY + r.int(0, 600) * SECOND);
    if (((m === 12 && d >= 28) || (m === 1 && d <= 4)) && r.chance(0.5)) out.push(day + r.int(0, DAY / SECOND - 1) * SECOND);
    if (m === 2 && d === 29 && r.chance(0.8)) for (let i = r.int(1, 4); i > 0; i--) out.push(day + r.int(0, DAY / SECOND - 1) * SECOND);
  }
  return out;
}

function randomGap(r: Random, dense: boolean): number {
  const x = r();
  if (dense) return x < 0.3 ? r.int(1, 120) * MINUTE : x < 0.9 ? r.int(2, 30) * HOUR : r.int(2, 5) * DAY;
  if (x < 0.3) return r.int(1, 180) * MINUTE;
  if (x < 0.65) return r.int(3, 36) * HOUR;
  if (x < 0.93) return r.int(1, 14) * DAY + r.int(0, DAY / SECOND) * SECOND;
  return r.int(15, 60) * DAY; // a stretch with no backups
}

/** A compact UTC stamp, as the service names its backups. */
const stampOf = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');

function generatedHistory(seed: number, shape?: HistoryShape): History {
  const r = randomOf(seed);
  const to = shape?.to ?? utc(2025, 1, 1) + r.int(0, 4.5 * 365) * DAY + r.int(0, DAY / SECOND - 1) * SECOND;
  const from = shape?.from ?? to - 730 * DAY;
  const policy = { ...randomPolicy(r), ...shape?.policy };
  const now = to;

  const instants: number[] = [];
  for (let t = from + r.int(0, 3 * DAY / SECOND) * SECOND; t <= now; t += randomGap(r, shape?.dense ?? false)) {
    instants.push(t);
    // A burst: several backups within a few hours (on-demand ones besides the schedule).
    if (r.chance(0.08)) for (let i = r.int(2, 6), u = t; i > 0; i--) instants.push((u += r.int(1, 90) * MINUTE));
  }
  instants.push(...edgeInstants(r, from, now));
  // The RETENTION_DAYS boundary: exactly d days old is still kept, one second more is not.
  if (policy.days > 0 && r.chance(0.5)) instants.push(now - policy.days * DAY, now - policy.days * DAY - SECOND);
  if (r.chance(0.2)) instants.push(now);

  const inRange = instants.map((t) => Math.floor(t / SECOND) * SECOND).filter((t) => t >= from && t <= now);
  // Same-second backups (the service suffixes _1, _2).
  for (const t of [...inRange]) if (r.chance(0.03)) for (let i = r.int(1, 2); i > 0; i--) inRange.push(t);
  inRange.sort((a, b) => a - b);

  const pinRate = r.pick([0, 0.01, 0.05]);
  const verifiedRate = r.pick([0, 0.02, 0.1, 0.4]);
  const sameSecond = new Map<string, number>();
  const backups = inRange.map((t): RetentionCandidate => {
    const stamp = stampOf(t);
    const n = sameSecond.get(stamp) ?? 0;
    sameSecond.set(stamp, n + 1);
    return {
      id: `backup_${stamp}${n === 0 ? '' : `_${n}`}.sql.gz`,
      createdAt: new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      pinned: r.chance(pinRate),
      verified: r.chance(verifiedRate),
    };
  });
  // The plan must not depend on the listing's order.
  for (let i = backups.length - 1; i > 0; i--) {
    const j = r.int(0, i);
    [backups[i], backups[j]] = [backups[j]!, backups[i]!];
  }
  return { now: new Date(now), policy, backups };
}

// ---------------------------------------------------------------------------------------------
// Checks.

/** The first entry where the plans differ, small enough to read in a failure message. */
function firstDifference(plan: readonly PlannedBackup[], reference: readonly PlannedBackup[]) {
  for (let i = 0; i < Math.max(plan.length, reference.length); i++) {
    if (JSON.stringify(plan[i]) !== JSON.stringify(reference[i])) return { index: i, plan: plan[i], reference: reference[i] };
  }
  return undefined;
}

function describeCase(seed: number, h: History): string {
  return `seed ${seed}, now ${h.now.toISOString()}, ${h.backups.length} backups, policy ${JSON.stringify(h.policy)}`;
}

function expectSameAsReference(seed: number, h: History): PlannedBackup[] {
  const plan = planRetention(h.backups, h.policy, h.now);
  const reference = referencePlan(h.backups, h.policy, h.now);
  expect(firstDifference(plan, reference), describeCase(seed, h)).toBeUndefined();
  expect(plan, describeCase(seed, h)).toEqual(reference);
  return plan;
}

const SEEDS = Array.from({ length: 300 }, (_, i) => 1000 + i);

describe('the reference computation itself', () => {
  it('computes ISO weeks by ISO 8601, across week-year changes and leap days', () => {
    const cases: [string, string][] = [
      ['2026-11-29', '2026-W48'], ['2026-11-30', '2026-W49'], ['2026-12-28', '2026-W53'], ['2026-12-31', '2026-W53'],
      ['2027-01-01', '2026-W53'], ['2027-01-03', '2026-W53'], ['2027-01-04', '2027-W01'], ['2024-12-29', '2024-W52'],
      ['2024-12-30', '2025-W01'], ['2021-01-03', '2020-W53'], ['2021-01-04', '2021-W01'], ['2024-02-29', '2024-W09'],
      ['2028-02-29', '2028-W09'], ['2028-01-02', '2027-W52'], ['2028-01-03', '2028-W01'], ['2032-12-31', '2032-W53'],
      ['2025-12-29', '2026-W01'], ['2023-01-01', '2022-W52'],
    ];
    for (const [day, week] of cases) expect(isoWeekOfDay(day), day).toBe(week);
    expect([2020, 2024, 2025, 2026, 2027, 2032].map(isoWeeksIn)).toEqual([53, 52, 52, 53, 52, 53]);
    // Sakamoto's weekday agrees with the calendar on every day of ten years.
    for (let t = utc(2020, 1, 1); t < utc(2030, 1, 1); t += DAY) {
      const d = new Date(t);
      expect(isoWeekday(d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate())).toBe(d.getUTCDay() === 0 ? 7 : d.getUTCDay());
    }
  });

  it('generates histories with the edges it promises', () => {
    const h = generatedHistory(1000);
    expect(h.backups.every((b) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/.test(b.createdAt))).toBe(true);
    expect(h.backups.every((b) => b.id.startsWith(`backup_${stampOf(Date.parse(b.createdAt))}`))).toBe(true);
    const all = SEEDS.slice(0, 50).flatMap((seed) => generatedHistory(seed).backups);
    expect(all.some((b) => b.id.includes('Z_1.'))).toBe(true);
    expect(all.some((b) => b.createdAt.startsWith('2024-02-29'))).toBe(true);
    expect(all.some((b) => b.createdAt.startsWith('2028-02-29'))).toBe(true);
    expect(all.some((b) => /-12-31T23:5\d/.test(b.createdAt))).toBe(true);
    expect(all.some((b) => b.pinned) && all.some((b) => b.verified)).toBe(true);
  });
});

describe('planRetention over generated histories agrees with the reference', () => {
  it(`two years of irregular backups, random policies (${SEEDS.length} histories)`, () => {
    let deletions = 0;
    for (const seed of SEEDS) deletions += expectSameAsReference(seed, generatedHistory(seed)).filter((b) => b.action === 'delete').length;
    // Not a vacuous agreement: the policies do delete.
    expect(deletions).toBeGreaterThan(0);
  });

  it('across the 2026/2027 ISO week-year change (2026 has 53 weeks)', () => {
    const reasons = new Set<string>();
    for (let seed = 5000; seed < 5060; seed++) {
      const h = generatedHistory(seed, { from: utc(2026, 11, 20), to: utc(2027, 1, 25) + seed * 7 * MINUTE, dense: true, policy: { keepWeekly: 1 + (seed % 12) } });
      for (const b of expectSameAsReference(seed, h)) for (const reason of b.reasons) reasons.add(reason);
    }
    for (const week of ['weekly 2026-W52', 'weekly 2026-W53', 'weekly 2027-W01', 'weekly 2027-W02']) expect([...reasons], week).toContain(week);
  });

  it('across other week-year changes (2020/2021 with 53 weeks, 2024/2025 whose W01 starts in December, 2027/2028)', () => {
    for (const [year, base] of [[2020, 6000], [2024, 6100], [2027, 6200]] as const) {
      for (let seed = base; seed < base + 25; seed++) {
        expectSameAsReference(seed, generatedHistory(seed, { from: utc(year, 12, 10), to: utc(year + 1, 1, 20) + (seed - base) * 37 * MINUTE, dense: true }));
      }
    }
  });

  it('across the leap days of 2024 and 2028', () => {
    const reasons = new Set<string>();
    for (const [year, base] of [[2024, 7000], [2028, 7100]] as const) {
      for (let seed = base; seed < base + 30; seed++) {
        const h = generatedHistory(seed, { from: utc(year, 2, 10), to: utc(year, 3, 15) + (seed - base) * 41 * MINUTE, dense: true, policy: { keepDaily: 5 + (seed % 30) } });
        for (const b of expectSameAsReference(seed, h)) for (const reason of b.reasons) reasons.add(reason);
      }
    }
    for (const day of ['daily 2024-02-29', 'daily 2028-02-29', 'monthly 2024-02', 'monthly 2028-02']) expect([...reasons], day).toContain(day);
  });

  it('keeps the floors on every generated history: the newest, the pinned, the newest verified', () => {
    for (const seed of SEEDS) {
      const h = generatedHistory(seed);
      const plan = planRetention(h.backups, h.policy, h.now);
      const why = describeCase(seed, h);
      const action = new Map(plan.map((b) => [b.id, b.action]));
      expect(plan.map((b) => b.id).sort(), why).toEqual(h.backups.map((b) => b.id).sort());
      const newest = h.backups.reduce((a, b) => (Date.parse(b.createdAt) > Date.parse(a.createdAt) || (b.createdAt === a.createdAt && b.id > a.id) ? b : a));
      expect(action.get(newest.id), `${why}: the newest ${newest.id}`).toBe('keep');
      for (const b of h.backups.filter((c) => c.pinned)) expect(action.get(b.id), `${why}: pinned ${b.id}`).toBe('keep');
      const verified = h.backups.filter((b) => b.verified).sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt) || (a.id < b.id ? 1 : -1))[0];
      if (h.policy.keepNewestVerified && verified) expect(action.get(verified.id), `${why}: newest verified ${verified.id}`).toBe('keep');
      for (const b of plan) {
        if (b.action === 'delete') expect(b.reasons, `${why}: ${b.id}`).toEqual(['expired']);
        else expect(b.reasons.length > 0 && !b.reasons.includes('expired'), `${why}: ${b.id} ${JSON.stringify(b.reasons)}`).toBe(true);
      }
    }
  });
});
