// `npm run demo`: the service on a throwaway PostgreSQL with sample data and local storage, a first
// backup, and curl commands to try. Ctrl-C stops the service and deletes the cluster.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { pollUntil, startPostgres, type PostgresCluster } from '../test/harness/index.js';

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

async function main(): Promise<void> {
  console.log('demo: starting a throwaway PostgreSQL cluster...');
  const pg = await startPostgres({ database: 'shop' });
  await loadSampleData(pg);
  rmSync(backupDir, { recursive: true, force: true });
  mkdirSync(backupDir, { recursive: true });

  const port = (await portFree(8080)) ? 8080 : 18080;
  const token = randomBytes(32).toString('hex');
  const service = spawn(process.execPath, [`${root}server/dist/bin.js`], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: {
      ...process.env,
      DB_HOST: pg.host, DB_PORT: String(pg.port), DB_NAME: 'shop', DB_USER: pg.user, DB_PASSWORD: pg.password,
      STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: backupDir, API_TOKEN: token, HTTP_PORT: String(port), LOG_FORMAT: 'plain',
    },
  });
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    service.kill('SIGTERM');
    if (service.exitCode === null) await new Promise((resolve) => service.once('exit', resolve));
    await pg.destroy();
    console.log('demo: stopped the service and removed the PostgreSQL cluster (backups stay in demo-data/backups).');
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
  service.once('exit', (code) => {
    if (!stopping) {
      console.error(`demo: the service exited (${code})`);
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

  console.log(`
================================================================================
db-backup-service is running on ${base} (PostgreSQL database "shop" on port ${pg.port}).
First backup: ${backupDir}/${job.backupId}

  export API_TOKEN=${token}
  curl -H "Authorization: Bearer $API_TOKEN" ${base}/api/v1/backups
  curl -X POST -H "Authorization: Bearer $API_TOKEN" ${base}/api/v1/backups
  curl -OJ -H "Authorization: Bearer $API_TOKEN" ${base}/api/v1/backups/latest/download
  curl ${base}/health
  curl ${base}/info
  open ${base}/docs in a browser for the API docs

Ctrl-C stops everything.
================================================================================
`);
}

main().catch((error: unknown) => {
  console.error(`demo failed: ${(error as Error).message}`);
  process.exit(1);
});
