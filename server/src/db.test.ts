// libpq's sslmode mapped onto node-postgres (review S2; contract/src/pg-tls.ts, shared with db-restore): the table, then the fallbacks against a
// real server without TLS (the harness cluster), where prefer must fall back and require must not.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type PostgresCluster } from '../../test/harness/index.js';
import type { Config, PgSslMode, PgTlsSettings } from './config/config.js';
import { pgSslAttempts } from '@db-backup-service/contract';
import { checkDatabase } from './db.js';

const files = (file: string) => `<${file}>`;
const tls = (mode: PgSslMode, over: Partial<PgTlsSettings> = {}): PgTlsSettings => ({ mode, rootCert: null, cert: null, key: null, ...over });

describe('pgSslAttempts', () => {
  it('maps each sslmode as libpq means it', () => {
    expect(pgSslAttempts(tls('disable'), files)).toEqual([false]);
    expect(pgSslAttempts(tls('allow'), files)).toEqual([false, { rejectUnauthorized: false }]);
    expect(pgSslAttempts(tls('prefer'), files)).toEqual([{ rejectUnauthorized: false }, false]);
    // require encrypts without verifying (node-postgres alone would verify) ...
    expect(pgSslAttempts(tls('require'), files)).toEqual([{ rejectUnauthorized: false }]);
    const [verifyCa] = pgSslAttempts(tls('verify-ca', { rootCert: '/ca.pem' }), files) as [Record<string, unknown>];
    expect(verifyCa).toMatchObject({ ca: '</ca.pem>', rejectUnauthorized: true });
    // ... verify-ca checks the chain but not the host name, verify-full both.
    expect(typeof verifyCa.checkServerIdentity).toBe('function');
    expect(pgSslAttempts(tls('verify-full', { rootCert: '/ca.pem' }), files)).toEqual([{ ca: '</ca.pem>', rejectUnauthorized: true }]);
  });

  it('verifies under require once a root certificate is given, as libpq does', () => {
    const [attempt] = pgSslAttempts(tls('require', { rootCert: '/ca.pem' }), files) as [Record<string, unknown>];
    expect(attempt).toMatchObject({ ca: '</ca.pem>', rejectUnauthorized: true });
  });

  it("uses the system CAs for 'system' and passes a client certificate", () => {
    expect(pgSslAttempts(tls('verify-full', { rootCert: 'system', cert: '/c.pem', key: '/k.pem' }), files)).toEqual([
      { cert: '</c.pem>', key: '</k.pem>', rejectUnauthorized: true },
    ]);
  });
});

describe('connections to a server without TLS', () => {
  let cluster: PostgresCluster;
  beforeAll(async () => {
    cluster = await startPostgres();
  });
  afterAll(() => cluster?.destroy());

  const db = (mode: PgSslMode): Config['db'] => ({
    host: cluster.host, port: cluster.port, name: 'postgres', user: cluster.user, password: cluster.password, tls: tls(mode),
  });

  it.each(['disable', 'allow', 'prefer'] as const)('%s connects (prefer falls back to plain, as pg_dump does)', async (mode) => {
    await checkDatabase(db(mode), AbortSignal.timeout(10_000));
  });

  it.each(['require', 'verify-full'] as const)('%s refuses the plain connection', async (mode) => {
    await expect(checkDatabase(db(mode), AbortSignal.timeout(10_000))).rejects.toThrow(/does not support SSL/);
  });
});
