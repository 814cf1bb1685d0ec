import { z } from 'zod';

/**
 * Backup ids: `<prefix>_<yyyyMMddTHHmmssZ>[_<n>].sql.gz` (gzip) or `.sql.zst` (zstd), with `.age`
 * after it when the backup is encrypted (`.sql.gz.age`). The extension is the backup's compression
 * format (see compressionOfId) and whether it is encrypted (isEncryptedId). The optional `_<n>` suffix keeps two
 * backups taken within the same second distinct. The prefix is restricted to a safe alphabet so
 * that an id can never carry a path separator, `..`, or a NUL byte (invariant 7).
 */
export const BACKUP_NAME_PREFIX_PATTERN = /^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/;
export const BACKUP_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9-]{0,63}_\d{8}T\d{6}Z(?:_\d{1,4})?\.sql\.(?:gz|zst)(?:\.age)?$/;
export const BACKUP_ID_MAX_LENGTH = 100;

/** True when `id` has the shape of a backup id; checked before any storage access. */
export function isBackupId(id: string): boolean {
  return id.length <= BACKUP_ID_MAX_LENGTH && BACKUP_ID_PATTERN.test(id);
}

/** How a backup's plain SQL dump is compressed: gzip (the reference service's format, the default) or zstd. */
export const CompressionFormatSchema = z.enum(['gzip', 'zstd']);
export type CompressionFormat = z.infer<typeof CompressionFormatSchema>;

/** File extension, download Content-Type and level range of each format. */
export const COMPRESSION_FORMATS = {
  gzip: { extension: '.sql.gz', contentType: 'application/gzip', minLevel: 1, maxLevel: 9 },
  zstd: { extension: '.sql.zst', contentType: 'application/zstd', minLevel: 1, maxLevel: 19 },
} as const satisfies Record<CompressionFormat, { extension: string; contentType: string; minLevel: number; maxLevel: number }>;

/** An encrypted backup's name: its compressed name plus `.age` (age-encryption.org/v1). */
export const ENCRYPTED_EXTENSION = '.age';
/** Encrypted backups download as what they are to anyone without the key: opaque bytes. */
export const ENCRYPTED_CONTENT_TYPE = 'application/octet-stream';

/** True when a backup (or file) name says it is age-encrypted: it ends in `.age`. */
export function isEncryptedId(id: string): boolean {
  return id.endsWith(ENCRYPTED_EXTENSION);
}

/** The name without its `.age`: what the backup decrypts to (`….sql.gz`). */
export function plainNameOf(id: string): string {
  return isEncryptedId(id) ? id.slice(0, -ENCRYPTED_EXTENSION.length) : id;
}

/** The compression format of a backup, from its id's extension (call only with a valid id). */
export function compressionOfId(id: string): CompressionFormat {
  return plainNameOf(id).endsWith(COMPRESSION_FORMATS.zstd.extension) ? 'zstd' : 'gzip';
}

/** The Content-Type a backup downloads as: its compression's, or application/octet-stream when encrypted. */
export function contentTypeOfId(id: string): string {
  return isEncryptedId(id) ? ENCRYPTED_CONTENT_TYPE : COMPRESSION_FORMATS[compressionOfId(id)].contentType;
}

/** How a backup is encrypted (the sidecar's `encryption`): age, to these recipients (public keys). */
export const EncryptionSchema = z.object({
  format: z.literal('age'),
  recipients: z.array(z.string()).min(1).describe('The age recipients (public keys) the backup was encrypted to: any one of their identities decrypts it.'),
});
export type Encryption = z.infer<typeof EncryptionSchema>;

export const JobStatusSchema = z.enum(['queued', 'running', 'succeeded', 'failed']);
export type JobStatus = z.infer<typeof JobStatusSchema>;

export const TriggerSchema = z.enum(['scheduler', 'api']);
export type Trigger = z.infer<typeof TriggerSchema>;

/** What a job does: take a backup, or restore one into a scratch database and count it (a drill). */
export const JobKindSchema = z.enum(['backup', 'drill']);
export type JobKind = z.infer<typeof JobKindSchema>;

/** How far a running backup is: updated as the dump streams (absent from the reference service). */
export const JobProgressSchema = z.object({
  dumpedBytes: z.number().int().nonnegative().describe('Plain SQL bytes pg_dump has written so far.'),
  storedBytes: z.number().int().nonnegative().describe('Compressed bytes handed to storage so far.'),
  elapsedMs: z.number().int().nonnegative().describe('Since the job started running.'),
  bytesPerSecond: z.number().nonnegative().describe('dumpedBytes per second of elapsed time.'),
  estimatedTotalBytes: z
    .number()
    .int()
    .nonnegative()
    .nullable()
    .describe("Expected dumpedBytes at the end: the previous backup's uncompressed size (null when there is none)."),
});
export type JobProgress = z.infer<typeof JobProgressSchema>;

/** A backup job as the API reports it. Jobs live in memory (the newest 100). */
export const JobSchema = z.object({
  jobId: z.string().uuid(),
  kind: JobKindSchema.default('backup').describe('backup: takes a backup; drill: restores backupId into a scratch database and checks it (absent from the reference service: backup).'),
  status: JobStatusSchema,
  triggeredBy: TriggerSchema,
  startedAt: z.string().datetime().nullable().describe('When the job started running (null while queued).'),
  finishedAt: z.string().datetime().nullable(),
  durationMs: z.number().int().nonnegative().nullable(),
  errorMessage: z.string().nullable().describe('Why the job failed (pg_dump stderr with secrets redacted, storage or verification error).'),
  backupId: z.string().nullable().describe('backup: the id of the backup this job produced (set when it succeeded); drill: the backup being drilled (set from the start).'),
  progress: JobProgressSchema.nullable()
    .default(null)
    .describe('A backup job while it runs and once it ended: how far the dump got. null while queued, and for drills.'),
});
export type Job = z.infer<typeof JobSchema>;

/** The fields every sidecar has, ours and the reference service's: the public part of a backup. */
const BackupFieldsSchema = z.object({
  id: z.string().describe('Backup id, also its file name: `<prefix>_<yyyyMMddTHHmmssZ>.sql.gz` (gzip) or `.sql.zst` (zstd); `.age` follows when it is encrypted.'),
  createdAt: z.string().datetime(),
  sizeBytes: z.number().int().nonnegative().describe('Size of the stored object (.sql.gz / .sql.zst, or its .age ciphertext).'),
  sha256: z.string().regex(/^[0-9a-f]{64}$/).describe('SHA-256 (hex) of the stored object, as stored (the ciphertext when encrypted).'),
  pgVersion: z.string().describe('Version of the PostgreSQL server that was dumped.'),
  durationMs: z.number().int().nonnegative(),
  triggeredBy: TriggerSchema,
});

/** The outcome of a backup's newest restore drill, as the API reports it beside the backup. */
export const DrillSummarySchema = z.object({
  status: z.enum(['passed', 'failed', 'skipped']).describe('skipped: the drill could not run for a reason that is not the backup\'s (an encrypted backup and no RESTORE_DRILL_IDENTITY_FILE); detail says why. Only passed proves a backup.'),
  at: z.string().datetime().describe('When the drill finished.'),
  durationMs: z.number().int().nonnegative(),
  tablesChecked: z.number().int().nonnegative().describe("Tables whose row count was compared with the backup's contents manifest."),
  rowsChecked: z.number().int().nonnegative().describe("The manifest's rows when every count matched; else the rows of the tables that matched."),
  detail: z.string().nullable().describe('Failed: the first mismatch, or the restore error (psql\'s message). Skipped: why. Passed: null.'),
});
export type DrillSummary = z.infer<typeof DrillSummarySchema>;

/** Why and since when a backup is pinned: retention never deletes it (`<id>.pin.json`). */
export const PinSchema = z.object({
  at: z.string().datetime().describe('When it was pinned.'),
  reason: z.string().nullable().describe('What the operator gave as the reason (null: none).'),
});
export type Pin = z.infer<typeof PinSchema>;

/** The longest pin reason kept: a note, not a document. */
export const PIN_REASON_MAX_LENGTH = 500;

/** The body of PUT …/pin (optional): why the backup is kept. */
export const PinRequestSchema = z
  .object({ reason: z.string().trim().min(1).max(PIN_REASON_MAX_LENGTH).nullable().optional().describe(`Why it is kept (1-${PIN_REASON_MAX_LENGTH} characters).`) })
  .strict();
export type PinRequest = z.infer<typeof PinRequestSchema>;

/** `<id>.pin.json`, beside a pinned backup; deleting it unpins. */
export const PinRecordSchema = PinSchema.extend({ format: z.literal(1), backupId: z.string() });
export type PinRecord = z.infer<typeof PinRecordSchema>;

/** A stored, verified backup (one with a `.meta.json` sidecar). */
export const BackupSchema = BackupFieldsSchema.extend({
  encryption: EncryptionSchema.nullable().default(null).describe('How the backup is encrypted (null: it is not); old backups keep the recipients they were written for.'),
  drill: DrillSummarySchema.nullable()
    .default(null)
    .describe('The newest restore drill of this backup (`<id>.drill.json`), or null when it was never drilled.'),
  pinned: PinSchema.nullable().default(null).describe('Set while the backup is pinned (`<id>.pin.json`): retention never deletes it. null: not pinned.'),
});
export type Backup = z.infer<typeof BackupSchema>;

/** What a backup's dump holds, counted as it streamed: `<id>.contents.json`, written before the sidecar. */
export const ContentsManifestSchema = z.object({
  format: z.literal(1),
  tables: z
    .array(z.object({ schema: z.string(), name: z.string(), rows: z.number().int().nonnegative() }))
    .describe('Every table with a COPY block in the dump, with the rows of that block.'),
  largeObjects: z.number().int().nonnegative(),
  objects: z.object({
    tables: z.number().int().nonnegative(),
    sequences: z.number().int().nonnegative(),
    views: z.number().int().nonnegative(),
    functions: z.number().int().nonnegative(),
    indexes: z.number().int().nonnegative(),
  }),
});
export type ContentsManifest = z.infer<typeof ContentsManifestSchema>;

/** The sidecar's summary of the contents manifest; `sha256` is the manifest object's, so a drill trusts only the manifest written with the backup. */
export const SidecarContentsSchema = z.object({
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  tables: z.number().int().nonnegative(),
  rows: z.number().int().nonnegative().describe('The sum of the rows of every COPY block.'),
  largeObjects: z.number().int().nonnegative(),
});
export type SidecarContents = z.infer<typeof SidecarContentsSchema>;

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

export const BackupSidecarSchema = BackupFieldsSchema.extend({
  pgDumpVersion: z.string().default(UNKNOWN),
  uncompressedSizeBytes: z.number().int().nonnegative().nullable().default(null).describe('null: not recorded.'),
  compression: z
    .object({ format: CompressionFormatSchema, level: z.number().int().min(1).max(22).nullable().default(null) })
    .default({ format: 'gzip', level: null }),
  database: z.string().default(UNKNOWN),
  serviceVersion: z.string().default(UNKNOWN),
  format: z.literal('plain').default('plain'),
  contents: SidecarContentsSchema.nullable().default(null).describe('null: no contents manifest (the reference service, older versions).'),
  encryption: EncryptionSchema.nullable().default(null).describe('null: not encrypted.'),
});
export type BackupSidecar = z.infer<typeof BackupSidecarSchema>;

/** Where drills restore: a throwaway cluster the service starts, or a PostgreSQL server. */
export const DrillTargetSchema = z.enum(['local', 'server']);
export type DrillTarget = z.infer<typeof DrillTargetSchema>;

/** One count a drill compared that differed. */
export const DrillMismatchSchema = z.object({
  what: z.string().describe('e.g. `rows of table public.orders`, `large objects`, `views`.'),
  expected: z.number().int().nonnegative(),
  actual: z.number().int().nonnegative(),
});
export type DrillMismatch = z.infer<typeof DrillMismatchSchema>;

/** `<id>.drill.json`, written after each drill of that backup (never part of what makes a backup listed). */
export const DrillRecordSchema = DrillSummarySchema.extend({
  format: z.literal(1),
  backupId: z.string(),
  target: DrillTargetSchema,
  serverVersion: z.string().nullable().describe('The PostgreSQL server the drill restored into (null when it could not be reached).'),
  mismatches: z.array(DrillMismatchSchema),
  query: z
    .object({ sql: z.string(), result: z.boolean().nullable() })
    .nullable()
    .describe('RESTORE_DRILL_QUERY and what it returned (null: not run); null when none is configured.'),
});
export type DrillRecord = z.infer<typeof DrillRecordSchema>;

/** One error body for every 4xx/5xx: RFC 9457 problem details (`application/problem+json`). */
export const ProblemSchema = z.object({
  type: z.string().describe('A URI reference naming the problem type (`about:blank` or `urn:db-backup-service:<code>`).'),
  title: z.string(),
  status: z.number().int(),
  detail: z.string().optional(),
  code: z.string().optional().describe('Stable machine-readable error code.'),
});
export type Problem = z.infer<typeof ProblemSchema>;

/** 409 body: a job of the same kind (backup, drill) is already running; `jobId` is the running job to poll instead. */
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

const keepRule = (period: string, variable: string) =>
  z.number().int().nonnegative().describe(`${variable}: for the newest N ${period} that have a backup, the newest backup of each is kept (UTC; 0: off).`);

/** RETENTION_*: each rule keeps backups; a backup is deleted only when no rule keeps it. */
export const RetentionPolicySchema = z.object({
  days: z.number().int().nonnegative().describe('RETENTION_DAYS: backups younger than this many days are kept (0: none by age).'),
  minCount: z.number().int().positive().describe('RETENTION_MIN_COUNT: the newest this many backups are kept, whatever their age.'),
  keepDaily: keepRule('days', 'RETENTION_KEEP_DAILY'),
  keepWeekly: keepRule('ISO weeks', 'RETENTION_KEEP_WEEKLY'),
  keepMonthly: keepRule('calendar months', 'RETENTION_KEEP_MONTHLY'),
  keepYearly: keepRule('calendar years', 'RETENTION_KEEP_YEARLY'),
  keepNewestVerified: z.boolean().describe('RESTORE_DRILL is on: the newest backup whose newest drill passed is kept.'),
  dryRun: z.boolean().describe('RETENTION_DRY_RUN: retention logs what it would delete and deletes nothing (no clean-up of leftovers either).'),
});
export type RetentionPolicy = z.infer<typeof RetentionPolicySchema>;

/** GET /api/v1/retention: what retention would do now, backup by backup. */
export const RetentionPlanSchema = z.object({
  policy: RetentionPolicySchema,
  evaluatedAt: z.string().datetime().describe('The time the plan was computed for (ages and "younger than" count from it).'),
  backups: z
    .array(
      z.object({
        id: z.string(),
        createdAt: z.string().datetime(),
        action: z.enum(['keep', 'delete']),
        reasons: z
          .array(z.string())
          .min(1)
          .describe(
            'keep: every rule that keeps it (`pinned`, `newest success`, `newest verified`, `newest 3`, `younger than 7 days`, `daily 2026-11-30`, ' +
              '`weekly 2026-W48`, `monthly 2026-11`, `yearly 2026`); delete: `expired`.',
          ),
      }),
    )
    .describe('Every listed backup, newest first.'),
});
export type RetentionPlan = z.infer<typeof RetentionPlanSchema>;

export const InfoSchema = z.object({
  service: z.object({ name: z.string(), version: z.string() }),
  pgDump: z.object({
    version: z.string().nullable().describe('The newest pg_dump found; null when none was found. Each backup uses the client chosen for its server (see clients).'),
    clients: z
      .array(z.object({ version: z.string(), binDir: z.string() }))
      .describe("Every pg_dump found, oldest first. A backup uses the one of its server's major version, else the oldest newer one."),
    pinned: z.boolean().describe('PG_BIN_DIR names the one client to use.'),
  }),
  retention: RetentionPolicySchema,
  schedule: z.object({
    interval: z.string().describe('ISO-8601 duration, e.g. PT24H.'),
    intervalSeconds: z.number().int(),
    cron: z.string().nullable(),
    nextRunAt: z.string().datetime().nullable().describe('When the scheduler starts the next backup.'),
  }),
  storage: z.object({ backend: z.enum(['local', 's3']) }),
  encryption: EncryptionSchema.nullable()
    .default(null)
    .describe('BACKUP_ENCRYPTION_RECIPIENTS: the age recipients (public keys) new backups are encrypted to; null: backups are not encrypted.'),
  drill: z.object({
    mode: z.enum(['off', 'after-backup', 'schedule']).describe('RESTORE_DRILL: off (on demand only), after every successful backup, or on its own schedule (the newest backup).'),
    target: DrillTargetSchema.describe('RESTORE_DRILL_TARGET: a throwaway local cluster, or a PostgreSQL server.'),
    nextRunAt: z.string().datetime().nullable().describe('When the schedule drills next (null unless mode is schedule).'),
    last: DrillSummarySchema.extend({ backupId: z.string() }).nullable().describe('The newest drill of a listed backup; null when none was drilled.'),
  }),
  backup: z.object({
    lastSuccessfulBackupAgeSeconds: z.number().int().nullable(),
    lastSuccessfulBackupId: z.string().nullable(),
    lastVerifiedBackupAgeSeconds: z.number().int().nullable().describe('Age of the newest backup whose newest drill passed (known to restore); null when none.'),
    lastVerifiedBackupId: z.string().nullable(),
    foreignBackups: z
      .number()
      .int()
      .nonnegative()
      .describe("Backups under this service's name prefix whose sidecar names another database: ignored (not listed, pruned or cleaned). Non-zero means two services share a location."),
  }),
});
export type Info = z.infer<typeof InfoSchema>;

/** What the service notifies (NOTIFY_WEBHOOK_URLS, NOTIFY_SMTP_URL); NOTIFY_ON chooses which are sent. */
export const NOTIFICATION_EVENTS = [
  'backup.succeeded',
  'backup.failed',
  'backup.recovered',
  'backup.stale',
  'drill.passed',
  'drill.failed',
  'retention.deleted',
] as const;
export const NotificationEventNameSchema = z.enum(NOTIFICATION_EVENTS);
export type NotificationEventName = z.infer<typeof NotificationEventNameSchema>;

/**
 * The body of a JSON webhook (a URL without a slack:/discord: form), signed when
 * NOTIFY_WEBHOOK_SECRET is set. One event per delivery; a retry sends the same body again.
 */
export const NotificationEventSchema = z
  .object({
    id: z.string().uuid().describe('Unique per event and the same in every retry: a receiver that sees an id twice drops the second.'),
    event: NotificationEventNameSchema.describe(
      'backup.succeeded: a backup was stored. backup.failed: a backup failed (error says why). backup.recovered: the first success after a failure, ' +
        'a stale episode or start-up (NOTIFY_ON=failure sends this instead of backup.succeeded). backup.stale: no successful backup for NOTIFY_STALE_AFTER ' +
        '(once, until the next success). drill.passed / drill.failed: a restore drill ended (a skipped drill is a failure: nothing was verified). ' +
        'retention.deleted: retention deleted a backup.',
    ),
    time: z.string().datetime().describe('When it happened.'),
    service: z.object({ name: z.string(), version: z.string() }),
    database: z.string().describe('DB_NAME: the backed-up database.'),
    message: z.string().describe('One line for people, e.g. "backup of shop failed: pg_dump: error: ...".'),
    job: JobSchema.nullable().describe('The backup or drill job; null for backup.stale and retention.deleted.'),
    backup: BackupSchema.nullable().describe('The stored, drilled or deleted backup; null when there is none (a failed backup, a stale schedule).'),
    error: z.string().nullable().describe('Why it failed (pg_dump\'s stderr, secrets redacted); null unless backup.failed or drill.failed.'),
    lastSuccessAt: z.string().datetime().nullable().describe('The newest successful backup before this event; null when none is listed.'),
  })
  .describe('A notification: the body of a JSON webhook.');
export type NotificationEvent = z.infer<typeof NotificationEventSchema>;
