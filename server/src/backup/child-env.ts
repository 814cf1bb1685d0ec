import { SECRET_VARIABLES } from '../config/config.js';

/**
 * The environment for a PostgreSQL client child process: the service's own environment (PATH,
 * locale, PGSSLMODE and friends an operator may rely on) without the service's secrets, which the
 * child has no business seeing. Connection settings go in PG* variables, never in argv, because
 * argv is world-readable in /proc (invariant 6).
 */
export function pgClientEnv(
  base: NodeJS.ProcessEnv,
  db?: { host: string; port: number; name: string; user: string; password: string },
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  for (const name of SECRET_VARIABLES) {
    delete env[name];
    delete env[`${name}_FILE`];
  }
  delete env.AWS_SESSION_TOKEN;
  // Inherited connection settings would silently override or mix with the configured ones.
  for (const name of ['PGHOST', 'PGHOSTADDR', 'PGPORT', 'PGUSER', 'PGDATABASE', 'PGPASSWORD', 'PGPASSFILE', 'PGSERVICE']) {
    delete env[name];
  }
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
