// The PostgreSQL clients harness (test/harness/pg-clients.ts): the clients root laid out like
// /usr/lib/postgresql, whose 17 and 18 run from debootstrapped Debian roots through chroot.
import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runProcess, usePostgres } from './harness/index.js';
import { clientVersion, debianMirror, debianRoot, PG_CLIENT_MAJORS, pgClientsRoot } from './harness/pg-clients.js';

describe('PostgreSQL clients harness', () => {
  const pg = usePostgres();

  it('the Debian mirror comes from the host apt sources', () => {
    expect(debianMirror()).toMatch(/^https?:\/\/\S+[^/]$/);
  });

  it('lays out <root>/<major>/bin/{pg_dump,psql,pg_restore} for 15, 17 and 18; each psql reaches a server over 127.0.0.1', async () => {
    const root = await pgClientsRoot();
    expect(readdirSync(root).sort()).toEqual(['15', '17', '18']);
    for (const major of PG_CLIENT_MAJORS) {
      const bin = join(root, String(major), 'bin');
      expect(readdirSync(bin).sort()).toEqual(['pg_dump', 'pg_restore', 'psql']);
      expect(await clientVersion(bin)).toMatch(new RegExp(`^${major}\\.\\d+$`));
      const res = await runProcess(join(bin, 'psql'), ['-X', '-At', '-c', 'SELECT 40 + 2'], pg.pgEnv());
      expect(res.stderr).toBe('');
      expect(res.stdout.trim()).toBe('42');
      const version = await runProcess(join(bin, 'psql'), ['--version'], {});
      expect(version.stdout).toMatch(new RegExp(`\\(PostgreSQL\\) ${major}\\.`));
    }
    expect(readlinkSync(join(root, '15', 'bin', 'pg_dump'))).toBe('/usr/lib/postgresql/15/bin/pg_dump');
  }, 20 * 60_000);

  it('a failed debootstrap throws with the tail of its log and leaves nothing but the lock in the cache', async () => {
    const cacheDir = await mkdtemp(join(tmpdir(), 'pg-clients-cache-'));
    try {
      const err = await debianRoot({ suite: 'no-such-suite', pkg: 'postgresql-client-17', major: 17, cacheDir }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(/^debootstrap of Debian no-such-suite with postgresql-client-17 from \S+ failed \(exit \d+\):\n/);
      // The tail of debootstrap's own output: its "E: ..." error line.
      expect((err as Error).message).toMatch(/^E: /m);
      expect(readdirSync(cacheDir)).toEqual(['no-such-suite.lock']);
      expect(existsSync(join(cacheDir, 'no-such-suite-postgresql-client-17'))).toBe(false);
    } finally {
      await rm(cacheDir, { recursive: true, force: true });
    }
  });
});
