import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ExitCode } from './exit-codes.js';
import { findPsql } from './pg-bin.js';

let root: string;

async function fakePsql(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, 'psql');
  await writeFile(path, '#!/bin/sh\n');
  await chmod(path, 0o755);
  return path;
}

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'pg-bin-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('findPsql', () => {
  it('uses PG_BIN_DIR first', async () => {
    const path = await fakePsql(join(root, 'custom'));
    await fakePsql(join(root, 'pg', '17', 'bin'));
    expect(findPsql({ pgBinDir: join(root, 'custom'), pgRoot: join(root, 'pg') })).toEqual({ path, via: 'PG_BIN_DIR' });
  });

  it('fails with exit 2 when PG_BIN_DIR has no psql', () => {
    expect(() => findPsql({ pgBinDir: root })).toThrow(expect.objectContaining({ exitCode: ExitCode.USAGE }));
  });

  it('takes the newest major under the PostgreSQL root (numerically: 10 > 9)', async () => {
    await fakePsql(join(root, 'pg', '9', 'bin'));
    const newest = await fakePsql(join(root, 'pg', '10', 'bin'));
    expect(findPsql({ pgBinDir: null, pgRoot: join(root, 'pg') }).path).toBe(newest);
  });

  it('falls back to PATH, then fails with a hint', async () => {
    const onPath = await fakePsql(join(root, 'bin'));
    expect(findPsql({ pgBinDir: null, pgRoot: join(root, 'none'), path: `/nonexistent:${join(root, 'bin')}` })).toEqual({ path: onPath, via: 'PATH' });
    expect(() => findPsql({ pgBinDir: null, pgRoot: join(root, 'none'), path: '/nonexistent' })).toThrow(/psql not found.*PG_BIN_DIR/);
  });
});
