// The service as the benchmark drives it: started with the test harness, backups triggered through
// the API and timed by the job's own durationMs and by the wall clock around it, memory read from /proc.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Job } from '@db-backup-service/contract';
import { freePort, IMAGE_RUNTIME_ENV, startService, type PostgresCluster, type ServiceProcess } from '../test/harness/index.js';
import { procCpuSeconds, procMemory, RssSampler } from './measure.js';
import type { S3EmulatorProcess } from './s3-emulator.js';

/** The repository root: this file runs compiled from build/tools/bench/. */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export type BenchStorage = { readonly kind: 'local'; readonly dir: string } | { readonly kind: 's3'; readonly s3: Pick<S3EmulatorProcess, 'endpoint' | 'bucket' | 'awsEnv'>; readonly prefix: string };

export interface BackupSample {
  readonly backupId: string;
  /** The job's durationMs: pg_dump start to verified and sidecar written. */
  readonly jobMs: number;
  /** POST to the poll that saw the job finished (100 ms polls). */
  readonly wallMs: number;
  /** From the service's log timestamps: 'backup started' to 'dump stored' (dump, compress, store). */
  readonly pipelineMs: number | null;
  /** 'dump stored' to 'dump verified' (read back, gunzip, SHA-256). */
  readonly verifyMs: number | null;
  readonly sizeBytes: number;
  /** CPU seconds of the service (all threads) and of pg_dump during the job. */
  readonly cpuSeconds: number;
  /** Largest VmRSS polled (100 ms) during the job, and VmHWM after it (the process's peak so far). */
  readonly maxRss: number;
  readonly hwm: number;
}

export interface BenchService {
  readonly process: ServiceProcess;
  readonly token: string;
  readonly baseUrl: string;
  backup(): Promise<BackupSample>;
  stop(): Promise<void>;
}

/** Environment for the service: no schedule (only our triggers run), retention out of the way, JSON logs. */
export function serviceEnv(pg: PostgresCluster, db: string, storage: BenchStorage, extra: Record<string, string> = {}): Record<string, string> {
  const base: Record<string, string> = {
    DB_HOST: pg.host,
    DB_PORT: String(pg.port),
    DB_NAME: db,
    DB_USER: pg.user,
    DB_PASSWORD: pg.password,
    API_TOKEN: randomBytes(32).toString('hex'),
    BACKUP_CRON: '0 0 1 1 *',
    RETENTION_DAYS: '3650',
    LOG_FORMAT: 'json',
    // Measured as it ships: the image's runtime settings (peak RSS is one of the figures).
    ...IMAGE_RUNTIME_ENV,
  };
  const where: Record<string, string> =
    storage.kind === 'local'
      ? { STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: storage.dir }
      : { STORAGE_BACKEND: 's3', S3_ENDPOINT: storage.s3.endpoint, S3_BUCKET: storage.s3.bucket, S3_PREFIX: storage.prefix, ...storage.s3.awsEnv() };
  // BENCH_SERVICE_ENV: JSON of extra variables for every service instance (experiments).
  const fromEnv = process.env.BENCH_SERVICE_ENV ? (JSON.parse(process.env.BENCH_SERVICE_ENV) as Record<string, string>) : {};
  return { ...base, ...where, ...extra, ...fromEnv };
}

export async function startBenchService(env: Record<string, string>, opts: { entry?: string } = {}): Promise<BenchService> {
  const port = await freePort();
  const proc = await startService({ ...env, HTTP_PORT: String(port) }, {
    waitFor: 'healthy',
    timeoutMs: 60_000,
    // The harness resolves its defaults from its own location, which is build/tools/ here.
    // BENCH_SERVICE_ENTRY: another build of the service (e.g. of an older commit) to compare against.
    entry: opts.entry ?? process.env.BENCH_SERVICE_ENTRY ?? join(ROOT, 'server/dist/bin.js'),
    cwd: ROOT,
  });
  const token = env.API_TOKEN!;
  const request = async <T>(path: string, init: RequestInit = {}): Promise<{ status: number; body: T }> => {
    const res = await fetch(`${proc.baseUrl}${path}`, { ...init, headers: { Authorization: `Bearer ${token}` } });
    return { status: res.status, body: (await res.json()) as T };
  };

  const backup = async (): Promise<BackupSample> => {
    // Every instance takes the same advisory lock, also for its clean-up after a job: the previous
    // case's instance may still hold it for a moment. That is a refusal, not a measurement: retry.
    for (let attempt = 1; ; attempt++) {
      try {
        return await backupOnce();
      } catch (error) {
        if (!(error instanceof LockBusyError) || attempt >= 50) throw error;
        await delay(200);
      }
    }
  };

  const backupOnce = async (): Promise<BackupSample> => {
    const logStart = proc.logs.length;
    const sampler = new RssSampler(proc.pid);
    const cpuBefore = await procCpuSeconds(proc.pid);
    const started = performance.now();
    const trigger = await request<Job>('/api/v1/backups', { method: 'POST' });
    if (trigger.status !== 202) throw new Error(`bench: POST /api/v1/backups answered ${trigger.status}: ${JSON.stringify(trigger.body)}`);
    let job = trigger.body;
    while (job.status !== 'succeeded' && job.status !== 'failed') {
      await delay(100);
      job = (await request<Job>(`/api/v1/backups/jobs/${job.jobId}`)).body;
    }
    const wallMs = performance.now() - started;
    const cpuSeconds = (await procCpuSeconds(proc.pid)) - cpuBefore;
    const memory = await sampler.stop();
    if (job.status === 'failed' && job.errorMessage?.includes('another db-backup-service instance') === true) throw new LockBusyError();
    if (job.status !== 'succeeded' || job.backupId === null || job.durationMs === null) {
      throw new Error(`bench: backup job failed: ${job.errorMessage}\n${proc.logs.slice(-20).join('\n')}`);
    }
    const stages = stageTimes(proc.logs.slice(logStart));
    const latest = await request<{ id: string; sizeBytes: number }>('/api/v1/backups/latest');
    if (latest.body.id !== job.backupId) throw new Error(`bench: latest backup is ${latest.body.id}, expected ${job.backupId}`);
    return {
      backupId: job.backupId,
      jobMs: job.durationMs,
      wallMs,
      pipelineMs: finiteOrNull(stages.stored - stages.started),
      verifyMs: finiteOrNull(stages.verified - stages.stored),
      sizeBytes: latest.body.sizeBytes,
      cpuSeconds,
      maxRss: memory.maxRss,
      hwm: memory.hwm,
    };
  };

  return {
    process: proc,
    token,
    baseUrl: proc.baseUrl,
    backup,
    async stop() {
      await proc.stop('SIGTERM', 30_000);
    },
  };
}

/** Log timestamps (ms) of one backup's stages; NaN where a line is missing. */
function stageTimes(lines: readonly string[]): { started: number; stored: number; verified: number } {
  const at = (message: string): number => {
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      try {
        const entry = JSON.parse(line) as { message?: string; timestamp?: string };
        if (entry.message === message && entry.timestamp !== undefined) return Date.parse(entry.timestamp);
      } catch {
        // not a log line of ours
      }
    }
    return Number.NaN;
  };
  return { started: at('backup started'), stored: at('dump stored'), verified: at('dump verified') };
}

class LockBusyError extends Error {}

function finiteOrNull(value: number): number | null {
  return Number.isFinite(value) ? value : null;
}

/** Peak RSS of a process so far (VmHWM), bytes. */
export async function peakRss(pid: number): Promise<number> {
  return (await procMemory(pid)).hwm;
}
