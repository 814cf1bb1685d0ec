import { readFileSync } from 'node:fs';
import { PG_SSL_MODES, type PgSslMode, type PgTlsSettings } from '@db-backup-service/sdk';
import { CliError, ExitCode } from './exit-codes.js';

/*
 * The few variables db-restore shares with the service, parsed the same way (trimmed values,
 * `<NAME>_FILE` for secrets, every problem reported at once). Duplicated on purpose instead of
 * imported: dependencies point contract <- sdk <- cli, and the CLI must not pull in the server.
 */

/** Where and as whom to restore. */
export interface DbSettings {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  /** The target database (DB_NAME, or --database). */
  readonly database: string;
  /** PGSSLMODE and friends, with libpq's meaning (as the service and psql read them). */
  readonly tls: PgTlsSettings;
}

/** Where backups come from: the directory itself, or the running service's API (S3 backend). */
export type StorageSettings =
  | { readonly backend: 'local'; readonly dir: string }
  | { readonly backend: 's3'; readonly serviceUrl: string; readonly apiToken: string };

export interface CliConfig {
  /** null when the command does not touch a database (listing). */
  readonly db: DbSettings | null;
  /** null when the command does not read storage (--file). */
  readonly storage: StorageSettings | null;
  readonly pgBinDir: string | null;
  /** PG_CLIENTS_DIR: one `<major>/bin` per installed client; null = /usr/lib/postgresql. */
  readonly clientsDir: string | null;
  readonly namePrefix: string;
  /**
   * DB_NAME as the service has it (whatever --database says): whose backups db-restore picks from
   * a shared directory (invariant 11). null when unset.
   */
  readonly serviceDatabase: string | null;
}

export interface ConfigNeeds {
  readonly database: boolean;
  readonly storage: boolean;
  /** --database: replaces DB_NAME, which is then not required. */
  readonly databaseOverride?: string | undefined;
  /** --service-url: replaces DB_RESTORE_SERVICE_URL. */
  readonly serviceUrlOverride?: string | undefined;
}

const NAME_PREFIX = /^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/;

/**
 * Reads what the command needs from the environment. Throws a CliError (exit 2) listing every
 * problem; a secret's value never appears in it.
 */
export function loadCliConfig(env: NodeJS.ProcessEnv, needs: ConfigNeeds): CliConfig {
  const problems: string[] = [];
  const report = (variable: string, problem: string, fix: string): void => {
    problems.push(`  - ${variable}: ${problem}. ${fix}`);
  };
  const raw = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === undefined || value === '' ? undefined : value;
  };
  const required = (name: string, fix: string): string => {
    const value = raw(name);
    if (value === undefined) report(name, 'required but not set', fix);
    return value ?? '';
  };
  const secret = (name: 'DB_PASSWORD' | 'API_TOKEN', fix: string): string => {
    const direct = env[name];
    const file = raw(`${name}_FILE`);
    if (direct !== undefined && direct !== '' && file !== undefined) {
      report(name, `both ${name} and ${name}_FILE are set`, 'Set only one of them.');
      return '';
    }
    if (file !== undefined) {
      try {
        // Secret files (Docker/Kubernetes) usually end with a newline that is not part of the value.
        const value = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
        if (value === '') report(`${name}_FILE`, `the file ${file} is empty`, 'Put the value in that file.');
        return value;
      } catch (error) {
        const reason = (error as NodeJS.ErrnoException).code ?? 'unreadable';
        report(`${name}_FILE`, `cannot read ${file} (${reason})`, 'Point it at a readable file holding the value.');
        return '';
      }
    }
    if (direct === undefined || direct === '') report(name, 'required but not set', fix);
    return direct ?? '';
  };
  const port = (name: string, fallback: number): number => {
    const value = raw(name);
    if (value === undefined) return fallback;
    if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 65535) {
      report(name, `"${value}" is not a TCP port (1-65535)`, `Unset it for the default ${fallback}.`);
      return fallback;
    }
    return Number(value);
  };

  // libpq's default; the value is checked here so that a typo fails before anything is touched.
  const sslMode = (): PgSslMode => {
    const value = raw('PGSSLMODE') ?? 'prefer';
    if ((PG_SSL_MODES as readonly string[]).includes(value)) return value as PgSslMode;
    report('PGSSLMODE', `"${value}" is not one of ${PG_SSL_MODES.join(', ')}`, 'Use a libpq sslmode, or unset it for prefer.');
    return 'prefer';
  };

  let db: DbSettings | null = null;
  if (needs.database) {
    const override = needs.databaseOverride?.trim();
    db = {
      host: required('DB_HOST', "Set it to the PostgreSQL server's host name, as for the service."),
      port: port('DB_PORT', 5432),
      user: required('DB_USER', 'Set it to a role that owns the target database and has CREATEDB (or a superuser).'),
      password: secret('DB_PASSWORD', 'Set DB_PASSWORD, or DB_PASSWORD_FILE to a file holding it.'),
      database: override !== undefined && override !== '' ? override : required('DB_NAME', 'Set it to the database to restore into, or pass --database NAME.'),
      tls: { mode: sslMode(), rootCert: raw('PGSSLROOTCERT') ?? null, cert: raw('PGSSLCERT') ?? null, key: raw('PGSSLKEY') ?? null },
    };
  }

  let storage: StorageSettings | null = null;
  if (needs.storage) {
    const backend = raw('STORAGE_BACKEND');
    if (backend === 'local') {
      storage = { backend: 'local', dir: required('BACKUP_LOCAL_DIR', 'Set it to the directory the service writes backups to.') };
    } else if (backend === 's3') {
      const serviceUrl = needs.serviceUrlOverride?.trim() || raw('DB_RESTORE_SERVICE_URL') || `http://127.0.0.1:${port('HTTP_PORT', 8080)}`;
      if (!/^https?:\/\/[^\s/@]+(?:\/\S*)?$/.test(serviceUrl)) {
        report(needs.serviceUrlOverride ? '--service-url' : 'DB_RESTORE_SERVICE_URL', `"${serviceUrl}" is not an http(s) URL without credentials`, 'Use e.g. http://127.0.0.1:8080.');
      }
      storage = {
        backend: 's3',
        serviceUrl,
        apiToken: secret('API_TOKEN', 'db-restore downloads S3 backups through the service: set the same API_TOKEN (or API_TOKEN_FILE) as the service.'),
      };
    } else if (backend === undefined) {
      report('STORAGE_BACKEND', 'required but not set', 'Set it to local or s3, as for the service (or restore a file with --file PATH).');
    } else {
      report('STORAGE_BACKEND', `"${backend}" is not one of local, s3`, 'Set it to local or s3.');
    }
  }

  const namePrefix = raw('BACKUP_NAME_PREFIX') ?? 'backup';
  if (!NAME_PREFIX.test(namePrefix)) {
    report('BACKUP_NAME_PREFIX', `"${namePrefix}" is not allowed`, 'Use 1-64 letters, digits or "-", as for the service.');
  }

  if (problems.length > 0) {
    const s = problems.length === 1 ? '' : 's';
    throw new CliError(ExitCode.USAGE, `Invalid configuration (${problems.length} problem${s}):\n${problems.join('\n')}`);
  }
  return Object.freeze({ db: db && Object.freeze(db), storage: storage && Object.freeze(storage), pgBinDir: raw('PG_BIN_DIR') ?? null, clientsDir: raw('PG_CLIENTS_DIR') ?? null, namePrefix, serviceDatabase: raw('DB_NAME') ?? null });
}
