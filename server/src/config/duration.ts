/**
 * BACKUP_INTERVAL parsing: ISO-8601 durations (PT24H, P1D, PT30M, P1DT12H) and the shorthand
 * operators type by hand (24h, 30m, 90s, 1h30m, 2d). Years and months are refused: their length
 * is not fixed, and a backup interval must be.
 */
const ISO = /^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/i;
const SHORTHAND = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/i;

/** Milliseconds of a duration string, or null when it is not one we accept (or is zero). */
export function parseDuration(text: string): number | null {
  const value = text.trim();
  const iso = ISO.exec(value);
  if (iso && value.toUpperCase() !== 'P' && !value.toUpperCase().endsWith('T')) {
    const [, w, d, h, m, s] = iso;
    return positive(((Number(w ?? 0) * 7 + Number(d ?? 0)) * 24 * 3600 + Number(h ?? 0) * 3600 + Number(m ?? 0) * 60 + Number(s ?? 0)) * 1000);
  }
  const short = SHORTHAND.exec(value);
  if (short && value !== '') {
    const [, d, h, m, s] = short;
    return positive((Number(d ?? 0) * 86400 + Number(h ?? 0) * 3600 + Number(m ?? 0) * 60 + Number(s ?? 0)) * 1000);
  }
  return null;
}

function positive(ms: number): number | null {
  return Number.isFinite(ms) && ms >= 1000 ? Math.round(ms) : null;
}

/** ISO-8601 form in hours/minutes/seconds, as java.time.Duration prints it (PT24H, PT1H30M). */
export function formatIsoDuration(ms: number): string {
  const total = Math.round(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return `PT${h ? `${h}H` : ''}${m ? `${m}M` : ''}${s || (!h && !m) ? `${s}S` : ''}`;
}
