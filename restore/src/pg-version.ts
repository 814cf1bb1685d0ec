// PostgreSQL version numbers as the tools print them and as servers report them.

/** A PostgreSQL version: `text` as printed ('17.12', '9.6.24', '18beta1'), `num` as server_version_num. */
export interface PgVersion {
  readonly text: string;
  /** e.g. 170012 (90624 for 9.6.24); a pre-release counts as its .0. */
  readonly num: number;
  /** e.g. 17 (9.6 for a pre-10 version). */
  readonly major: number;
}

/** The major version of a `server_version_num`: 160004 -> 16, 90624 -> 9.6. */
export function majorOfVersionNum(num: number): number {
  return num >= 100000 ? Math.floor(num / 10000) : Math.floor(num / 10000) + (Math.floor(num / 100) % 100) / 10;
}

/** Parses a version as PostgreSQL prints it: '17.12', '9.6.24', '18beta1', '16.4 (Debian 16.4-1)'. */
export function parseVersionText(text: string): PgVersion | null {
  const match = /^(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:(?:alpha|beta|rc|devel)\d*)?/.exec(text.trim());
  if (!match) return null;
  const first = Number(match[1]);
  const second = Number(match[2] ?? 0);
  const third = Number(match[3] ?? 0);
  const num = first >= 10 ? first * 10000 + second : first * 10000 + second * 100 + third;
  return { text: match[0], num, major: majorOfVersionNum(num) };
}

/** Parses `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` (any client tool's --version). */
export function parseToolVersion(output: string): PgVersion | null {
  const match = /\(PostgreSQL\)\s+(\S+)/.exec(output);
  return match?.[1] === undefined ? null : parseVersionText(match[1]);
}

/**
 * The first minor release of each line whose pg_dump writes, and whose psql understands, the
 * `\restrict` / `\unrestrict` meta-commands (the August 2025 security releases; all of 18).
 */
const RESTRICT_SINCE: Readonly<Record<number, number>> = { 13: 22, 14: 19, 15: 14, 16: 10, 17: 6 };

/** Whether this psql runs a dump that opens with `\restrict` (older ones stop at "invalid command"). */
export function psqlUnderstandsRestrict(v: PgVersion): boolean {
  if (v.major >= 18) return true;
  const since = RESTRICT_SINCE[v.major];
  return since !== undefined && v.num % 10000 >= since;
}

/** "18.x, 17.6+, 16.10+, 15.14+, 14.19+ or 13.22+", for messages. */
export const RESTRICT_RELEASES = `18.x, ${Object.entries(RESTRICT_SINCE)
  .sort(([a], [b]) => Number(b) - Number(a))
  .map(([major, minor]) => `${major}.${minor}+`)
  .join(', ')
  .replace(/, ([^,]+)$/, ' or $1')}`;
