import { describe, expect, it } from 'vitest';
import { redact } from '@db-backup-service/contract';
import { lastLines, PSQL_ARGS, psqlEnv } from './psql.js';

describe('psql helpers', () => {
  it('hands the password over in the environment, never in argv', () => {
    const env = psqlEnv({ PATH: '/bin' }, { host: 'db', port: 5433, user: 'app', password: 's3cr3t' }, 'app__restore_1');
    expect(env).toMatchObject({ PATH: '/bin', PGHOST: 'db', PGPORT: '5433', PGUSER: 'app', PGPASSWORD: 's3cr3t', PGDATABASE: 'app__restore_1' });
    expect(PSQL_ARGS.join(' ')).not.toContain('s3cr3t');
    expect(PSQL_ARGS).toContain('ON_ERROR_STOP=1');
  });

  // Found by the fault suite (test/faults/secrets.test.ts): psql inherited API_TOKEN when
  // db-restore ran with the service container's environment.
  it('gives psql none of the service secrets and no inherited libpq redirection', () => {
    const base = {
      PATH: '/bin', LANG: 'C.UTF-8', DB_PASSWORD: 'dbpw', DB_PASSWORD_FILE: '/run/secrets/db', API_TOKEN: 'tok', API_TOKEN_FILE: '/run/secrets/tok',
      AWS_SECRET_ACCESS_KEY: 'aws', AWS_SECRET_ACCESS_KEY_FILE: '/run/secrets/aws', AWS_SESSION_TOKEN: 'sess',
      PGHOSTADDR: '10.0.0.9', PGSERVICE: 'other', PGPASSFILE: '/tmp/pgpass', PGSSLMODE: 'require',
    };
    const env = psqlEnv(base, { host: 'db', port: 5432, user: 'app', password: 's3cr3t' }, 'app');
    for (const name of ['DB_PASSWORD', 'DB_PASSWORD_FILE', 'API_TOKEN', 'API_TOKEN_FILE', 'AWS_SECRET_ACCESS_KEY', 'AWS_SECRET_ACCESS_KEY_FILE', 'AWS_SESSION_TOKEN', 'PGHOSTADDR', 'PGSERVICE', 'PGPASSFILE']) {
      expect(env, name).not.toHaveProperty(name);
    }
    expect(env).toMatchObject({ PATH: '/bin', LANG: 'C.UTF-8', PGSSLMODE: 'require', PGPASSWORD: 's3cr3t' });
    expect(Object.values(env).join('\n')).not.toMatch(/dbpw|tok\b|aws|sess/);
  });

  it('redacts the password, plain and URL-encoded', () => {
    expect(redact('password=p@ss/word url=postgres://u:p%40ss%2Fword@h', 'p@ss/word')).toBe('password=[REDACTED] url=postgres://u:[REDACTED]@h');
    expect(redact('nothing', '')).toBe('nothing');
  });

  it('keeps the last non-empty lines', () => {
    expect(lastLines('a\n\nb\nc\n\n', 2)).toBe('b\nc');
  });
});
