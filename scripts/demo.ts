// `npm run demo`: the service on a throwaway PostgreSQL with sample data and local storage, a first
// backup, and curl and db-restore commands to try. Ctrl-C or SIGTERM (what `timeout` or a supervisor
// sends) stops the service, removes the cluster and its temp dir, and keeps the backups.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, pollUntil, startPostgres, type PostgresCluster } from '../test/harness/index.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const backupDir = `${root}demo-data/backups`;

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer().once('error', () => resolve(false)).listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function loadSampleData(pg: PostgresCluster): Promise<void> {
  await pg.query(`
    CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE, created_at timestamptz DEFAULT now());
    CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers(id), total numeric(10,2), items jsonb, placed_at timestamptz);
    INSERT INTO customers (name, email) SELECT 'Customer ' || g, 'customer' || g || '@example.com' FROM generate_series(1, 2000) g;
    INSERT INTO orders (customer_id, total, items, placed_at)
      SELECT 1 + g % 2000, round((random() * 500)::numeric, 2), jsonb_build_array(jsonb_build_object('sku', 'SKU-' || g % 97, 'qty', 1 + g % 5)),
             now() - (g || ' minutes')::interval
      FROM generate_series(1, 20000) g;
    CREATE INDEX orders_customer ON orders (customer_id);
    CREATE VIEW order_totals AS SELECT customer_id, sum(total) AS total FROM orders GROUP BY customer_id;`);
}

/** Single-quoted for a POSIX shell, so a printed command can be pasted as it is. */
const sh = (value: string): string => `'${value.replaceAll("'", `'\\''`)}'`;

// Set as soon as the demo has them, so a signal at any point stops exactly what exists by then.
let cluster: Promise<PostgresCluster> | undefined;
let service: ChildProcess | undefined;
let stopping: Promise<void> | undefined;

async function shutdown(code: number): Promise<void> {
  // No pid: the spawn itself failed, and no 'exit' will come.
  if (service?.pid !== undefined && service.exitCode === null && service.signalCode === null) {
    service.kill('SIGTERM');
    await once(service, 'exit');
  }
  // A cluster still starting is waited for, so it is removed rather than left behind.
  const pg = await cluster?.catch(() => undefined);
  await pg?.destroy();
  console.log(`demo: stopped the service${pg ? ` and removed the PostgreSQL cluster (${pg.baseDir})` : ''}; the backups stay in ${backupDir}`);
  process.exit(code);
}
const stop = (code: number): Promise<void> => (stopping ??= shutdown(code));

async function main(): Promise<void> {
  console.log('demo: starting a throwaway PostgreSQL cluster...');
  cluster = startPostgres({ database: 'shop' });
  const pg = await cluster;
  await loadSampleData(pg);
  // Backups of earlier runs stay (the stop message promises it); the service lists them too.
  mkdirSync(backupDir, { recursive: true });
  const earlier = readdirSync(backupDir).filter((f) => f.endsWith('.sql.gz')).length;

  // 8080 as in the docs' examples; when something else has it, any free port (the banner says which).
  const port = (await portFree(8080)) ? 8080 : await freePort();
  const token = randomBytes(32).toString('hex');
  if (stopping) return;
  // The command `npm ci` linked (what `npx db-backup-service` runs), started directly so signals
  // reach it without an npm process in between; this Node first on PATH for its `env node`.
  service = spawn(`${root}node_modules/.bin/db-backup-service`, [], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: {
      ...process.env,
      PATH: [dirname(process.execPath), process.env.PATH].join(delimiter),
      DB_HOST: pg.host, DB_PORT: String(pg.port), DB_NAME: 'shop', DB_USER: pg.user, DB_PASSWORD: pg.password,
      STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: backupDir, API_TOKEN: token, HTTP_PORT: String(port), LOG_FORMAT: 'plain',
      // Each backup is restored into a throwaway cluster and counted: the first one shows its drill.
      RESTORE_DRILL: 'after-backup',
    },
  });
  service.once('error', (error) => {
    console.error(`demo: cannot start the service: ${error.message} (run \`bash scripts/setup.sh\` or \`npm ci\` first)`);
    void stop(1);
  });
  service.once('exit', (code, signal) => {
    if (!stopping) {
      console.error(`demo: the service exited (${code ?? signal})`);
      void stop(1);
    }
  });

  const base = `http://127.0.0.1:${port}`;
  const auth = { Authorization: `Bearer ${token}` };
  await pollUntil(async () => ((await fetch(`${base}/health`)).ok ? true : undefined), { timeoutMs: 30_000, what: 'the service to become healthy' });
  const trigger = (await (await fetch(`${base}/api/v1/backups`, { method: 'POST', headers: auth })).json()) as { jobId: string };
  const job = await pollUntil(
    async () => {
      const j = (await (await fetch(`${base}/api/v1/backups/jobs/${trigger.jobId}`, { headers: auth })).json()) as { status: string; backupId: string | null; errorMessage: string | null };
      return j.status === 'succeeded' || j.status === 'failed' ? j : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 250, what: 'the first backup' },
  );
  if (job.status !== 'succeeded') throw new Error(`the first backup failed: ${job.errorMessage}`);
  // after-backup: the drill starts as the backup ends; its result lands in the backup's `drill`.
  const drill = await pollUntil(
    async () => {
      const list = (await (await fetch(`${base}/api/v1/backups`, { headers: auth })).json()) as { id: string; drill: { status: string; rowsChecked: number; tablesChecked: number; durationMs: number; detail: string | null } | null }[];
      return list.find((b) => b.id === job.backupId)?.drill ?? undefined;
    },
    { timeoutMs: 60_000, intervalMs: 250, what: "the first backup's restore drill" },
  );
  const drillText =
    drill.status === 'passed'
      ? `passed: restored into a throwaway cluster, ${drill.tablesChecked} tables and ${drill.rowsChecked} rows counted, in ${drill.durationMs} ms`
      : `FAILED: ${drill.detail}`;

  // The cluster's password is printed on purpose: it is a throwaway cluster that exists only while
  // the demo runs, and db-restore needs it.
  console.log(`
================================================================================
db-backup-service is running on ${base} (PostgreSQL database "shop" on port ${pg.port}).
First backup: ${backupDir}/${job.backupId}${earlier > 0 ? `\n(${earlier} backup(s) of earlier demo runs are listed too.)` : ''}
Its restore drill ${drillText}.

  export API_TOKEN=${token}
  curl -H "Authorization: Bearer $API_TOKEN" ${base}/api/v1/backups
  curl -X POST -H "Authorization: Bearer $API_TOKEN" ${base}/api/v1/backups
  curl -OJ -H "Authorization: Bearer $API_TOKEN" ${base}/api/v1/backups/latest/download
  curl -X POST -H "Authorization: Bearer $API_TOKEN" ${base}/api/v1/backups/latest/drill
  curl -H "Authorization: Bearer $API_TOKEN" ${base}/api/v1/retention     # what retention keeps, and why
  curl -X PUT -H "Authorization: Bearer $API_TOKEN" -d '{"reason":"demo"}' ${base}/api/v1/backups/${job.backupId}/pin
  curl ${base}/health
  curl ${base}/info
  open ${base}/docs in a browser for the API docs

db-restore against the demo's database (bash; list, then restore the newest into "shop"):

  export DB_HOST=${pg.host} DB_PORT=${pg.port} DB_NAME=shop DB_USER=${pg.user} DB_PASSWORD=${sh(pg.password)}
  export STORAGE_BACKEND=local BACKUP_LOCAL_DIR=${sh(backupDir)}
  db-restore() { ${sh(process.execPath)} ${sh(`${root}cli/dist/bin.js`)} "$@"; }
  db-restore
  db-restore --drill latest
  db-restore --force latest

PostgreSQL's throwaway cluster is in ${pg.baseDir}.
Ctrl-C stops the service and removes the cluster; the backups stay in ${backupDir}.
================================================================================
`);
}

process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));
main().catch((error: unknown) => {
  // After a signal, the cluster going away under a running step is expected, not a failure.
  if (stopping) return;
  console.error(`demo failed: ${(error as Error).message}`);
  void stop(1);
});
