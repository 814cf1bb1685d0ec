import { accessSync, constants as fsConstants, readFileSync } from 'node:fs';
import { BACKUP_NAME_PREFIX_PATTERN, COMPRESSION_FORMATS, CompressionFormatSchema, PG_SSL_MODES, type CompressionFormat, type DrillTarget, type Encryption, type RetentionPolicy } from '@db-backup-service/contract';
import { DEFAULT_CLIENTS_DIR, parseIdentities, parseRecipients, type PgServer } from '@db-backup-service/restore';
import { validateCronExpression } from 'cron';
import { findLocalServer } from '../drill/local-server.js';
import { inheritableEnv } from '../backup/child-env.js';
import { BYTE_RATE_FORMS, parseByteRate } from './byte-rate.js';
import { usableCpus } from './cpu-limit.js';
import { formatIsoDuration, parseDuration } from './duration.js';
import type { SECRET_VARIABLES } from '@db-backup-service/contract';

export { SECRET_VARIABLES } from '@db-backup-service/contract';
export type { PgSslMode, PgTlsSettings } from '@db-backup-service/contract';

/** Where S3 backups go; also the options of storage/s3-storage.ts. */
export interface S3Settings {
  readonly bucket: string;
  /** Key prefix without leading/trailing slashes; '' stores at the bucket's root. */
  readonly prefix: string;
  /** Custom endpoint (MinIO, Ceph, fauxqs...); null for AWS S3. Implies path-style addressing. */
  readonly endpoint: string | null;
  readonly region: string;
  /**
   * Static credentials (AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY, optionally AWS_SESSION_TOKEN);
   * null: the AWS SDK's default provider chain (web identity/IRSA, EKS Pod Identity, ECS/EC2
   * roles, shared config files).
   */
  readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string; readonly sessionToken: string | null } | null;
  /** S3_CONNECT_TIMEOUT: connecting to S3 may take this long. */
  readonly connectTimeoutMs: number;
  /** S3_REQUEST_TIMEOUT: a request fails once its connection has carried no byte either way for this long. */
  readonly requestTimeoutMs: number;
  /** null: sized per upload from the database size (see choosePartSize in storage/s3-storage.ts). */
  readonly partSizeBytes: number | null;
}

/** RESTORE_DRILL: never, after each successful backup, or on its own schedule (the newest backup). */
export type DrillMode = 'off' | 'after-backup' | 'schedule';

/** A PostgreSQL server to connect to: the backed-up one, or where drills restore. */
export type DbServer = PgServer;

export interface DrillSettings {
  readonly mode: DrillMode;
  /** mode 'schedule': an interval (cron null) or a cron expression (intervalMs null). */
  readonly schedule: { readonly intervalMs: number | null; readonly cron: string | null } | null;
  readonly target: DrillTarget;
  /** The newest `<PG_CLIENTS_DIR>/<major>/bin` with initdb and postgres (target local), else null. */
  readonly localBinDir: string | null;
  /** Target server: RESTORE_DRILL_DB_*, each defaulting to the backed-up server's. */
  readonly server: DbServer;
  /** RESTORE_DRILL_QUERY: SQL that must return true in the restored database; null: none. */
  readonly query: string | null;
  /** RESTORE_DRILL_IDENTITY_FILE: age identities that decrypt encrypted backups for drills; null: such drills are skipped. */
  readonly identities: readonly string[] | null;
}

export type StorageConfig = { readonly backend: 'local'; readonly dir: string } | ({ readonly backend: 's3' } & S3Settings);

/** The service's whole configuration, parsed once from the environment and frozen. */
export interface Config {
  readonly db: DbServer & { readonly name: string };
  /** PG_BIN_DIR: the one client to use; null = choose per backup among those under pgClientsDir. */
  readonly pgBinDir: string | null;
  /** PG_CLIENTS_DIR: one `<major>/bin` per installed client; null = /usr/lib/postgresql. */
  readonly pgClientsDir: string | null;
  readonly schedule: { readonly intervalMs: number; readonly intervalIso: string; readonly cron: string | null };
  readonly backup: {
    readonly namePrefix: string;
    /** BACKUP_COMPRESSION and BACKUP_COMPRESSION_LEVEL: the format of new backups (the id's extension) and its level. */
    readonly compression: { readonly format: CompressionFormat; readonly level: number };
    /** BACKUP_COMPRESSION_THREADS: gzip's blocks compressed at once (zstd is one stream: see backup/compressor.ts). */
    readonly compressionThreads: number;
    /** BACKUP_TIMEOUT: a backup running longer is aborted; also the age below which clean-up leaves another writer's leftovers alone. */
    readonly timeoutMs: number;
    /** BACKUP_LOCK_WAIT_TIMEOUT: pg_dump's --lock-wait-timeout, how long it waits for each table's ACCESS SHARE lock. */
    readonly lockWaitTimeoutMs: number;
    /** BACKUP_MAX_UPLOAD_RATE in bytes per second: the compressed bytes written to storage; null = no limit. */
    readonly maxUploadBytesPerSecond: number | null;
    /** BACKUP_ENCRYPTION_RECIPIENTS(_FILE): age recipients every new backup is encrypted to; null = not encrypted. */
    readonly encryption: Encryption | null;
  };
  readonly retention: RetentionPolicy;
  readonly drill: DrillSettings;
  readonly storage: StorageConfig;
  readonly http: { readonly host: string; readonly port: number };
  readonly apiToken: string;
  readonly log: { readonly format: 'json' | 'plain'; readonly level: string };
  readonly shutdownTimeoutMs: number;
  readonly indexRefreshMs: number;
  /** What the service takes from its process environment besides its own variables. */
  readonly runtime: {
    /** PATH, searched last for pg_dump and psql. */
    readonly path: string;
    /** libuv's thread-pool size (UV_THREADPOOL_SIZE, which bin.ts sets before anything uses the pool; libuv's rule otherwise). */
    readonly threadPoolSize: number;
    /** The environment child processes start from: this process's without its secrets (backup/child-env.ts). */
    readonly childEnv: Readonly<Record<string, string>>;
  };
}

export interface ConfigProblem {
  readonly variable: string;
  readonly problem: string;
  readonly fix: string;
}

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(readonly problems: readonly ConfigProblem[]) {
    super(formatProblems(problems));
    this.name = 'ConfigError';
  }
}

export function formatProblems(problems: readonly ConfigProblem[]): string {
  const lines = problems.map((p) => `  - ${p.variable}: ${p.problem}.${p.fix === '' ? '' : ` ${p.fix}`}`);
  return `Invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${lines.join('\n')}`;
}

const MIN_TOKEN_LENGTH = 32;
const MIB = 1024 * 1024;
/**
 * The longest delay a Node timer holds: a larger one fires after 1 ms (with only a warning), so
 * e.g. INDEX_REFRESH_INTERVAL=30d would list the storage every millisecond.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Every RETENTION_ variable there is (any other is refused, see retentionSettings). */
const RETENTION_VARIABLES = [
  'RETENTION_DAYS', 'RETENTION_MIN_COUNT', 'RETENTION_KEEP_DAILY', 'RETENTION_KEEP_WEEKLY', 'RETENTION_KEEP_MONTHLY', 'RETENTION_KEEP_YEARLY', 'RETENTION_DRY_RUN',
] as const;
const KEEP_EXAMPLES: Readonly<Record<string, number>> = { RETENTION_KEEP_DAILY: 7, RETENTION_KEEP_WEEKLY: 4, RETENTION_KEEP_MONTHLY: 12, RETENTION_KEEP_YEARLY: 3 };

/**
 * Parses the environment into a Config. Collects every problem before failing, so an operator
 * fixes them all in one round; never includes a secret's value in a message.
 */
export function loadConfig(env: NodeJS.ProcessEnv, opts: { cgroupRoot?: string } = {}): Config {
  const { config, problems } = parseConfig(env, opts);
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/**
 * loadConfig without the throw: the config (with fallbacks where a value was wrong) and every
 * problem, so that start-up can add the checks only it can make (the backup directory) to the
 * same list.
 */
export function parseConfig(env: NodeJS.ProcessEnv, opts: { cgroupRoot?: string } = {}): { config: Config; problems: ConfigProblem[] } {
  const problems: ConfigProblem[] = [];
  const report = (variable: string, problem: string, fix: string) => problems.push({ variable, problem, fix });

  const raw = (name: string): string | undefined => {
    const value = env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  };
  const required = (name: string, fix: string): string => {
    const value = raw(name);
    if (value === undefined) report(name, 'required but not set', fix);
    return value ?? '';
  };
  /** The text of the file a variable names, or null after reporting why it cannot be read (`fix` says what to point it at). */
  const fileText = (variable: string, file: string, fix: string): string | null => {
    try {
      return readFileSync(file, 'utf8');
    } catch (error) {
      report(variable, `cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`, fix);
      return null;
    }
  };
  const secret = (name: (typeof SECRET_VARIABLES)[number], needed: boolean, fix: string): string => {
    const direct = env[name];
    const file = raw(`${name}_FILE`);
    if (direct !== undefined && direct !== '' && file !== undefined) {
      report(name, `both ${name} and ${name}_FILE are set`, `Set only one of them.`);
      return '';
    }
    if (file !== undefined) {
      const text = fileText(`${name}_FILE`, file, `Point it at a readable file holding the value.`);
      if (text === null) return '';
      // Docker/Kubernetes secret files usually end with a newline that is not part of the secret.
      const value = text.replace(/\r?\n$/, '');
      if (value === '') report(`${name}_FILE`, `the file ${file} is empty`, `Put the value in that file.`);
      return value;
    }
    if (direct === undefined || direct === '') {
      if (needed) report(name, 'required but not set', fix);
      return '';
    }
    return direct;
  };
  const integer = (name: string, fallback: number, min: number, max: number, fix: string): number => {
    const value = raw(name);
    if (value === undefined) return fallback;
    if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
      report(name, `"${value}" is not a whole number from ${min} to ${max}`, fix);
      return fallback;
    }
    return Number(value);
  };
  const oneOf = <T extends string>(name: string, allowed: readonly T[], fallback: T | undefined): T | undefined => {
    const value = raw(name);
    if (value === undefined) {
      if (fallback === undefined) report(name, 'required but not set', `Set it to one of: ${allowed.join(', ')}.`);
      return fallback;
    }
    if (!(allowed as readonly string[]).includes(value)) {
      report(name, `"${value}" is not one of ${allowed.join(', ')}`, `Set it to one of: ${allowed.join(', ')}.`);
      return fallback;
    }
    return value as T;
  };

  const db = {
    host: required('DB_HOST', 'Set it to the PostgreSQL server\'s host name, e.g. DB_HOST=postgres.'),
    port: integer('DB_PORT', 5432, 1, 65535, 'Set it to the PostgreSQL server\'s TCP port (default 5432).'),
    name: required('DB_NAME', 'Set it to the name of the database to back up.'),
    user: required('DB_USER', 'Set it to a PostgreSQL role that may read every schema to back up.'),
    password: secret('DB_PASSWORD', true, 'Set DB_PASSWORD, or DB_PASSWORD_FILE to a file holding it.'),
    tls: {
      // libpq's default is prefer, and pg_dump follows libpq: the service's own connections follow it too.
      mode: oneOf('PGSSLMODE', PG_SSL_MODES, 'prefer') ?? 'prefer',
      rootCert: readableFile('PGSSLROOTCERT', ['system']),
      cert: readableFile('PGSSLCERT'),
      key: readableFile('PGSSLKEY'),
    },
  };
  if ((db.tls.cert === null) !== (db.tls.key === null)) {
    report(db.tls.cert === null ? 'PGSSLCERT' : 'PGSSLKEY', 'PGSSLCERT and PGSSLKEY must be set together', 'Set both (a client certificate and its key) or neither.');
  }

  const intervalText = raw('BACKUP_INTERVAL') ?? '24h';
  let intervalMs = parseDuration(intervalText);
  if (intervalMs === null) {
    report('BACKUP_INTERVAL', `"${intervalText}" is not a duration of at least one second`, `Use ${DURATION_FORMS}.`);
    intervalMs = 24 * 3600 * 1000;
  }
  const cron = raw('BACKUP_CRON') ?? null;
  if (cron !== null && !isCron(cron)) {
    report('BACKUP_CRON', `"${cron}" is not a valid cron expression`, `Use ${CRON_FORM}, or unset it to use BACKUP_INTERVAL.`);
  }

  const namePrefix = raw('BACKUP_NAME_PREFIX') ?? 'backup';
  if (!BACKUP_NAME_PREFIX_PATTERN.test(namePrefix)) {
    report('BACKUP_NAME_PREFIX', `"${namePrefix}" is not allowed`, 'Use 1-64 letters, digits or "-", starting with a letter or digit (no "_", "/" or ".").');
  }

  const backend = oneOf('STORAGE_BACKEND', ['local', 's3'] as const, undefined);
  let storage: StorageConfig = { backend: 'local', dir: '' };
  if (backend === 'local') {
    storage = { backend: 'local', dir: required('BACKUP_LOCAL_DIR', 'Set it to the directory (a mounted volume) where backups are written.') };
  } else if (backend === 's3') {
    const endpoint = raw('S3_ENDPOINT') ?? null;
    if (endpoint !== null && !/^https?:\/\/[^\s/]+/.test(endpoint)) {
      report('S3_ENDPOINT', `"${endpoint}" is not an http(s) URL`, 'Use e.g. http://minio:9000, or unset it for AWS S3.');
    }
    const prefix = (raw('S3_PREFIX') ?? 'backups').replace(/^\/+|\/+$/g, '');
    storage = {
      backend: 's3',
      bucket: required('S3_BUCKET', 'Set it to the bucket that receives the backups.'),
      prefix,
      endpoint,
      region: raw('AWS_DEFAULT_REGION') ?? raw('AWS_REGION') ?? 'eu-central-1',
      credentials: staticCredentials(),
      // 10 s to connect and 60 s without a byte either way: far beyond a healthy S3's pauses (it
      // sends keep-alive whitespace during a slow CompleteMultipartUpload), and a stalled one
      // fails a job within minutes, retries included (s3-storage.ts).
      connectTimeoutMs: durationVariable('S3_CONNECT_TIMEOUT', '10s'),
      requestTimeoutMs: durationVariable('S3_REQUEST_TIMEOUT', '60s'),
      partSizeBytes: raw('S3_PART_SIZE_MB') === undefined ? null
        : integer('S3_PART_SIZE_MB', 16, 5, 5120, 'Set the multipart part size in MiB (5-5120), or unset it to size parts from the database size.') * MIB,
    };
  }

  const apiToken = secret('API_TOKEN', true, 'Generate one with: openssl rand -hex 32');
  if (apiToken !== '' && apiToken.length < MIN_TOKEN_LENGTH) {
    report('API_TOKEN', `too short (${apiToken.length} characters; at least ${MIN_TOKEN_LENGTH} needed)`, 'Generate one with: openssl rand -hex 32');
  }

  const drill = drillSettings();

  const config: Config = {
    db,
    pgBinDir: raw('PG_BIN_DIR') ?? null,
    pgClientsDir: raw('PG_CLIENTS_DIR') ?? null,
    schedule: { intervalMs, intervalIso: formatIsoDuration(intervalMs), cron },
    backup: {
      namePrefix,
      compression: compressionSettings(),
      compressionThreads: integer('BACKUP_COMPRESSION_THREADS', Math.min(64, usableCpus(opts.cgroupRoot)), 1, 64,
        'Use 1-64; default: the CPUs the container may use (its cgroup CPU quota, at most the CPUs it may run on).'),
      // 6 h: several hundred GB of dump at single-thread gzip speed, with room; a larger database
      // raises it. A backup is then aborted as at shutdown (engine.ts).
      timeoutMs: durationVariable('BACKUP_TIMEOUT', '6h'),
      // 60 s: longer than ordinary DDL holds its lock, short enough that the application's queries
      // queued behind pg_dump's waiting lock request do not pile up for long (pg-dump-process.ts).
      lockWaitTimeoutMs: durationVariable('BACKUP_LOCK_WAIT_TIMEOUT', '60s'),
      maxUploadBytesPerSecond: byteRateVariable('BACKUP_MAX_UPLOAD_RATE'),
      encryption: encryptionSettings(),
    },
    retention: retentionSettings(drill.mode),
    drill,
    storage,
    http: {
      host: raw('HTTP_HOST') ?? '0.0.0.0',
      port: integer('HTTP_PORT', 8080, 1, 65535, 'Set it to a free TCP port (default 8080).'),
    },
    apiToken,
    log: {
      format: oneOf('LOG_FORMAT', ['json', 'plain'] as const, 'json') ?? 'json',
      level: oneOf('LOG_LEVEL', ['error', 'warn', 'info', 'debug'] as const, 'info') ?? 'info',
    },
    shutdownTimeoutMs: durationVariable('SHUTDOWN_TIMEOUT', '60s'),
    indexRefreshMs: durationVariable('INDEX_REFRESH_INTERVAL', '5m'),
    runtime: {
      path: env.PATH ?? '',
      threadPoolSize: libuvPoolSize(env.UV_THREADPOOL_SIZE),
      childEnv: inheritableEnv(env),
    },
  };

  /**
   * RESTORE_DRILL*: when, where and what to check. The drill server defaults to the backed-up one
   * (same TLS settings); the local target needs a server installation (initdb and postgres).
   */
  function drillSettings(): DrillSettings {
    const modeText = raw('RESTORE_DRILL') ?? 'off';
    let mode: DrillMode = 'off';
    let schedule: DrillSettings['schedule'] = null;
    if (modeText === 'off' || modeText === 'after-backup') {
      mode = modeText;
    } else {
      // The backup schedule's two forms in one variable: a duration, else a cron expression.
      const every = parseDuration(modeText);
      if (every !== null && every <= MAX_TIMER_MS) schedule = { intervalMs: every, cron: null };
      else if (every === null && isCron(modeText)) schedule = { intervalMs: null, cron: modeText };
      if (schedule === null) {
        report('RESTORE_DRILL', `"${modeText}" is not off, after-backup, a duration (at most 24d) or a cron expression`,
          `Use off (default), after-backup, ${DURATION_FORMS}, or ${CRON_FORM}.`);
      } else {
        mode = 'schedule';
      }
    }
    const clientsDir = raw('PG_CLIENTS_DIR') ?? DEFAULT_CLIENTS_DIR;
    const localBinDir = findLocalServer(clientsDir);
    const target = oneOf('RESTORE_DRILL_TARGET', ['local', 'server'] as const, localBinDir === null ? 'server' : 'local') ?? 'server';
    if (target === 'local' && localBinDir === null) {
      report('RESTORE_DRILL_TARGET', `local needs PostgreSQL server binaries (initdb and postgres), and there are none under ${clientsDir}/<major>/bin`,
        'Install the PostgreSQL server package (e.g. apt-get install postgresql-17), point PG_CLIENTS_DIR at a directory holding one, or set RESTORE_DRILL_TARGET=server.');
    }
    const passwordSet = (env.RESTORE_DRILL_DB_PASSWORD ?? '') !== '' || raw('RESTORE_DRILL_DB_PASSWORD_FILE') !== undefined;
    const query = raw('RESTORE_DRILL_QUERY') ?? null;
    return {
      mode,
      schedule,
      target,
      localBinDir: target === 'local' ? localBinDir : null,
      server: {
        host: raw('RESTORE_DRILL_DB_HOST') ?? db.host,
        port: raw('RESTORE_DRILL_DB_PORT') === undefined ? db.port
          : integer('RESTORE_DRILL_DB_PORT', db.port, 1, 65535, "Set it to the drill server's TCP port, or unset it to use DB_PORT."),
        user: raw('RESTORE_DRILL_DB_USER') ?? db.user,
        password: passwordSet ? secret('RESTORE_DRILL_DB_PASSWORD', false, '') : db.password,
        tls: db.tls,
      },
      query,
      identities: drillIdentities(),
    };
  }

  /**
   * BACKUP_ENCRYPTION_RECIPIENTS (comma- or newline-separated) or BACKUP_ENCRYPTION_RECIPIENTS_FILE
   * (age's recipients-file format): every recipient must parse, or the service does not start, so a
   * typo can never mean unencrypted backups (invariant 10). Neither set: no encryption.
   */
  function encryptionSettings(): Encryption | null {
    const direct = raw('BACKUP_ENCRYPTION_RECIPIENTS');
    const file = raw('BACKUP_ENCRYPTION_RECIPIENTS_FILE');
    const fix = 'Use age recipients (public keys, age1…, one per line or comma-separated), e.g. the "Public key" line age-keygen prints.';
    if (direct !== undefined && file !== undefined) {
      report('BACKUP_ENCRYPTION_RECIPIENTS', 'both BACKUP_ENCRYPTION_RECIPIENTS and BACKUP_ENCRYPTION_RECIPIENTS_FILE are set', 'Set only one of them.');
      return null;
    }
    let parsed: { recipients: string[]; problems: string[] };
    let variable: string;
    if (direct !== undefined) {
      variable = 'BACKUP_ENCRYPTION_RECIPIENTS';
      parsed = parseRecipients(direct, variable, { commas: true });
    } else if (file !== undefined) {
      variable = 'BACKUP_ENCRYPTION_RECIPIENTS_FILE';
      const text = fileText(variable, file, 'Point it at a readable age recipients file.');
      if (text === null) return null;
      parsed = parseRecipients(text, file, { commas: false });
    } else {
      return null;
    }
    for (const problem of parsed.problems) report(variable, problem, fix);
    return parsed.problems.length > 0 ? null : { format: 'age', recipients: parsed.recipients };
  }

  /** RESTORE_DRILL_IDENTITY_FILE: age's identity-file format; messages name a bad line, never its content. */
  function drillIdentities(): string[] | null {
    const file = raw('RESTORE_DRILL_IDENTITY_FILE');
    if (file === undefined) return null;
    const text = fileText('RESTORE_DRILL_IDENTITY_FILE', file, 'Point it at a readable age identity file (age-keygen -o key.txt), or unset it.');
    if (text === null) return null;
    try {
      return parseIdentities(text, file);
    } catch (error) {
      report('RESTORE_DRILL_IDENTITY_FILE', error instanceof Error ? error.message : String(error), 'Use the file age-keygen wrote (AGE-SECRET-KEY-1… lines).');
      return null;
    }
  }

  /** BACKUP_COMPRESSION, then BACKUP_COMPRESSION_LEVEL within that format's range (its default differs per format). */
  function compressionSettings(): { format: CompressionFormat; level: number } {
    const format = oneOf('BACKUP_COMPRESSION', CompressionFormatSchema.options, 'gzip') ?? 'gzip';
    const { minLevel, maxLevel } = COMPRESSION_FORMATS[format];
    const fallback = DEFAULT_COMPRESSION_LEVEL[format];
    const level = integer('BACKUP_COMPRESSION_LEVEL', fallback, minLevel, maxLevel,
      `For ${format} use ${minLevel} (fastest) to ${maxLevel} (smallest); default ${fallback}.`);
    return { format, level };
  }

  /**
   * RETENTION_*: the rules (each keeps; nothing overrides the floors) and the dry run. A
   * RETENTION_ name that is none of them is refused: a misspelt keep rule would otherwise be
   * ignored, and retention would delete what the operator meant to keep.
   */
  function retentionSettings(drillMode: DrillMode): RetentionPolicy {
    for (const name of Object.keys(env)) {
      if (!name.startsWith('RETENTION_') || (RETENTION_VARIABLES as readonly string[]).includes(name) || raw(name) === undefined) continue;
      report(name, 'not a retention setting (misspelt?)', `Use one of ${RETENTION_VARIABLES.join(', ')} (or unset it).`);
    }
    const keep = (period: string, name: string) =>
      integer(name, 0, 0, 100000, `Set for how many of the newest ${period} that have a backup the newest backup of each is kept (0, the default: off; e.g. ${name}=${KEEP_EXAMPLES[name]}).`);
    const dryRunText = raw('RETENTION_DRY_RUN')?.toLowerCase() ?? 'false';
    if (dryRunText !== 'true' && dryRunText !== 'false') report('RETENTION_DRY_RUN', `"${raw('RETENTION_DRY_RUN')}" is not true or false`, 'Set it to true (log what retention would delete, delete nothing) or false (the default).');
    return {
      days: integer('RETENTION_DAYS', 7, 0, 36500, 'Set the number of days to keep every backup (a whole number, 0-36500; default 7).'),
      minCount: integer('RETENTION_MIN_COUNT', 1, 1, 100000, 'Set how many newest backups are always kept (at least 1; default 1).'),
      keepDaily: keep('days', 'RETENTION_KEEP_DAILY'),
      keepWeekly: keep('ISO weeks', 'RETENTION_KEEP_WEEKLY'),
      keepMonthly: keep('calendar months', 'RETENTION_KEEP_MONTHLY'),
      keepYearly: keep('calendar years', 'RETENTION_KEEP_YEARLY'),
      keepNewestVerified: drillMode !== 'off',
      dryRun: dryRunText === 'true',
    };
  }

  /** A duration that drives a Node timer, so at most MAX_TIMER_MS (~24.8 days). */
  function durationVariable(name: string, fallback: string): number {
    const text = raw(name) ?? fallback;
    const ms = parseDuration(text);
    if (ms === null) {
      report(name, `"${text}" is not a duration of at least one second`, `Use e.g. ${fallback} or an ISO-8601 duration.`);
      return parseDuration(fallback) ?? 60_000;
    }
    if (ms > MAX_TIMER_MS) {
      report(name, `"${text}" is longer than a timer can wait (24 days 20 hours, 2^31-1 ms)`, `Use at most 24d, e.g. ${fallback}.`);
      return parseDuration(fallback) ?? 60_000;
    }
    return ms;
  }

  /** A rate such as 50MB/s; null when unset (no limit). */
  function byteRateVariable(name: string): number | null {
    const text = raw(name);
    if (text === undefined) return null;
    const rate = parseByteRate(text);
    if (rate === null) report(name, `"${text}" is not a rate`, `Use ${BYTE_RATE_FORMS}; or unset it for no limit.`);
    return rate;
  }

  /** A file path libpq would read; `keywords` are values that name no file. */
  function readableFile(name: string, keywords: readonly string[] = []): string | null {
    const file = raw(name) ?? null;
    if (file === null || keywords.includes(file)) return file;
    try {
      accessSync(file, fsConstants.R_OK);
    } catch (error) {
      report(name, `cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`, 'Point it at a readable PEM file, or unset it.');
    }
    return file;
  }

  /** Both keys or neither: one without the other is a typo, not a request for the provider chain. */
  function staticCredentials(): S3Settings['credentials'] {
    const accessKeyId = raw('AWS_ACCESS_KEY_ID') ?? '';
    const secretAccessKey = secret('AWS_SECRET_ACCESS_KEY', false, '');
    const sessionToken = secret('AWS_SESSION_TOKEN', false, '');
    if (accessKeyId === '' && secretAccessKey === '') return null;
    if (accessKeyId === '' || secretAccessKey === '') {
      report(accessKeyId === '' ? 'AWS_ACCESS_KEY_ID' : 'AWS_SECRET_ACCESS_KEY',
        'AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together',
        'Set both (or AWS_SECRET_ACCESS_KEY_FILE), or neither to use the AWS default credential chain (IRSA, EKS Pod Identity, instance roles, shared config files).');
      return null;
    }
    return { accessKeyId, secretAccessKey, sessionToken: sessionToken === '' ? null : sessionToken };
  }

  return { config: deepFreeze(config), problems };
}

/** libuv's own rule: UV_THREADPOOL_SIZE if it is a positive integer (capped at 1024), else 4. */
function libuvPoolSize(value: string | undefined): number {
  const size = Number(value);
  return Number.isInteger(size) && size > 0 ? Math.min(size, 1024) : 4;
}

/**
 * gzip 5: with Node's zlib it is smaller than `gzip -6` and ~25% cheaper than level 6; zstd 3:
 * zstd's own default, as small as gzip 5 for under half its CPU (backup/compressor.ts).
 */
const DEFAULT_COMPRESSION_LEVEL: Record<CompressionFormat, number> = { gzip: 5, zstd: 3 };

const DURATION_FORMS = 'an ISO-8601 duration (PT24H, P1D, PT30M) or shorthand (24h, 12h, 30m, 90s, 1h30m)';
const CRON_FORM = 'a cron expression of five or six fields, e.g. "0 3 * * *" for 03:00 every day';

function isCron(text: string): boolean {
  return validateCronExpression(text).valid;
}

function deepFreeze<T extends object>(value: T): T {
  for (const child of Object.values(value)) {
    if (child !== null && typeof child === 'object') deepFreeze(child as object);
  }
  return Object.freeze(value);
}
