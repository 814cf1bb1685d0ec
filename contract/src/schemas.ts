import { z } from 'zod';

/**
 * Backup ids: `<prefix>_<yyyyMMddTHHmmssZ>[_<n>].sql.gz`. The optional `_<n>` suffix keeps two
 * backups taken within the same second distinct. The prefix is restricted to a safe alphabet so
 * that an id can never carry a path separator, `..`, or a NUL byte (invariant 7).
 */
export const BACKUP_NAME_PREFIX_PATTERN = /^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/;
export const BACKUP_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9-]{0,63}_\d{8}T\d{6}Z(?:_\d{1,4})?\.sql\.gz$/;
export const BACKUP_ID_MAX_LENGTH = 100;

/** True when `id` has the shape of a backup id; checked before any storage access. */
export function isBackupId(id: string): boolean {
  return id.length <= BACKUP_ID_MAX_LENGTH && BACKUP_ID_PATTERN.test(id);
}

export const JobStatusSchema = z.enum(['queued', 'running', 'succeeded', 'failed']);
export type JobStatus = z.infer<typeof JobStatusSchema>;

export const TriggerSchema = z.enum(['scheduler', 'api']);
export type Trigger = z.infer<typeof TriggerSchema>;

/** A backup job as the API reports it. Jobs live in memory (the newest 100). */
export const JobSchema = z.object({
  jobId: z.string().uuid(),
  status: JobStatusSchema,
  triggeredBy: TriggerSchema,
  startedAt: z.string().datetime().nullable().describe('When the job started running (null while queued).'),
  finishedAt: z.string().datetime().nullable(),
  durationMs: z.number().int().nonnegative().nullable(),
  errorMessage: z.string().nullable().describe('Why the job failed (pg_dump stderr with secrets redacted, storage or verification error).'),
  backupId: z.string().nullable().describe('The id of the backup this job produced (set when it succeeded).'),
});
export type Job = z.infer<typeof JobSchema>;

/** A stored, verified backup (one with a `.meta.json` sidecar). */
export const BackupSchema = z.object({
  id: z.string().describe('Backup id, also its file name: `<prefix>_<yyyyMMddTHHmmssZ>.sql.gz`.'),
  createdAt: z.string().datetime(),
  sizeBytes: z.number().int().nonnegative().describe('Size of the stored .sql.gz object.'),
  sha256: z.string().regex(/^[0-9a-f]{64}$/).describe('SHA-256 (hex) of the stored .sql.gz object.'),
  pgVersion: z.string().describe('Version of the PostgreSQL server that was dumped.'),
  durationMs: z.number().int().nonnegative(),
  triggeredBy: TriggerSchema,
});
export type Backup = z.infer<typeof BackupSchema>;

/**
 * The sidecar (`<id>.meta.json`): the public Backup fields plus what an operator needs to restore
 * it elsewhere. Written last, only after the dump is stored and verified (invariant 1).
 *
 * The reference service writes only the Backup fields; the defaults below describe its backups
 * (gzipped plain SQL) and say `unknown` (or null) for what it does not record, so its backups list,
 * download, restore and expire like ours. A sidecar without a database counts as this service's.
 */
/** What a sidecar says for a field it does not carry (the reference service's sidecars). */
export const UNKNOWN = 'unknown';

export const BackupSidecarSchema = BackupSchema.extend({
  pgDumpVersion: z.string().default(UNKNOWN),
  uncompressedSizeBytes: z.number().int().nonnegative().nullable().default(null).describe('null: not recorded.'),
  compression: z
    .object({ format: z.literal('gzip'), level: z.number().int().min(1).max(9).nullable().default(null) })
    .default({ format: 'gzip', level: null }),
  database: z.string().default(UNKNOWN),
  serviceVersion: z.string().default(UNKNOWN),
  format: z.literal('plain').default('plain'),
});
export type BackupSidecar = z.infer<typeof BackupSidecarSchema>;

/** One error body for every 4xx/5xx: RFC 9457 problem details (`application/problem+json`). */
export const ProblemSchema = z.object({
  type: z.string().describe('A URI reference naming the problem type (`about:blank` or `urn:db-backup-service:<code>`).'),
  title: z.string(),
  status: z.number().int(),
  detail: z.string().optional(),
  code: z.string().optional().describe('Stable machine-readable error code.'),
});
export type Problem = z.infer<typeof ProblemSchema>;

/** 409 body: a backup is already running; `jobId` is the running job to poll instead. */
export const JobConflictSchema = ProblemSchema.extend({
  status: z.literal(409),
  jobId: z.string().uuid(),
});
export type JobConflict = z.infer<typeof JobConflictSchema>;

/** A component's state only: why it is DOWN goes to the service log, not to this open endpoint. */
export const ComponentHealthSchema = z.object({
  status: z.enum(['UP', 'DOWN']),
});
export const HealthSchema = z.object({
  status: z.enum(['UP', 'DOWN']),
  components: z.object({
    database: ComponentHealthSchema,
    storage: ComponentHealthSchema,
  }),
});
export type Health = z.infer<typeof HealthSchema>;

/** /health/live: the process answers; nothing else is checked. */
export const LivenessSchema = z.object({ status: z.literal('UP') });
export type Liveness = z.infer<typeof LivenessSchema>;

export const InfoSchema = z.object({
  service: z.object({ name: z.string(), version: z.string() }),
  pgDump: z.object({
    version: z.string().nullable().describe('The newest pg_dump found; null when none was found. Each backup uses the client chosen for its server (see clients).'),
    clients: z
      .array(z.object({ version: z.string(), binDir: z.string() }))
      .describe("Every pg_dump found, oldest first. A backup uses the one of its server's major version, else the oldest newer one."),
    pinned: z.boolean().describe('PG_BIN_DIR names the one client to use.'),
  }),
  retention: z.object({ days: z.number().int(), minCount: z.number().int() }),
  schedule: z.object({
    interval: z.string().describe('ISO-8601 duration, e.g. PT24H.'),
    intervalSeconds: z.number().int(),
    cron: z.string().nullable(),
    nextRunAt: z.string().datetime().nullable().describe('When the scheduler starts the next backup.'),
  }),
  storage: z.object({ backend: z.enum(['local', 's3']) }),
  backup: z.object({
    lastSuccessfulBackupAgeSeconds: z.number().int().nullable(),
    lastSuccessfulBackupId: z.string().nullable(),
    foreignBackups: z
      .number()
      .int()
      .nonnegative()
      .describe("Backups under this service's name prefix whose sidecar names another database: ignored (not listed, pruned or cleaned). Non-zero means two services share a location."),
  }),
});
export type Info = z.infer<typeof InfoSchema>;
