/** What a secret is replaced with in every message the service, the SDK and db-restore produce. */
export const REDACTED = '[REDACTED]';

/**
 * Replaces every occurrence of each secret in `text` (invariant 6). Also catches the
 * percent-encoded form, which is how a password shows up inside a connection URI.
 * Longer secrets go first so that a secret containing another is not left half-replaced.
 * One implementation for the server, the SDK and db-restore, so that one marker means "redacted".
 */
export function redact(text: string, secrets: string | readonly (string | null | undefined)[]): string {
  const needles = new Set<string>();
  for (const secret of typeof secrets === 'string' ? [secrets] : secrets) {
    if (!secret) continue;
    needles.add(secret);
    needles.add(encodeURIComponent(secret));
  }
  let out = text;
  for (const needle of [...needles].sort((a, b) => b.length - a.length)) {
    out = out.split(needle).join(REDACTED);
  }
  return out;
}
