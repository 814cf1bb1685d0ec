import { describe, expect, it } from 'vitest';
import { lastLines, PSQL_ARGS, psqlEnv, redact } from './psql.js';

describe('psql helpers', () => {
  it('hands the password over in the environment, never in argv', () => {
    const env = psqlEnv({ PATH: '/bin' }, { host: 'db', port: 5433, user: 'app', password: 's3cr3t' }, 'app__restore_1');
    expect(env).toMatchObject({ PATH: '/bin', PGHOST: 'db', PGPORT: '5433', PGUSER: 'app', PGPASSWORD: 's3cr3t', PGDATABASE: 'app__restore_1' });
    expect(PSQL_ARGS.join(' ')).not.toContain('s3cr3t');
    expect(PSQL_ARGS).toContain('ON_ERROR_STOP=1');
  });

  it('redacts the password, plain and URL-encoded', () => {
    expect(redact('password=p@ss/word url=postgres://u:p%40ss%2Fword@h', 'p@ss/word')).toBe('password=*** url=postgres://u:***@h');
    expect(redact('nothing', '')).toBe('nothing');
  });

  it('keeps the last non-empty lines', () => {
    expect(lastLines('a\n\nb\nc\n\n', 2)).toBe('b\nc');
  });
});
