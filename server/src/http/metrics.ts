import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { BackupSidecar, DrillRecord, Job } from '@db-backup-service/contract';
import type { BackupIndex } from '../backup-index.js';
import type { EngineEvents } from '../engine.js';
import type { JobRegistry } from '../jobs.js';

/**
 * Prometheus metrics. Backup facts are read from the index at scrape time, so they are right
 * after a restart too; counters count what this process saw. No label ever carries a secret.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly #backups: Counter<'status' | 'trigger'>;
  readonly #retentionDeleted: Counter;
  readonly #drills: Counter<'status'>;
  readonly #drillDuration: Histogram;
  readonly #httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly #httpDuration: Histogram<'method' | 'route'>;

  constructor(index: BackupIndex, jobs: JobRegistry) {
    const registry = this.registry;
    collectDefaultMetrics({ register: registry });
    const latest = () => index.latest();
    new LatestBackupGauge(registry, 'dbbackup_last_success_timestamp_seconds', 'Unix time of the newest successful backup (absent until one exists).', () => {
      const b = latest();
      return b ? Date.parse(b.createdAt) / 1000 : null;
    });
    new LatestBackupGauge(registry, 'dbbackup_last_success_size_bytes', 'Size of the newest successful backup (the .sql.gz or .sql.zst file; absent until one exists).', () => latest()?.sizeBytes ?? null);
    new LatestBackupGauge(registry, 'dbbackup_last_success_duration_seconds', 'Duration of the newest successful backup (absent until one exists).', () => {
      const b = latest();
      return b ? b.durationMs / 1000 : null;
    });
    new Gauge({
      name: 'dbbackup_backups_stored',
      help: 'Backups currently listed.',
      registers: [registry],
      collect() {
        this.set(index.list().length);
      },
    });
    new Gauge({
      name: 'dbbackup_backups_pinned',
      help: 'Listed backups that are pinned (retention never deletes them).',
      registers: [registry],
      collect() {
        this.set(index.list().filter((b) => index.isPinned(b.id)).length);
      },
    });
    new Gauge({
      name: 'dbbackup_backup_running',
      help: '1 while a backup runs, else 0.',
      registers: [registry],
      collect() {
        this.set(jobs.running('backup') ? 1 : 0);
      },
    });
    new LatestBackupGauge(registry, 'dbbackup_drill_last_success_timestamp_seconds',
      'Unix time the newest backup known to restore passed its drill (absent until a listed backup passed one).', () => {
        const verified = index.lastVerified();
        const drill = verified ? index.drillOf(verified.id) : null;
        return drill ? Date.parse(drill.at) / 1000 : null;
      });
    this.#drills = new Counter({
      name: 'dbbackup_drills_total',
      help: 'Finished restore drills by outcome: passed, failed, or skipped (an encrypted backup and no RESTORE_DRILL_IDENTITY_FILE: nothing was restored). Aborted ones are not counted.',
      labelNames: ['status'],
      registers: [registry],
    });
    this.#drillDuration = new Histogram({
      name: 'dbbackup_drill_duration_seconds',
      help: 'Duration of finished restore drills that ran (passed or failed; skipped ones restored nothing).',
      buckets: [1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600],
      registers: [registry],
    });
    this.#backups = new Counter({
      name: 'dbbackup_backups_total',
      help: 'Finished backup jobs by outcome and trigger.',
      labelNames: ['status', 'trigger'],
      registers: [registry],
    });
    this.#retentionDeleted = new Counter({
      name: 'dbbackup_retention_deleted_total',
      help: 'Backups deleted by retention.',
      registers: [registry],
    });
    this.#httpRequests = new Counter({
      name: 'dbbackup_http_requests_total',
      help: 'HTTP requests by route and status.',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    });
    this.#httpDuration = new Histogram({
      name: 'dbbackup_http_request_duration_seconds',
      help: 'HTTP request duration (until the response ended).',
      labelNames: ['method', 'route'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30],
      registers: [registry],
    });
  }

  /** Engine hooks that feed the counters. */
  get engineEvents(): EngineEvents {
    return {
      jobFinished: (job: Job, _backup: BackupSidecar | null) => this.#backups.inc({ status: job.status, trigger: job.triggeredBy }),
      retentionDeleted: () => this.#retentionDeleted.inc(),
      drillFinished: (_job: Job, record: DrillRecord | null) => {
        if (record === null) return;
        this.#drills.inc({ status: record.status });
        // A skipped drill's few milliseconds would drag the durations of real restores down.
        if (record.status !== 'skipped') this.#drillDuration.observe(record.durationMs / 1000);
      },
    };
  }

  observeRequest(method: string, route: string, status: number, seconds: number): void {
    this.#httpRequests.inc({ method, route, status: String(status) });
    this.#httpDuration.observe({ method, route }, seconds);
  }
}

/**
 * A gauge with no sample at all while `read` has no value. prom-client's unlabelled gauge always
 * exports one (0 after reset()), and a 0 timestamp would keep `absent(...)` alerts from firing.
 */
class LatestBackupGauge extends Gauge {
  readonly #read: () => number | null;

  constructor(registry: Registry, name: string, help: string, read: () => number | null) {
    super({ name, help, registers: [registry] });
    this.#read = read;
  }

  override async get(): Promise<Awaited<ReturnType<Gauge['get']>>> {
    const metric = await super.get();
    const value = this.#read();
    return { ...metric, values: value === null ? [] : [{ value, labels: {} }] };
  }
}
