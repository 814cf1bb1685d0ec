// npm run audit:deps: `npm audit --omit=dev --audit-level=high` over what ships (the workspaces'
// runtime dependencies), with a one-line verdict. Not part of the test suites: it needs the
// registry's audit endpoint, i.e. the network, and tests talk to 127.0.0.1 only.
//
// Exit codes: 0 no high or critical advisory; 1 at least one; 2 the audit could not be done
// (endpoint unreachable or refusing, e.g. a registry mirror that only serves GET). 2 is never a
// pass: the verdict line says AUDIT NOT DONE, so CI logs cannot mistake it for a clean result.
// `--report FILE` judges a saved `npm audit --omit=dev --json` output instead (audited elsewhere).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

const TIMEOUT_MS = 120_000;
const BLOCKING = ['high', 'critical'];

function runAudit() {
  return new Promise((resolve) => {
    const child = spawn('npm', ['audit', '--omit=dev', '--audit-level=high', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
    child.once('error', (error) => {
      clearTimeout(timer);
      resolve({ code: null, stdout, stderr: `${stderr}\n${error.message}` });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

const notDone = (why) => {
  console.log(`[audit] AUDIT NOT DONE (this is not a pass): ${why}`);
  process.exit(2);
};

const reportFile = process.argv.includes('--report') ? process.argv[process.argv.indexOf('--report') + 1] : undefined;
const { code, signal, stdout, stderr } = reportFile ? { code: 0, stdout: readFileSync(reportFile, 'utf8'), stderr: '' } : await runAudit();
if (signal === 'SIGKILL') notDone(`npm audit gave no answer within ${TIMEOUT_MS / 1000} s`);
let report;
try {
  report = JSON.parse(stdout);
} catch {
  notDone(`npm audit exited ${code} without a JSON report: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
}
if (report.error || report.message || report.statusCode) {
  // npm's JSON for a failed request: { message, uri, statusCode, ... } or { error: { code, summary } }.
  const what = report.message ?? report.error?.summary ?? report.error?.code ?? `HTTP ${report.statusCode}`;
  notDone(`the audit endpoint ${report.uri ?? '(registry)'} could not be used: ${what}`);
}
const counts = report.metadata?.vulnerabilities;
if (!counts) notDone('the report has no vulnerability counts');

const blocking = Object.values(report.vulnerabilities ?? {}).filter((v) => BLOCKING.includes(v.severity));
for (const v of blocking) {
  const titles = (v.via ?? []).filter((x) => typeof x === 'object').map((x) => `${x.title} (${x.url})`);
  console.log(`[audit] ${v.severity.toUpperCase()} ${v.name} ${v.range}: ${titles.join('; ') || `via ${(v.via ?? []).join(', ')}`}${v.fixAvailable ? ' [fix available]' : ''}`);
}
const summary = ['critical', 'high', 'moderate', 'low', 'info'].map((s) => `${s}=${counts[s] ?? 0}`).join(' ');
const deps = report.metadata?.dependencies?.prod ?? report.metadata?.dependencies?.total ?? '?';
console.log(`[audit] npm audit --omit=dev: ${deps} runtime dependencies, ${summary}: ${blocking.length === 0 ? 'PASS (no high or critical)' : `FAIL (${blocking.length} high/critical)`}`);
process.exit(blocking.length === 0 ? 0 : 1);
