import type { ConnectionOptions } from 'node:tls';

/** libpq's sslmode values (PGSSLMODE). */
export const PG_SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type PgSslMode = (typeof PG_SSL_MODES)[number];

/** PostgreSQL TLS as libpq reads it from PGSSLMODE, PGSSLROOTCERT, PGSSLCERT and PGSSLKEY (paths, read at connect time). */
export interface PgTlsSettings {
  readonly mode: PgSslMode;
  /** A CA bundle file, 'system' for the system's CAs (as libpq 16+), or null (libpq: ~/.postgresql/root.crt; here: Node's CAs). */
  readonly rootCert: string | null;
  readonly cert: string | null;
  readonly key: string | null;
}

/**
 * How node-postgres should try one connection. libpq's sslmode (which pg_dump follows) means:
 * disable: plain; allow: plain, TLS if the server refuses plain; prefer (libpq's default): TLS,
 * plain if the server has no TLS; require: TLS without verification (but as verify-ca when a root
 * certificate is configured, as libpq does); verify-ca: TLS, certificate chain verified;
 * verify-full: chain and host name verified. node-postgres reads PGSSLMODE differently (prefer
 * forces TLS, require verifies), so the mode is mapped explicitly here, and the fallbacks of
 * allow/prefer are a second attempt, made when the first fails refusedForEncryption. The server
 * and db-restore share this, so PGSSLMODE means one thing everywhere.
 */
export function pgSslAttempts(tls: PgTlsSettings, readFile: (file: string) => string): (false | ConnectionOptions)[] {
  const clientCert = tls.cert !== null && tls.key !== null ? { cert: readFile(tls.cert), key: readFile(tls.key) } : {};
  // 'system' or unset: Node's bundled CAs (libpq would read ~/.postgresql/root.crt when unset).
  const ca = tls.rootCert !== null && tls.rootCert !== 'system' ? { ca: readFile(tls.rootCert) } : {};
  const unverified: ConnectionOptions = { ...clientCert, rejectUnauthorized: false };
  // Chain verified, host name not: what libpq calls verify-ca.
  const verifiedCa: ConnectionOptions = { ...clientCert, ...ca, rejectUnauthorized: true, checkServerIdentity: () => undefined };
  switch (tls.mode) {
    case 'disable':
      return [false];
    case 'allow':
      return [false, unverified];
    case 'prefer':
      return [unverified, false];
    case 'require':
      return [tls.rootCert !== null && tls.rootCert !== 'system' ? verifiedCa : unverified];
    case 'verify-ca':
      return [verifiedCa];
    case 'verify-full':
      return [{ ...clientCert, ...ca, rejectUnauthorized: true }];
  }
}

/**
 * The server refused this attempt because of its encryption (no TLS on the server, or pg_hba.conf
 * wanting the other kind), not for a reason another attempt would not hit too.
 */
export function refusedForEncryption(error: unknown): boolean {
  const message = error instanceof Error ? error.message : '';
  const code = (error as { code?: string }).code;
  return message.includes('does not support SSL') || (code === '28000' && /pg_hba\.conf/.test(message));
}
