import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCliConfig } from './config.js';
import { CliError, ExitCode } from './exit-codes.js';

const DB = { DB_HOST: 'db', DB_NAME: 'app', DB_USER: 'app', DB_PASSWORD: 'pw-secret-value' };

function problemsOf(fn: () => unknown): CliError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CliError) return err;
    throw err;
  }
  throw new Error('expected a CliError');
}

describe('loadCliConfig', () => {
  it('reads the local backend and the database settings', () => {
    const config = loadCliConfig({ ...DB, DB_PORT: ' 6543 ', STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: '/backups' }, { database: true, storage: true });
    expect(config).toEqual({
      db: { host: 'db', port: 6543, user: 'app', password: 'pw-secret-value', database: 'app', tls: { mode: 'prefer', rootCert: null, cert: null, key: null } },
      storage: { backend: 'local', dir: '/backups' },
      pgBinDir: null,
      clientsDir: null,
      namePrefix: 'backup',
      serviceDatabase: 'app',
    });
    expect(Object.isFrozen(config)).toBe(true);
    // --database changes the target, not whose backups these are (the service's DB_NAME).
    expect(loadCliConfig({ ...DB, STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: '/b' }, { database: true, storage: true, databaseOverride: 'staging' })).toMatchObject({
      db: { database: 'staging' },
      serviceDatabase: 'app',
    });
  });

  it('reads PGSSLMODE and the certificate paths as libpq names them, refusing an unknown mode', () => {
    const config = loadCliConfig({ ...DB, STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: '/b', PGSSLMODE: 'verify-full', PGSSLROOTCERT: '/ca.pem' }, { database: true, storage: true });
    expect(config.db?.tls).toEqual({ mode: 'verify-full', rootCert: '/ca.pem', cert: null, key: null });
    const err = problemsOf(() => loadCliConfig({ ...DB, STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: '/b', PGSSLMODE: 'on' }, { database: true, storage: true }));
    expect(err.message).toContain('PGSSLMODE: "on" is not one of disable, allow, prefer, require, verify-ca, verify-full');
  });

  it('reports every problem at once (exit 2) and never a secret value', () => {
    const err = problemsOf(() =>
      loadCliConfig({ DB_PORT: 'x', DB_PASSWORD: 'pw-secret-value', DB_PASSWORD_FILE: '/nope', STORAGE_BACKEND: 'ftp' }, { database: true, storage: true }),
    );
    expect(err.exitCode).toBe(ExitCode.USAGE);
    for (const name of ['DB_HOST', 'DB_PORT', 'DB_USER', 'DB_PASSWORD', 'DB_NAME', 'STORAGE_BACKEND']) expect(err.message).toContain(`${name}:`);
    expect(err.message).toContain('(6 problems)');
    expect(err.message).not.toContain('pw-secret-value');
  });

  it('takes --database over DB_NAME, which is then optional', () => {
    const { DB_NAME: _unused, ...rest } = DB;
    const config = loadCliConfig(rest, { database: true, storage: false, databaseOverride: 'staging' });
    expect(config.db?.database).toBe('staging');
    expect(config.storage).toBeNull();
  });

  it('reads secrets from *_FILE without the trailing newline', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cli-config-'));
    try {
      await writeFile(join(dir, 'pw'), 'from-file\n');
      await writeFile(join(dir, 'token'), 't'.repeat(40));
      const { DB_PASSWORD: _unused, ...rest } = DB;
      const config = loadCliConfig(
        { ...rest, DB_PASSWORD_FILE: join(dir, 'pw'), STORAGE_BACKEND: 's3', API_TOKEN_FILE: join(dir, 'token'), HTTP_PORT: '9090' },
        { database: true, storage: true },
      );
      expect(config.db?.password).toBe('from-file');
      expect(config.storage).toEqual({ backend: 's3', serviceUrl: 'http://127.0.0.1:9090', apiToken: 't'.repeat(40) });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('prefers --service-url over DB_RESTORE_SERVICE_URL and refuses URLs with credentials', () => {
    const env = { STORAGE_BACKEND: 's3', API_TOKEN: 'x'.repeat(32), DB_RESTORE_SERVICE_URL: 'http://svc:8080' };
    expect(loadCliConfig(env, { database: false, storage: true }).storage).toMatchObject({ serviceUrl: 'http://svc:8080' });
    expect(loadCliConfig(env, { database: false, storage: true, serviceUrlOverride: 'http://other:1' }).storage).toMatchObject({ serviceUrl: 'http://other:1' });
    const err = problemsOf(() => loadCliConfig(env, { database: false, storage: true, serviceUrlOverride: 'http://u:p@svc' }));
    expect(err.message).toContain('--service-url');
  });

  it('needs no database settings to list backups', () => {
    expect(loadCliConfig({ STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: '/b', BACKUP_NAME_PREFIX: 'prod-db' }, { database: false, storage: true })).toMatchObject({
      db: null,
      namePrefix: 'prod-db',
      serviceDatabase: null,
    });
  });
});
