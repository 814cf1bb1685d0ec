// The service process with bad configuration: one message listing every problem, exit 1, and no
// port opened. A wrong env var must never get as far as a half-started service.
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePort, startService } from './harness/index.js';

const portOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });

describe('the service with invalid configuration', () => {
  it('prints every problem at once, never a secret, and exits 1 before opening a port', async () => {
    const port = await freePort();
    const secret = 'short-but-secret-token';
    const password = 'the-db-password-123';
    const start = startService(
      { HTTP_PORT: String(port), API_TOKEN: secret, DB_PASSWORD: password, BACKUP_INTERVAL: 'sometimes', STORAGE_BACKEND: 'ftp' },
      { timeoutMs: 15_000 },
    );
    const error = await start.then(
      () => new Error('the service started'),
      (e: unknown) => e as Error,
    );
    const output = error.message;
    expect(output).toMatch(/exit(ed)? .*1|code 1/);
    for (const name of ['DB_HOST', 'DB_NAME', 'DB_USER', 'STORAGE_BACKEND', 'BACKUP_INTERVAL', 'API_TOKEN']) expect(output).toContain(`${name}:`);
    expect(output).toContain('"sometimes" is not a duration');
    expect(output).toContain('openssl rand -hex 32');
    expect(output).not.toContain(secret);
    expect(output).not.toContain(password);
    expect(await portOpen(port)).toBe(false);
  });

  it('names an unusable backup directory and how to fix it', async () => {
    const port = await freePort();
    const error = await startService(
      {
        HTTP_PORT: String(port), API_TOKEN: 'x'.repeat(40), DB_HOST: '127.0.0.1', DB_NAME: 'app', DB_USER: 'app', DB_PASSWORD: 'pw',
        STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: '/nonexistent/backups',
      },
      { timeoutMs: 15_000 },
    ).then(
      () => new Error('the service started'),
      (e: unknown) => e as Error,
    );
    expect(error.message).toContain('/nonexistent/backups');
    expect(await portOpen(port)).toBe(false);
  });

  it('reports a missing backup directory together with the other problems', async () => {
    const port = await freePort();
    const error = await startService(
      {
        HTTP_PORT: String(port), API_TOKEN: 'x'.repeat(40), DB_HOST: '127.0.0.1', DB_NAME: 'app', DB_USER: 'app', DB_PASSWORD: 'pw',
        STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: '/nonexistent/backups', BACKUP_INTERVAL: 'sometimes',
      },
      { timeoutMs: 15_000 },
    ).then(
      () => new Error('the service started'),
      (e: unknown) => e as Error,
    );
    expect(error.message).toContain('(2 problems)');
    expect(error.message).toContain('BACKUP_INTERVAL: "sometimes" is not a duration');
    expect(error.message).toMatch(/BACKUP_LOCAL_DIR: backup directory \/nonexistent\/backups does not exist/);
    expect(await portOpen(port)).toBe(false);
  });
});
