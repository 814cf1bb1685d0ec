// Issue 8, part 4: secrets (invariant 6). While backups run and while db-restore restores, every
// process's command line on the machine is sampled from /proc: none may hold the database
// password, the API token or the AWS secret, and the pg_dump/psql children's environments may hold
// nothing but the database password (they have no business with the token or the AWS secret).
// The service's logs, every answer and db-restore's output are scanned too; local backups and
// sidecars are owner-only (0600). The other fault tests scan their own logs, answers and command
// lines the same way; the suite's total is printed at the end of `npm run test:faults`.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backup } from '@db-backup-service/contract';
import { pollUntil } from '../harness/index.js';
import { childrenNamed, CmdlineSampler } from './support/proc.js';
import { filesNotOwnerOnly, fingerprintDifferences, startRig, type Rig } from './support/rig.js';
import { SecretWatch } from './support/secrets.js';
import { printSummary } from './support/summary.js';
import { Traffic } from './support/traffic.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = 'cli/dist/bin.js';

describe('secrets never leak: command lines, child environments, logs, answers, file modes', () => {
  let rig: Rig;
  let childEnvWatch: SecretWatch;
  let sampler: CmdlineSampler;
  let traffic: Traffic;
  const cli = { exitCode: null as number | null, output: '', psqlSeen: 0, matches: false };
  let backupsDuringSampling = 0;
  let heldPgDump = 0;

  beforeAll(async () => {
    // ~1 s dumps and restores: long enough to be caught by a 10 ms sampler many times over.
    rig = await startRig({ backend: 'local', bigRows: 100_000 });
    const { DB_PASSWORD: _password, ...notForChildren } = rig.secrets;
    childEnvWatch = new SecretWatch(notForChildren, { DB_PASSWORD: rig.secrets.DB_PASSWORD! });
    sampler = new CmdlineSampler(rig.watch, ['pg_dump', 'psql'], childEnvWatch);
    traffic = new Traffic(rig.svc.baseUrl, rig.token, rig.watch);
  });
  afterAll(async () => {
    await sampler?.stop();
    await rig?.tearDown();
  });

  it('no command line holds a secret while pg_dump runs, and pg_dump gets only the DB password', async () => {
    sampler.start(10);
    for (let i = 0; i < 3; i++) {
      // The first backup's pg_dump is held on a table lock until the sampler has caught it: a ~1 s
      // dump can fall between two passes over /proc on a loaded machine, and then this test
      // would prove nothing (or fail on "caught running" although nothing is wrong).
      const holder = i === 0 ? new pg.Client(rig.pg.connectionConfig('app')) : null;
      await holder?.connect();
      await holder?.query('BEGIN; LOCK TABLE big IN ACCESS EXCLUSIVE MODE');
      const r = await traffic.text('trigger', '/api/v1/backups', { method: 'POST' });
      expect(r?.status).toBe(202);
      const { jobId } = JSON.parse(r!.body) as { jobId: string };
      if (holder) {
        try {
          const [child] = await pollUntil(async () => {
            const found = await childrenNamed(rig.svc.pid, 'pg_dump');
            return found.length > 0 ? found : undefined;
          }, { timeoutMs: 60_000, intervalMs: 20, what: "the service's pg_dump to run" });
          heldPgDump = child!.pid;
          // A full pass over /proc (cmdlines, and this pg_dump's environment) while it surely runs.
          await sampler.sampleOnce();
        } finally {
          await holder.end();
        }
      }
      expect((await rig.A.waitForJob(jobId)).status).toBe('succeeded');
      await traffic.text('job', `/api/v1/backups/jobs/${jobId}`);
      backupsDuringSampling++;
    }
    await sampler.stop();
    for (const label of ['health', 'info', 'metrics', 'list', 'latest'] as const) {
      const path = { health: '/health', info: '/info', metrics: '/metrics', list: '/api/v1/backups', latest: '/api/v1/backups/latest' }[label];
      await traffic.text(label, path);
    }
    expect(sampler.seen.get('pg_dump')?.pids.has(heldPgDump), "the service's pg_dump was caught running").toBe(true);
    expect(rig.watch.hits, rig.watch.describeHits()).toEqual([]);
    expect(childEnvWatch.hits, childEnvWatch.describeHits()).toEqual([]);
  });

  it('db-restore (local backend, the service container\'s environment) keeps them out of argv and psql\'s environment', async () => {
    // As `docker exec <service container> db-restore` would run: with the service's whole
    // environment, API token included (DB_NAME names the service's database, whose backups these
    // are), restoring into another database with --database.
    const env: Record<string, string> = { ...rig.env, PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root' };
    sampler.start(10);
    const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, '--force', '--database', 'restored_cli', 'latest'], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      child.stdout.on('data', (b: Buffer) => (text += b.toString()));
      child.stderr.on('data', (b: Buffer) => (text += b.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
      child.once('error', reject);
      child.once('close', (exitCode) => {
        clearTimeout(timer);
        resolve({ code: exitCode, output: text });
      });
    });
    await sampler.stop();
    cli.exitCode = code;
    cli.output = output;
    cli.psqlSeen = sampler.distinct('psql');
    rig.watch.scan('db-restore output', output);
    expect(code, output).toBe(0);
    const differences = await fingerprintDifferences(rig.pg, 'restored_cli', 'app');
    cli.matches = differences.length === 0;
    expect(differences, 'db-restore restored the source data').toEqual([]);
    expect(cli.psqlSeen, 'psql was caught running').toBeGreaterThan(0);
    expect(rig.watch.hits, rig.watch.describeHits()).toEqual([]);
    expect(childEnvWatch.hits, childEnvWatch.describeHits()).toEqual([]);
  });

  it('backups and sidecars are owner-only, and no log line or answer held a secret', async () => {
    const listed = await rig.A.json<Backup[]>('/api/v1/backups');
    const modes = await filesNotOwnerOnly(rig.dir);
    rig.svc.logs.forEach((line, i) => rig.watch.scan(`service log line ${i + 1}`, line));
    const secretsFound = rig.watch.hits.length + childEnvWatch.hits.length;
    printSummary('secrets', {
      backupsDuringSampling,
      cmdlineSamples: sampler.samples,
      cmdlinesScanned: sampler.cmdlinesScanned,
      pgDumpProcessesSeen: sampler.distinct('pg_dump'),
      psqlProcessesSeen: sampler.distinct('psql'),
      childEnvironmentsScanned: childEnvWatch.textsScanned,
      dbRestoreExit: cli.exitCode ?? 'none',
      dbRestoreMatchesSource: cli.matches,
      serviceLogLines: rig.svc.logs.length,
      answersScanned: traffic.requests,
      filesChecked: listed.length * 2,
      notOwnerOnly: modes.length,
      textsScanned: rig.watch.textsScanned + childEnvWatch.textsScanned,
      secretsFound,
    });
    expect(modes, 'local backups and sidecars are 0600').toEqual([]);
    expect(secretsFound, rig.watch.describeHits() + childEnvWatch.describeHits()).toBe(0);
  });
});
