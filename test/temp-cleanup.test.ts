// Test files that write secrets to temp files remove them: each runs in its own vitest with TMPDIR
// pointing at an empty directory, which must be empty again when the run ends.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';

const REPO = fileURLToPath(new URL('..', import.meta.url));

describe.each(['server/src/config/config.test.ts', 'cli/src/config.test.ts'])('%s', (file) => {
  it('leaves nothing in the temp dir', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'temp-cleanup-'));
    onTestFinished(() => rmSync(tmp, { recursive: true, force: true }));
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('VITEST')) env[k] = v;
    const run = spawnSync(process.execPath, [join(REPO, 'node_modules/vitest/vitest.mjs'), 'run', file], {
      cwd: REPO,
      env: { ...env, TMPDIR: tmp },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(run.status, run.stdout + run.stderr).toBe(0);
    expect(readdirSync(tmp)).toEqual([]);
  });
});
