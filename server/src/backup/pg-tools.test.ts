import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupError } from './backup-error.js';
import { checkVersionCompatibility, discoverPgTools, majorOfVersionNum, parsePgDumpVersion } from './pg-tools.js';

let root: string;

async function fakeTool(dir: string, name: string, version: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, name);
  await writeFile(file, `#!/bin/sh\necho "${name} (PostgreSQL) ${version}"\n`);
  await chmod(file, 0o755);
}

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'pg-tools-test-'));
  await fakeTool(path.join(root, 'versioned', '14', 'bin'), 'pg_dump', '14.11');
  await fakeTool(path.join(root, 'versioned', '16', 'bin'), 'pg_dump', '16.4 (Debian 16.4-1)');
  await fakeTool(path.join(root, 'versioned', '16', 'bin'), 'psql', '16.4');
  // A newer major without pg_dump (server package only) must be skipped.
  await mkdir(path.join(root, 'versioned', '17', 'bin'), { recursive: true });
  await fakeTool(path.join(root, 'onpath'), 'pg_dump', '13.2');
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('discoverPgTools', () => {
  it('uses PG_BIN_DIR when set', async () => {
    const tools = await discoverPgTools(path.join(root, 'versioned', '14', 'bin'), { path: '', childEnv: {} }, { versionedRoot: path.join(root, 'versioned') });
    expect(tools).toEqual({
      pgDumpPath: path.join(root, 'versioned', '14', 'bin', 'pg_dump'),
      psqlPath: null,
      binDir: path.join(root, 'versioned', '14', 'bin'),
      pgDumpVersion: '14.11',
      pgDumpMajor: 14,
    });
  });

  it('names PG_BIN_DIR when it holds no pg_dump, without falling back', async () => {
    const dir = path.join(root, 'versioned', '17', 'bin');
    const attempt = discoverPgTools(dir, { path: '', childEnv: {} }, { versionedRoot: path.join(root, 'versioned') });
    await expect(attempt).rejects.toBeInstanceOf(BackupError);
    await expect(attempt).rejects.toMatchObject({ code: 'PG_DUMP_NOT_FOUND', message: expect.stringContaining(dir) });
  });

  it('otherwise takes the newest versioned bin dir that has pg_dump', async () => {
    const tools = await discoverPgTools(null, { path: path.join(root, 'onpath'), childEnv: {} }, { versionedRoot: path.join(root, 'versioned') });
    expect(tools.pgDumpPath).toBe(path.join(root, 'versioned', '16', 'bin', 'pg_dump'));
    expect(tools.psqlPath).toBe(path.join(root, 'versioned', '16', 'bin', 'psql'));
    expect(tools.pgDumpVersion).toBe('16.4');
    expect(tools.pgDumpMajor).toBe(16);
  });

  it('falls back to PATH', async () => {
    const tools = await discoverPgTools(null, { path: `/nonexistent:${path.join(root, 'onpath')}`, childEnv: {} }, { versionedRoot: path.join(root, 'none') });
    expect(tools.pgDumpPath).toBe(path.join(root, 'onpath', 'pg_dump'));
    expect(tools.pgDumpMajor).toBe(13);
  });

  it('fails clearly when there is no pg_dump anywhere', async () => {
    await expect(discoverPgTools(null, { path: '/nonexistent', childEnv: {} }, { versionedRoot: path.join(root, 'none') })).rejects.toMatchObject({
      code: 'PG_DUMP_NOT_FOUND',
      message: expect.stringMatching(/pg_dump not found.*PG_BIN_DIR/),
    });
  });

  it('finds the real pg_dump of this machine', async () => {
    const tools = await discoverPgTools(null, { path: process.env.PATH ?? '', childEnv: {} });
    expect(tools.pgDumpMajor).toBeGreaterThanOrEqual(15);
    expect(tools.pgDumpVersion).toMatch(/^\d+\.\d+$/);
  });
});

describe('versions', () => {
  it('parses pg_dump --version', () => {
    expect(parsePgDumpVersion('pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n')).toEqual({ version: '15.18', major: 15 });
    expect(parsePgDumpVersion('pg_dump (PostgreSQL) 17.6')).toEqual({ version: '17.6', major: 17 });
    expect(parsePgDumpVersion('pg_dump (PostgreSQL) 18beta1')).toEqual({ version: '18beta1', major: 18 });
    expect(parsePgDumpVersion('pg_dump (PostgreSQL) 9.6.24')).toEqual({ version: '9.6.24', major: 9.6 });
    expect(parsePgDumpVersion('something else')).toBeNull();
  });

  it('derives the major from server_version_num', () => {
    expect(majorOfVersionNum(160004)).toBe(16);
    expect(majorOfVersionNum(150018)).toBe(15);
    expect(majorOfVersionNum(90624)).toBe(9.6);
  });

  it('refuses a server newer than pg_dump, naming both versions and the fix', () => {
    const check = () => checkVersionCompatibility({ pgDumpVersion: '15.18', pgDumpMajor: 15 }, { version: '16.4', versionNum: 160004, major: 16 });
    expect(check).toThrow(BackupError);
    expect(check).toThrow(
      "pg_dump 15.18 cannot dump a PostgreSQL 16.4 server: pg_dump must be at least the server's major version. " +
        'Set PG_BIN_DIR to a PostgreSQL 16+ client or use an image with a newer client.',
    );
    try {
      check();
    } catch (error) {
      expect((error as BackupError).code).toBe('PG_VERSION_MISMATCH');
    }
  });

  it('accepts the same or an older server major', () => {
    expect(() => checkVersionCompatibility({ pgDumpVersion: '15.18', pgDumpMajor: 15 }, { version: '15.2', versionNum: 150002, major: 15 })).not.toThrow();
    expect(() => checkVersionCompatibility({ pgDumpVersion: '15.18', pgDumpMajor: 15 }, { version: '14.11', versionNum: 140011, major: 14 })).not.toThrow();
  });

  it('refuses servers older than 9.2', () => {
    expect(() => checkVersionCompatibility({ pgDumpVersion: '15.18', pgDumpMajor: 15 }, { version: '9.1.24', versionNum: 90124, major: 9.1 })).toThrow(/9\.2/);
  });
});
