// startService when its port is taken: it must fail, and leave no engine running behind it (no
// scheduler starting backups without an API).
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { CronJob } from 'cron';
import winston from 'winston';
import { expect, it } from 'vitest';
import { startService } from './main.js';

it('stops the engine again when the port is taken (EADDRINUSE)', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'main-test-'));
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  const port = (taken.address() as { port: number }).port;
  const lines: string[] = [];
  const logger = winston.createLogger({
    format: winston.format.json(),
    transports: [new winston.transports.Stream({ stream: new Writable({ write: (chunk, _e, done) => (lines.push(String(chunk)), done()) }) })],
  });
  try {
    const attempt = startService(
      {
        DB_HOST: '127.0.0.1', DB_PORT: '1', DB_NAME: 'app', DB_USER: 'app', DB_PASSWORD: 'pw', STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: dir,
        API_TOKEN: randomBytes(24).toString('hex'), HTTP_HOST: '127.0.0.1', HTTP_PORT: String(port),
        // A scheduler left running would start (and, without a database, fail) a backup every second.
        BACKUP_CRON: '* * * * * *',
      },
      logger,
    );
    await expect(attempt).rejects.toMatchObject({ code: 'EADDRINUSE' });
    // An observation window of three ticks of the same cron expression: a running scheduler has
    // fired by then (the unfixed code logs "backup started" on the first).
    let ticks = 0;
    await new Promise<void>((resolve) => {
      const watch = CronJob.from({ cronTime: '* * * * * *', start: true, onTick: () => void (++ticks >= 3 && (watch.stop(), resolve())) });
    });
    expect(lines.filter((l) => l.includes('backup started'))).toEqual([]);
  } finally {
    taken.close();
    await rm(dir, { recursive: true, force: true });
  }
});
