/**
 * BACKUP_MAX_UPLOAD_RATE parsing: a number and a unit per second, `50MB/s`, `500KB/s`, `1GiB/s`,
 * `2.5MB/s`. Decimal units are powers of 1000 and binary ones powers of 1024, as disk and network
 * vendors use them; bits are refused (a "Mb/s" link is an eighth of "MB/s").
 */
const UNITS: Readonly<Record<string, number>> = {
  B: 1,
  KB: 1000,
  MB: 1000 ** 2,
  GB: 1000 ** 3,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
};

const RATE = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)\/s$/;

/** What an operator may write, for error messages. */
export const BYTE_RATE_FORMS = 'a number and B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024) per second, e.g. 50MB/s, 500KB/s, 2.5MB/s or 1GiB/s';

/** Bytes per second of a rate string, or null when it is not one we accept (or under 1 B/s). */
export function parseByteRate(text: string): number | null {
  const match = RATE.exec(text.trim());
  if (!match) return null;
  const bytes = Math.round(Number(match[1]) * (UNITS[match[2]!] ?? 0));
  return Number.isSafeInteger(bytes) && bytes >= 1 ? bytes : null;
}
