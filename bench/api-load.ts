// The API under load: /health and the list of 1,000 backups, hammered by autocannon (a separate
// process, so the load generator's own work is not charged to the bench process's event loop).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { PostgresCluster } from '../test/harness/index.js';
import { serviceEnv, startBenchService } from './bench-service.js';
import { median } from './measure.js';
import type { CaseResult } from './report.js';

export interface ApiLoadResult {
  readonly cases: CaseResult[];
}

interface AutocannonJson {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number; average: number; max: number };
  non2xx: number;
  errors: number;
  timeouts: number;
}

export interface LoadRun {
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly errors: number;
}

/** The second, light load: enough to keep the service busy, too few to queue deeply. */
const LIGHT_CONNECTIONS = 10;

const AUTOCANNON = createRequire(import.meta.url).resolve('autocannon/autocannon.js');

/** One autocannon run: `connections` clients, each sending its next request as soon as the last is answered. */
export async function autocannon(url: string, opts: { connections: number; seconds: number; headers?: Record<string, string> }): Promise<LoadRun> {
  const args = [AUTOCANNON, '-j', '-c', String(opts.connections), '-d', String(opts.seconds)];
  for (const [k, v] of Object.entries(opts.headers ?? {})) args.push('-H', `${k}=${v}`);
  args.push(url);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  if (code !== 0) throw new Error(`bench: autocannon exited ${code}: ${stderr.slice(-2000)}`);
  const json = JSON.parse(stdout) as AutocannonJson;
  return { rps: json.requests.average, p50: json.latency.p50, p99: json.latency.p99, errors: json.errors + json.timeouts + json.non2xx };
}

/**
 * 1,000 small but well-formed backups (dump + sidecar) of `database`, one minute apart, newest an
 * hour ago. The sidecars must name the service's DB_NAME: backups of another database are not listed.
 */
async function writeFakeBackups(dir: string, count: number, database: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const dump = gzipSync('-- PostgreSQL database dump\n-- PostgreSQL database dump complete\n');
  const sha256 = createHash('sha256').update(dump).digest('hex');
  const newest = Date.now() - 3600_000;
  for (let i = 0; i < count; i++) {
    const created = new Date(newest - i * 60_000);
    const ts = created.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
    const id = `backup_${ts}.sql.gz`;
    const sidecar = {
      id,
      createdAt: created.toISOString(),
      sizeBytes: dump.length,
      sha256,
      pgVersion: '15.18',
      durationMs: 1000 + i,
      triggeredBy: i % 10 === 0 ? 'api' : 'scheduler',
      pgDumpVersion: '15.18',
      uncompressedSizeBytes: 64,
      compression: { format: 'gzip', level: 6 },
      database,
      serviceVersion: '0.1.0',
      format: 'plain',
    };
    await writeFile(join(dir, id), dump);
    await writeFile(join(dir, `${id}.meta.json`), `${JSON.stringify(sidecar, null, 2)}\n`);
  }
}

export async function runApiLoad(opts: {
  pg: PostgresCluster;
  db: string;
  workDir: string;
  runs: number;
  seconds: number;
  connections: number;
  log: (m: string) => void;
}): Promise<ApiLoadResult> {
  const { pg, db, workDir, runs, seconds, connections, log } = opts;
  await writeFakeBackups(workDir, 1000, db);
  const service = await startBenchService(serviceEnv(pg, db, { kind: 'local', dir: workDir }));
  const cases: CaseResult[] = [];
  try {
    const listed = (await (await fetch(`${service.baseUrl}/api/v1/backups`, { headers: { Authorization: `Bearer ${service.token}` } })).json()) as unknown[];
    if (listed.length !== 1000) throw new Error(`bench: the service lists ${listed.length} backups, expected 1000`);
    const endpoints: { id: string; label: string; url: string; headers: Record<string, string> }[] = [
      { id: 'api-health', label: 'GET /health', url: `${service.baseUrl}/health`, headers: {} },
      { id: 'api-list', label: 'GET /api/v1/backups (1,000 backups)', url: `${service.baseUrl}/api/v1/backups`, headers: { Authorization: `Bearer ${service.token}` } },
    ];
    for (const endpoint of endpoints) {
      // Warm-up: JIT, socket pools; not recorded.
      await autocannon(endpoint.url, { connections, seconds: 2, headers: endpoint.headers });
      const saturated: LoadRun[] = [];
      for (let r = 0; r < runs; r++) {
        log(`  ${endpoint.label}: ${connections} connections, ${seconds} s, run ${r + 1} of ${runs}`);
        saturated.push(await autocannon(endpoint.url, { connections, seconds, headers: endpoint.headers }));
      }
      // Flat out, a closed loop of N clients measures queueing as much as the service: p50 is
      // about N / throughput (Little's law). 10 connections show the latency of a busy service
      // without a deep queue. (autocannon's -R rate limit sends each second's quota in a burst,
      // which measures the burst, so it is not used.)
      const light: LoadRun[] = [];
      for (let r = 0; r < runs; r++) {
        log(`  ${endpoint.label}: ${LIGHT_CONNECTIONS} connections, ${seconds} s, run ${r + 1} of ${runs}`);
        light.push(await autocannon(endpoint.url, { connections: LIGHT_CONNECTIONS, seconds, headers: endpoint.headers }));
      }
      for (const [mode, list, conns] of [['saturated', saturated, connections], ['light', light, LIGHT_CONNECTIONS]] as const) {
        const rps = list.map((s) => s.rps);
        cases.push({
          id: `${endpoint.id}-${mode}`,
          label: `${endpoint.label}, ${conns} connections`,
          unit: 'req/s',
          samples: rps,
          median: median(rps),
          min: Math.min(...rps),
          max: Math.max(...rps),
          extra: { p50Ms: list.map((s) => s.p50), p99Ms: list.map((s) => s.p99), errors: list.reduce((n, s) => n + s.errors, 0), connections: conns, seconds },
        });
      }
    }
  } finally {
    await service.stop();
    await rm(workDir, { recursive: true, force: true });
  }
  return { cases };
}
