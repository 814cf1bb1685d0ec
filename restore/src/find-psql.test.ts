import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DumpHead } from './dump-preamble.js';
import { checkPsqlRunsDump, findPsql } from './find-psql.js';
import { parseVersionText } from './pg-version.js';

let root: string;

// findPsql only asks `psql --version` (restore/src/pg-clients.test.ts covers the search itself).
async function fakePsql(dir: string, version: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, 'psql');
  await writeFile(path, `#!/bin/sh\necho "psql (PostgreSQL) ${version}"\n`);
  await chmod(path, 0o755);
  return path;
}

const find = (pgBinDir: string | null, clientsDir: string, path = '') => findPsql({ pgBinDir, clientsDir, path, env: {} });

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'pg-bin-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('findPsql', () => {
  it('uses PG_BIN_DIR first', async () => {
    const path = await fakePsql(join(root, 'custom'), '16.9');
    await fakePsql(join(root, 'pg', '17', 'bin'), '17.12');
    const choice = await find(join(root, 'custom'), join(root, 'pg'));
    expect([choice.psql.path, choice.psql.via, choice.psql.version.text]).toEqual([path, 'PG_BIN_DIR', '16.9']);
  });

  it('asks `psql --version` without the secrets of the environment (db-restore runs in the service container)', async () => {
    const dir = join(root, 'custom');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'psql'), `#!/bin/sh\nenv > "${join(root, 'env.txt')}"\necho "psql (PostgreSQL) 17.2"\n`);
    await chmod(join(dir, 'psql'), 0o755);
    const env = {
      PATH: process.env.PATH, LANG: 'C.UTF-8', DB_PASSWORD: 'pw-1', API_TOKEN: 'tok-2', API_TOKEN_FILE: '/run/secrets/t', RESTORE_DRILL_DB_PASSWORD: 'pw-3',
      AWS_SECRET_ACCESS_KEY: 'aws-4', AWS_WEB_IDENTITY_TOKEN_FILE: '/var/run/token', PGPASSFILE: '/elsewhere',
    };
    await findPsql({ pgBinDir: dir, clientsDir: join(root, 'pg'), path: '', env });
    const seen = await readFile(join(root, 'env.txt'), 'utf8');
    expect(seen).toContain('LANG=C.UTF-8');
    for (const name of ['DB_PASSWORD', 'API_TOKEN', 'API_TOKEN_FILE', 'RESTORE_DRILL_DB_PASSWORD', 'AWS_SECRET_ACCESS_KEY', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'PGPASSFILE']) {
      expect(seen, name).not.toMatch(new RegExp(`^${name}=`, 'm'));
    }
  });

  it('fails as a usage error when PG_BIN_DIR has no psql', async () => {
    await expect(find(root, join(root, 'pg'))).rejects.toMatchObject({ kind: 'usage', message: expect.stringContaining(`PG_BIN_DIR is ${root}`) });
  });

  it('takes the newest psql under PG_CLIENTS_DIR (numerically: 10 > 9.6)', async () => {
    await fakePsql(join(root, 'pg', '9.6', 'bin'), '9.6.24');
    const newest = await fakePsql(join(root, 'pg', '10', 'bin'), '10.23');
    const choice = await find(null, join(root, 'pg'));
    expect(choice.psql.path).toBe(newest);
    expect(choice.found.map((c) => c.version.text)).toEqual(['9.6.24', '10.23']);
  });

  it('falls back to PATH, then fails with a hint', async () => {
    const onPath = await fakePsql(join(root, 'bin'), '15.18');
    const byDefault = (path: string) => findPsql({ pgBinDir: null, clientsDir: null, defaultClientsDir: join(root, 'none'), path, env: {} });
    expect((await byDefault(`/nonexistent:${join(root, 'bin')}`)).psql).toMatchObject({ path: onPath, via: 'PATH' });
    await expect(byDefault('/nonexistent')).rejects.toMatchObject({ kind: 'usage', message: expect.stringMatching(/psql not found.*PG_BIN_DIR/) });
  });
});

describe('checkPsqlRunsDump', () => {
  const head = (restrict: boolean): DumpHead => ({ pgDumpVersion: parseVersionText('17.12'), serverVersion: parseVersionText('16.14'), restrict });
  const choice = async (version: string) => {
    await fakePsql(join(root, 'pg', version.split('.')[0]!, 'bin'), version);
    return find(null, join(root, 'pg'));
  };

  it('refuses a \\restrict dump for a psql that cannot run it, before the target is touched', async () => {
    const old = await choice('16.9');
    expect(() => checkPsqlRunsDump(old, head(false))).not.toThrow();
    let error: unknown;
    try {
      checkPsqlRunsDump(old, head(true));
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ kind: 'usage', databaseState: 'untouched' });
    expect((error as Error).message).toBe(
      `this backup opens with \\restrict (written by pg_dump 17.12), which psql 16.9 cannot run (psql found: 16.9 (${join(root, 'pg', '16', 'bin')})). ` +
        'Install a psql from 18.x, 17.6+, 16.10+, 15.14+, 14.19+ or 13.22+ (e.g. postgresql-client-17) or point PG_BIN_DIR at one.',
    );
  });

  it('accepts a psql from a release that knows \\restrict', async () => {
    const recent = await choice('16.10');
    expect(() => checkPsqlRunsDump(recent, head(true))).not.toThrow();
  });
});
