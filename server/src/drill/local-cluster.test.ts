import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findLocalServer } from './local-server.js';
import { CLUSTER_DIR_PREFIX, removeStaleClusters, startLocalCluster, type LocalCluster } from './local-cluster.js';

const binDir = findLocalServer('/usr/lib/postgresql');
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
let parentDir: string;

beforeAll(async () => {
  parentDir = await mkdtemp(path.join(tmpdir(), 'local-cluster-test-'));
  // As TMPDIR is: the server's user (postgres, when we are root) must be able to enter it.
  await chmod(parentDir, 0o711);
});
afterAll(() => rm(parentDir, { recursive: true, force: true }));

async function query(cluster: LocalCluster, sql: string): Promise<unknown[]> {
  const { host, port, user, password } = cluster.server;
  const client = new pg.Client({ host, port, user, password, database: 'postgres' });
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

/** Still a process that runs (a zombie under a parent that does not reap counts as gone). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function postmasterOf(dataDir: string): Promise<number> {
  return readFile(path.join(dataDir, 'postmaster.pid'), 'utf8').then((text) => Number(text.split('\n')[0]));
}

describe.skipIf(binDir === null)('the local drill cluster', () => {
  it('runs on a Unix socket only, with a password, small memory and fsync off; destroy() stops it and removes its directory', async () => {
    const cluster = await startLocalCluster({ binDir: binDir!, env, parentDir });
    const dir = cluster.server.host;
    expect(path.basename(dir).startsWith(CLUSTER_DIR_PREFIX)).toBe(true);
    expect(await query(cluster, "SELECT current_setting('listen_addresses') AS listen, current_setting('shared_buffers') AS buffers, current_setting('fsync') AS fsync"))
      .toEqual([{ listen: '', buffers: '32MB', fsync: 'off' }]);
    const wrong = new pg.Client({ host: dir, port: cluster.server.port, user: 'postgres', password: 'wrong', database: 'postgres' });
    await expect(wrong.connect()).rejects.toThrow(/password authentication failed/);
    const pid = await postmasterOf(path.join(dir, 'data'));
    await cluster.destroy();
    expect(existsSync(dir)).toBe(false);
    expect(running(pid)).toBe(false);
  }, 60_000);

  it('at start, removes the cluster of a service that is gone (stopping its server) and leaves a live service\'s alone', async () => {
    const orphan = await startLocalCluster({ binDir: binDir!, env, parentDir });
    const live = await startLocalCluster({ binDir: binDir!, env, parentDir });
    try {
      // As a killed service leaves it: the server running, the owner a pid that no longer exists.
      await writeFile(path.join(orphan.server.host, 'service.pid'), '2147483646\n');
      // Another instance, alive (our parent stands in for it).
      await writeFile(path.join(live.server.host, 'service.pid'), `${process.ppid}\n`);
      const pid = await postmasterOf(path.join(orphan.server.host, 'data'));
      const warnings: string[] = [];
      expect(await removeStaleClusters((m) => warnings.push(m), parentDir)).toEqual([orphan.server.host]);
      expect(warnings).toEqual([]);
      expect(running(pid)).toBe(false);
      expect(await readdir(parentDir)).toEqual([path.basename(live.server.host)]);
      expect(await query(live, 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
    } finally {
      await orphan.destroy();
      await live.destroy();
    }
  }, 90_000);
});
