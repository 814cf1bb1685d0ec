import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chooseClientFor, describeClients, findPgClients, PgClientsError } from './pg-clients.js';
import { parseVersionText } from './pg-version.js';

let root: string;

// Discovery only asks a binary for `--version`: a script that answers is all it needs.
async function fakeTool(dir: string, name: string, version: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, name);
  await writeFile(file, `#!/bin/sh\necho "${name} (PostgreSQL) ${version}"\n`);
  await chmod(file, 0o755);
}

const find = (tool: 'pg_dump' | 'psql', binDir: string | null, clientsDir: string, pathEnv = '') =>
  findPgClients({ tool, binDir, clientsDir, path: pathEnv, env: {} });
/** As with PG_CLIENTS_DIR unset: `dir` stands in for /usr/lib/postgresql. */
const findByDefault = (tool: 'pg_dump' | 'psql', dir: string, pathEnv: string) =>
  findPgClients({ tool, binDir: null, clientsDir: null, defaultClientsDir: dir, path: pathEnv, env: {} });

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'pg-clients-test-'));
  await fakeTool(path.join(root, 'clients', '14', 'bin'), 'pg_dump', '14.11');
  await fakeTool(path.join(root, 'clients', '16', 'bin'), 'pg_dump', '16.4 (Debian 16.4-1)');
  await fakeTool(path.join(root, 'clients', '16', 'bin'), 'psql', '16.4');
  await fakeTool(path.join(root, 'clients', '9.6', 'bin'), 'pg_dump', '9.6.24');
  // A newer major without pg_dump (a server package only) is not a client.
  await mkdir(path.join(root, 'clients', '17', 'bin'), { recursive: true });
  await mkdir(path.join(root, 'clients', 'not-a-version', 'bin'), { recursive: true });
  await fakeTool(path.join(root, 'onpath'), 'pg_dump', '13.2');
  await fakeTool(path.join(root, 'broken'), 'pg_dump', 'unknown');
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('findPgClients', () => {
  it('lists every client under the clients directory, oldest first, with the version the binary reports', async () => {
    const clients = await find('pg_dump', null, path.join(root, 'clients'), path.join(root, 'onpath'));
    expect(clients.map((c) => [c.version.text, c.binDir, c.via])).toEqual([
      ['9.6.24', path.join(root, 'clients', '9.6', 'bin'), path.join(root, 'clients')],
      ['14.11', path.join(root, 'clients', '14', 'bin'), path.join(root, 'clients')],
      ['16.4', path.join(root, 'clients', '16', 'bin'), path.join(root, 'clients')],
    ]);
    expect(clients[2]?.path).toBe(path.join(root, 'clients', '16', 'bin', 'pg_dump'));
  });

  it('uses PG_BIN_DIR alone when set, and names it when it holds no such tool', async () => {
    const pinned = await find('pg_dump', path.join(root, 'clients', '14', 'bin'), path.join(root, 'clients'));
    expect(pinned.map((c) => [c.version.text, c.via])).toEqual([['14.11', 'PG_BIN_DIR']]);
    const dir = path.join(root, 'clients', '17', 'bin');
    await expect(find('pg_dump', dir, path.join(root, 'clients'))).rejects.toThrow(new RegExp(`PG_BIN_DIR is ${dir}, but there is no executable pg_dump in it`));
  });

  it('falls back to PATH when PG_CLIENTS_DIR is unset, and says what it searched when there is none', async () => {
    const onPath = await findByDefault('pg_dump', path.join(root, 'none'), `/nonexistent:${path.join(root, 'onpath')}`);
    expect(onPath.map((c) => [c.version.text, c.via])).toEqual([['13.2', 'PATH']]);
    const attempt = findByDefault('psql', path.join(root, 'none'), path.join(root, 'onpath'));
    await expect(attempt).rejects.toBeInstanceOf(PgClientsError);
    await expect(attempt).rejects.toThrow(`psql not found: PG_BIN_DIR is not set, there is none under ${path.join(root, 'none')}/<major>/bin and none on PATH`);
  });

  it('does not fall back to PATH when PG_CLIENTS_DIR is set but holds no client', async () => {
    const dir = path.join(root, 'typo');
    await expect(find('pg_dump', null, dir, path.join(root, 'onpath'))).rejects.toThrow(
      `PG_CLIENTS_DIR is ${dir}, but there is no <major>/bin/pg_dump in it. Point PG_CLIENTS_DIR at a directory holding one <major>/bin per client (like /usr/lib/postgresql), or unset it.`,
    );
  });

  it('refuses a binary whose version it cannot read', async () => {
    await expect(find('pg_dump', path.join(root, 'broken'), path.join(root, 'none'))).rejects.toThrow(/cannot read the version of .*broken\/pg_dump/);
  });
});

describe('chooseClientFor', () => {
  const clients = ['15.18', '17.12', '18.6'].map((t) => ({ version: parseVersionText(t)!, binDir: `/pg/${t}` }));
  const chosen = (serverMajor: number) => chooseClientFor(clients, serverMajor)?.version.text ?? null;

  it('takes the same major, else the oldest newer one, else none', () => {
    expect([13, 14, 15, 16, 17, 18, 19].map(chosen)).toEqual(['15.18', '15.18', '15.18', '17.12', '17.12', '18.6', null]);
    expect(chooseClientFor([], 15)).toBeNull();
    expect(describeClients(clients.slice(0, 2))).toBe('15.18 (/pg/15.18), 17.12 (/pg/17.12)');
  });
});
