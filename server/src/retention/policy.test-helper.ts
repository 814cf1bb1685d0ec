import type { RetentionPolicy } from '@db-backup-service/contract';

/** A retention policy for tests: the service's defaults (RETENTION_DAYS=7, nothing else) with `overrides`. */
export function policyOf(overrides: Partial<RetentionPolicy> = {}): RetentionPolicy {
  return { days: 7, minCount: 1, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepYearly: 0, keepNewestVerified: false, dryRun: false, ...overrides };
}
