import { parseVersionText, type PgClient } from '@db-backup-service/restore';
import { describe, expect, it } from 'vitest';
import { BackupError } from './backup-error.js';
import { choosePgDump, discoverPgDumps, type PgDumpClients } from './pg-tools.js';

const runtime = { path: '', childEnv: {} };

function client(version: string, binDir = `/usr/lib/postgresql/${version.split('.')[0]}/bin`): PgClient {
  return { tool: 'pg_dump', path: `${binDir}/pg_dump`, binDir, version: parseVersionText(version)!, via: '/usr/lib/postgresql' };
}
const server = (version: string) => {
  const v = parseVersionText(version)!;
  return { version, versionNum: v.num, major: v.major };
};
const all: PgDumpClients = { clients: [client('15.18'), client('17.12'), client('18.6')], pinned: false };

describe('discoverPgDumps', () => {
  // The search itself is restore/src/pg-clients.test.ts; here: the real clients, and what PG_BIN_DIR changes.
  it('finds the real pg_dump of this machine, and pins the one PG_BIN_DIR names', async () => {
    const found = await discoverPgDumps({ pgBinDir: null, pgClientsDir: null, runtime: { path: process.env.PATH ?? '', childEnv: {} } });
    const newest = found.clients.at(-1)!;
    expect([found.pinned, newest.version.major >= 15]).toEqual([false, true]);
    const pinned = await discoverPgDumps({ pgBinDir: newest.binDir, pgClientsDir: '/nonexistent', runtime });
    expect([pinned.pinned, ...pinned.clients.map((c) => c.path)]).toEqual([true, newest.path]);
  });

  it('fails with PG_DUMP_NOT_FOUND, naming the variable, when there is none', async () => {
    await expect(discoverPgDumps({ pgBinDir: null, pgClientsDir: '/nonexistent', runtime })).rejects.toMatchObject({
      code: 'PG_DUMP_NOT_FOUND',
      message: expect.stringMatching(/^PG_CLIENTS_DIR is \/nonexistent, but there is no <major>\/bin\/pg_dump in it/),
    });
    await expect(discoverPgDumps({ pgBinDir: '/nonexistent', pgClientsDir: null, runtime })).rejects.toMatchObject({
      code: 'PG_DUMP_NOT_FOUND',
      message: expect.stringMatching(/^PG_BIN_DIR is \/nonexistent, but there is no executable pg_dump in it/),
    });
  });
});

describe('choosePgDump', () => {
  it("takes the client of the server's major, else the oldest newer one", () => {
    const chosen = ['13.22', '14.19', '15.14', '16.10', '17.6', '18.1'].map((v) => choosePgDump(all, server(v)).pgDumpVersion);
    expect(chosen).toEqual(['15.18', '15.18', '15.18', '17.12', '17.12', '18.6']);
    expect(choosePgDump(all, server('16.4'))).toEqual({ pgDumpPath: '/usr/lib/postgresql/17/bin/pg_dump', binDir: '/usr/lib/postgresql/17/bin', pgDumpVersion: '17.12', pgDumpMajor: 17 });
  });

  it('refuses a server newer than every client, naming the server, the clients and the fix', () => {
    const none = () => choosePgDump({ clients: all.clients.slice(0, 2), pinned: false }, server('18.1'));
    expect(none).toThrow(BackupError);
    expect(none).toThrow(
      "no pg_dump here can dump a PostgreSQL 18.1 server: pg_dump must be at least the server's major version, and the clients found are " +
        '15.18 (/usr/lib/postgresql/15/bin), 17.12 (/usr/lib/postgresql/17/bin). ' +
        'Install the PostgreSQL 18 client (e.g. postgresql-client-18) or use the image, which has clients 13 to 18.',
    );
    const pinned = () => choosePgDump({ clients: [client('15.18', '/opt/pg15/bin')], pinned: true }, server('16.4'));
    expect(pinned).toThrow(
      "no pg_dump here can dump a PostgreSQL 16.4 server: pg_dump must be at least the server's major version, and the one PG_BIN_DIR names is " +
        '15.18 (/opt/pg15/bin). Set PG_BIN_DIR to a PostgreSQL 16+ client, or unset it to choose among the clients installed under PG_CLIENTS_DIR.',
    );
    try {
      pinned();
    } catch (error) {
      expect((error as BackupError).code).toBe('PG_VERSION_MISMATCH');
    }
  });

  it('refuses servers older than 9.2', () => {
    expect(() => choosePgDump(all, server('9.1.24'))).toThrow(/supports servers from 9\.2 on/);
  });
});
