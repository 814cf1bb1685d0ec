import { SECRET_VARIABLES } from '@db-backup-service/contract';

/** Connection settings a child must take from the configuration only, never inherit. */
const PG_CONNECTION_VARIABLES = ['PGHOST', 'PGHOSTADDR', 'PGPORT', 'PGUSER', 'PGDATABASE', 'PGPASSWORD', 'PGPASSFILE', 'PGSERVICE'];

/**
 * What a child process may inherit from the service's environment: everything (PATH, locale,
 * PGSSLMODE/PGSSLROOTCERT/PGSSLCERT/PGSSLKEY and friends an operator relies on, which libpq reads
 * itself) except the service's secrets, which a child has no business seeing (invariant 6), and
 * PostgreSQL connection settings, which would silently override or mix with the configured ones.
 */
export function inheritableEnv(base: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(base)) if (value !== undefined) env[name] = value;
  for (const name of SECRET_VARIABLES) {
    delete env[name];
    delete env[`${name}_FILE`];
  }
  for (const name of PG_CONNECTION_VARIABLES) delete env[name];
  // Every AWS_* as well: besides keys, the default credential chain reads tokens and token files
  // (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_CONTAINER_AUTHORIZATION_TOKEN) that are nobody else's.
  for (const name of Object.keys(env)) if (name.startsWith('AWS_')) delete env[name];
  return env;
}

/**
 * The environment for a PostgreSQL client child process (pg_dump, psql): `base` (normally
 * config.runtime.childEnv) made inheritable, plus the configured connection settings. They go in
 * PG* variables, never in argv, because argv is world-readable in /proc (invariant 6).
 */
export function pgClientEnv(
  base: Readonly<Record<string, string | undefined>>,
  db?: { host: string; port: number; name: string; user: string; password: string },
): Record<string, string> {
  const env = inheritableEnv(base);
  if (db) {
    env.PGHOST = db.host;
    env.PGPORT = String(db.port);
    env.PGDATABASE = db.name;
    env.PGUSER = db.user;
    env.PGPASSWORD = db.password;
    env.PGAPPNAME = 'db-backup-service';
    env.PGCONNECT_TIMEOUT ??= '10';
  }
  return env;
}
