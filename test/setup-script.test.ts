// scripts/setup.sh with stand-ins for the commands that would change the machine (apt-get,
// pg_lsclusters, pg_ctlcluster, npm): nothing is installed, started or stopped for real. A PATH of
// only the stand-ins and the few real tools the script needs makes it find curl, gzip and
// docker-compose missing, so it takes its apt-get path as on a fresh machine.
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('..', import.meta.url));
let work: string;
let result: { status: number | null; output: string; calls: string[] };

/** A stand-in command: logs its name, arguments and SCARF_ANALYTICS, then runs `body`. */
function stub(bin: string, name: string, body = ''): void {
  const path = join(bin, name);
  writeFileSync(path, `#!/bin/bash\necho "${name} $* [SCARF_ANALYTICS=\${SCARF_ANALYTICS:-}]" >> "$CALLS"\n${body}\n`);
  chmodSync(path, 0o755);
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'setup-script-'));
  const repo = join(work, 'repo');
  const bin = join(work, 'bin');
  mkdirSync(join(repo, 'scripts'), { recursive: true });
  mkdirSync(bin);
  copyFileSync(join(REPO, 'scripts/setup.sh'), join(repo, 'scripts/setup.sh'));
  writeFileSync(join(repo, 'package-lock.json'), '{}\n'); // no node_modules: setup runs npm ci
  for (const tool of ['bash', 'dirname', 'id', 'awk', 'grep', 'cat']) symlinkSync(`/usr/bin/${tool}`, join(bin, tool));
  symlinkSync(process.execPath, join(bin, 'node'));

  // Two clusters exist before; installing the packages creates and starts a third, as Debian's does.
  const state = join(work, 'clusters');
  writeFileSync(state, '15 main 5432 online postgres /var/lib/postgresql/15/main /var/log/postgresql/postgresql-15-main.log\n14 legacy 5433 down postgres /var/lib/postgresql/14/legacy /var/log/postgresql/postgresql-14-legacy.log\n');
  stub(bin, 'apt-get', `[ "$1" != install ] || echo "16 main 5434 online postgres /var/lib/postgresql/16/main /var/log/postgresql/postgresql-16-main.log" >> "${state}"`);
  stub(bin, 'pg_lsclusters', `cat "${state}"`);
  stub(bin, 'pg_ctlcluster');
  stub(bin, 'npm');
  stub(bin, 'sudo', '"$@"'); // when the tests do not run as root

  const calls = join(work, 'calls');
  const run = spawnSync('/usr/bin/bash', [join(repo, 'scripts/setup.sh')], {
    env: { PATH: bin, CALLS: calls, HOME: work },
    encoding: 'utf8',
    timeout: 30_000,
  });
  result = { status: run.status, output: run.stdout + run.stderr, calls: readFileSync(calls, 'utf8').trim().split('\n') };
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('scripts/setup.sh', () => {
  it('installs the missing Debian packages', () => {
    expect(result.status, result.output).toBe(0);
    expect(result.calls).toContainEqual(expect.stringMatching(/^apt-get install .*\bcurl\b/));
  });

  it('stops only the PostgreSQL cluster its package install created, never one that was there before', () => {
    expect(result.calls.filter((c) => c.startsWith('pg_ctlcluster'))).toEqual(['pg_ctlcluster 16 main stop [SCARF_ANALYTICS=]']);
  });

  it('runs npm ci showing errors only, with scarf telemetry off, and says why engine warnings are hidden', () => {
    expect(result.calls.filter((c) => c.startsWith('npm'))).toEqual(['npm ci --no-audit --no-fund --loglevel=error [SCARF_ANALYTICS=false]']);
    expect(result.output).toMatch(/npm ci \(on Node v\d+.*its own Node 24\)/);
  });
});
