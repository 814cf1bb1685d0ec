import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { BACKUP_NAME_PREFIX_PATTERN } from '@db-backup-service/contract';
import { validateCronExpression } from 'cron';
import { formatIsoDuration, parseDuration } from './duration.js';

/** Where S3 backups go; also the options of storage/s3-storage.ts. */
export interface S3Settings {
  readonly bucket: string;
  /** Key prefix without leading/trailing slashes; '' stores at the bucket's root. */
  readonly prefix: string;
  /** Custom endpoint (MinIO, Ceph, fauxqs...); null for AWS S3. Implies path-style addressing. */
  readonly endpoint: string | null;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** null: sized per upload from the database size (see choosePartSize in storage/s3-storage.ts). */
  readonly partSizeBytes: number | null;
}

export type StorageConfig = { readonly backend: 'local'; readonly dir: string } | ({ readonly backend: 's3' } & S3Settings);

/** The service's whole configuration, parsed once from the environment and frozen. */
export interface Config {
  readonly db: { readonly host: string; readonly port: number; readonly name: string; readonly user: string; readonly password: string };
  readonly pgBinDir: string | null;
  readonly schedule: { readonly intervalMs: number; readonly intervalIso: string; readonly cron: string | null };
  readonly backup: {
    readonly namePrefix: string;
    readonly compressionLevel: number;
    readonly compressionThreads: number;
    /** BACKUP_TIMEOUT: a backup running longer is aborted; also the age below which clean-up leaves another writer's leftovers alone. */
    readonly timeoutMs: number;
  };
  readonly retention: { readonly days: number; readonly minCount: number };
  readonly storage: StorageConfig;
  readonly http: { readonly host: string; readonly port: number };
  readonly apiToken: string;
  readonly log: { readonly format: 'json' | 'plain'; readonly level: string };
  readonly shutdownTimeoutMs: number;
  readonly indexRefreshMs: number;
}

/** Variables whose values are never echoed back, and which also accept `<NAME>_FILE`. */
export const SECRET_VARIABLES = ['DB_PASSWORD', 'API_TOKEN', 'AWS_SECRET_ACCESS_KEY'] as const;

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
  const lines = problems.map((p) => `  - ${p.variable}: ${p.problem}. ${p.fix}`);
  return `Invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${lines.join('\n')}`;
}

const MIN_TOKEN_LENGTH = 32;
const MIB = 1024 * 1024;

/**
 * Parses the environment into a Config. Collects every problem before failing, so an operator
 * fixes them all in one round; never includes a secret's value in a message.
 */
export function loadConfig(env: NodeJS.ProcessEnv): Config {
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
  const secret = (name: (typeof SECRET_VARIABLES)[number], needed: boolean, fix: string): string => {
    const direct = env[name];
    const file = raw(`${name}_FILE`);
    if (direct !== undefined && direct !== '' && file !== undefined) {
      report(name, `both ${name} and ${name}_FILE are set`, `Set only one of them.`);
      return '';
    }
    if (file !== undefined) {
      try {
        // Docker/Kubernetes secret files usually end with a newline that is not part of the secret.
        const value = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
        if (value === '') report(`${name}_FILE`, `the file ${file} is empty`, `Put the value in that file.`);
        return value;
      } catch (error) {
        const reason = (error as NodeJS.ErrnoException).code ?? 'unreadable';
        report(`${name}_FILE`, `cannot read ${file} (${reason})`, `Point it at a readable file holding the value.`);
        return '';
      }
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
  };

  const intervalText = raw('BACKUP_INTERVAL') ?? '24h';
  let intervalMs = parseDuration(intervalText);
  if (intervalMs === null) {
    report('BACKUP_INTERVAL', `"${intervalText}" is not a duration of at least one second`,
      'Use an ISO-8601 duration (PT24H, P1D, PT30M) or shorthand (24h, 12h, 30m, 90s, 1h30m).');
    intervalMs = 24 * 3600 * 1000;
  }
  const cron = raw('BACKUP_CRON') ?? null;
  if (cron !== null && !validateCronExpression(cron).valid) {
    report('BACKUP_CRON', `"${cron}" is not a valid cron expression`, 'Use five or six fields, e.g. "0 3 * * *" for 03:00 every day, or unset it to use BACKUP_INTERVAL.');
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
      accessKeyId: required('AWS_ACCESS_KEY_ID', 'Set it to the S3 access key id.'),
      secretAccessKey: secret('AWS_SECRET_ACCESS_KEY', true, 'Set AWS_SECRET_ACCESS_KEY, or AWS_SECRET_ACCESS_KEY_FILE to a file holding it.'),
      partSizeBytes: raw('S3_PART_SIZE_MB') === undefined ? null
        : integer('S3_PART_SIZE_MB', 16, 5, 5120, 'Set the multipart part size in MiB (5-5120), or unset it to size parts from the database size.') * MIB,
    };
  }

  const apiToken = secret('API_TOKEN', true, 'Generate one with: openssl rand -hex 32');
  if (apiToken !== '' && apiToken.length < MIN_TOKEN_LENGTH) {
    report('API_TOKEN', `too short (${apiToken.length} characters; at least ${MIN_TOKEN_LENGTH} needed)`, 'Generate one with: openssl rand -hex 32');
  }

  const config: Config = {
    db,
    pgBinDir: raw('PG_BIN_DIR') ?? null,
    schedule: { intervalMs, intervalIso: formatIsoDuration(intervalMs), cron },
    backup: {
      namePrefix,
      compressionLevel: integer('BACKUP_COMPRESSION_LEVEL', 6, 1, 9, 'Use 1 (fastest) to 9 (smallest); default 6.'),
      compressionThreads: integer('BACKUP_COMPRESSION_THREADS', Math.max(1, cpus().length), 1, 64, 'Use 1-64; default: the number of CPU cores.'),
      timeoutMs: durationVariable('BACKUP_TIMEOUT', '6h'),
    },
    retention: {
      days: integer('RETENTION_DAYS', 7, 0, 36500, 'Set the number of days to keep backups (default 7).'),
      minCount: integer('RETENTION_MIN_COUNT', 1, 1, 100000, 'Set how many newest backups are always kept (at least 1; default 1).'),
    },
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
  };

  function durationVariable(name: string, fallback: string): number {
    const text = raw(name) ?? fallback;
    const ms = parseDuration(text);
    if (ms === null) {
      report(name, `"${text}" is not a duration of at least one second`, `Use e.g. ${fallback} or an ISO-8601 duration.`);
      return parseDuration(fallback) ?? 60_000;
    }
    return ms;
  }

  if (problems.length > 0) throw new ConfigError(problems);
  return deepFreeze(config);
}

function deepFreeze<T extends object>(value: T): T {
  for (const child of Object.values(value)) {
    if (child !== null && typeof child === 'object') deepFreeze(child as object);
  }
  return Object.freeze(value);
}
