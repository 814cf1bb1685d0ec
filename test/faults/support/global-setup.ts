// Collects the summary lines every fault test writes (support/summary.ts) and prints them once
// more, together, at the end of `npm run test:faults`, with the suite's total of secrets found.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SummaryRecord } from './summary.js';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Newest modification time of a file under dir (recursively) whose name passes `include`. */
function newest(dir: string, include: (name: string) => boolean): number {
  if (!existsSync(dir)) return 0;
  let time = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) time = Math.max(time, newest(path, include));
    else if (include(entry.name)) time = Math.max(time, statSync(path).mtimeMs);
  }
  return time;
}

/**
 * The suite drives the BUILT service and CLI (like CI, after `npm test` built them). It does not
 * build by itself (that costs ~30-80 s of the suite's budget): it refuses to run against a missing
 * or stale build instead of testing old code.
 */
function assertBuilt(): void {
  for (const pkg of ['contract', 'server', 'sdk', 'cli']) {
    const built = newest(join(REPO_ROOT, pkg, 'dist'), (f) => f.endsWith('.js'));
    const source = newest(join(REPO_ROOT, pkg, 'src'), (f) => f.endsWith('.ts') && !f.endsWith('.test.ts'));
    if (built < source) {
      throw new Error(`${pkg}/dist is missing or older than ${pkg}/src: run \`npm run build\` before \`npm run test:faults\``);
    }
  }
}

export default function setup(): () => void {
  assertBuilt();
  const dir = mkdtempSync(join(tmpdir(), 'faults-summary-'));
  // Fork workers inherit the environment, so every test file finds the directory.
  process.env.FAULTS_SUMMARY_DIR = dir;
  return () => {
    const records: SummaryRecord[] = readdirSync(dir)
      .sort()
      .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as SummaryRecord);
    rmSync(dir, { recursive: true, force: true });
    if (records.length === 0) return;
    const secrets = records.reduce((n, r) => n + (typeof r.figures.secretsFound === 'number' ? r.figures.secretsFound : 0), 0);
    const scanned = records.reduce((n, r) => n + (typeof r.figures.textsScanned === 'number' ? r.figures.textsScanned : 0), 0);
    console.log('\n=== fault suite summary ===');
    for (const r of records) console.log(r.line);
    console.log(`[faults] TOTAL: ${records.length} summaries, ${scanned} texts/cmdlines scanned for secrets, secrets found = ${secrets}`);
  };
}
