// The interactive API docs at /docs, loaded in a real (headless) Chromium from the running
// service: the page must render every endpoint from /openapi.json with assets served locally.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiContract } from '@db-backup-service/contract';
import { freePort, startPostgres, startService, type PostgresCluster, type ServiceProcess } from './harness/index.js';

let pg: PostgresCluster;
let svc: ServiceProcess;
let browser: Browser;
let dir: string;

beforeAll(async () => {
  pg = await startPostgres();
  dir = await mkdtemp(join(tmpdir(), 'docs-'));
  svc = await startService({
    DB_HOST: pg.host, DB_PORT: String(pg.port), DB_NAME: 'postgres', DB_USER: pg.user, DB_PASSWORD: pg.password,
    STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: dir, API_TOKEN: randomBytes(32).toString('hex'), HTTP_PORT: String(await freePort()),
  });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    // The machine has no network: background services would only fail and retry.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    // (playwright gives the browser a fresh, empty profile directory of its own)
  });
});
afterAll(async () => {
  await browser?.close();
  await svc?.stop();
  await pg?.destroy();
  await rm(dir, { recursive: true, force: true });
});

describe('/docs', () => {
  it('renders every endpoint of the API from local assets', async () => {
    const page = await browser.newPage();
    const external: string[] = [];
    page.on('request', (request) => {
      if (!request.url().startsWith(svc.baseUrl)) external.push(request.url());
    });
    await page.goto(`${svc.baseUrl}/docs`);
    await page.waitForSelector('.opblock', { timeout: 30_000 });
    const text = await page.locator('#swagger-ui').innerText();
    for (const path of ['/api/v1/backups', '/api/v1/backups/jobs/{jobId}', '/api/v1/backups/latest', '/api/v1/backups/{id}/download', '/api/v1/backups/latest/download', '/health', '/health/live', '/info']) {
      expect(text).toContain(path);
    }
    expect(text).toContain('db-backup-service');
    expect(await page.locator('.opblock').count()).toBe(Object.keys(apiContract).length);
    expect(external).toEqual([]);
    await page.screenshot({ path: join(dir, 'docs.png') });
  });
});
