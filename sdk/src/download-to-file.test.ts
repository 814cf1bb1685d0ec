import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createClient } from './client.js';
import { BackupServiceError } from './errors.js';
import { json, serveBackup, serveHalfThenCut, sha256Hex, startTestServer, TOKEN, type TestServer } from './test-server.test-helper.js';

const ID = 'backup_20260510T010000Z.sql.gz';
// Several chunks' worth, so a cut really lands mid-body.
const DATA = randomBytes(3 * 1024 * 1024 + 123);

let dir: string;
let server: TestServer | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sdk-download-'));
});
afterEach(async () => {
  await server?.close();
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

describe('downloadToFile', () => {
  it('resumes with Range and If-Range after a cut connection and yields the right SHA-256', async () => {
    const half = Math.floor(DATA.length / 2);
    server = await startTestServer((req, res, n) => {
      if (n === 1) serveHalfThenCut(res, ID, DATA, half);
      else serveBackup(req, res, ID, DATA);
    });
    const client = createClient({ baseUrl: server.baseUrl, token: TOKEN });
    const target = join(dir, 'out.sql.gz');
    const progress: number[] = [];

    const result = await client.downloadToFile('latest', target, { onProgress: (p) => progress.push(p.receivedBytes) });

    expect(result).toMatchObject({ id: ID, path: target, sizeBytes: DATA.length, sha256: sha256Hex(DATA), resumes: 1 });
    expect(sha256Hex(await readFile(target))).toBe(sha256Hex(DATA));
    expect(existsSync(`${target}.partial`)).toBe(false);
    expect(server.requests).toHaveLength(2);
    const [first, second] = server.requests;
    expect(first?.url).toBe('/api/v1/backups/latest/download');
    // The resume names the id "latest" resolved to: latest may move on between the attempts.
    expect(second?.url).toBe(`/api/v1/backups/${ID}/download`);
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(second?.headers.range ?? '')?.[1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(half);
    expect(second?.headers['if-range']).toBe(`"${sha256Hex(DATA)}"`);
    expect(progress.at(-1)).toBe(DATA.length);
  });

  it('starts over when the service answers a resume with the whole body (200)', async () => {
    server = await startTestServer((req, res, n) => {
      if (n === 1) serveHalfThenCut(res, ID, DATA, 100_000);
      else serveBackup(req, res, ID, DATA, { ranges: false });
    });
    const client = createClient({ baseUrl: server.baseUrl, token: TOKEN });
    const target = join(dir, ID);
    const result = await client.downloadToFile(ID, target);
    expect(result.sha256).toBe(sha256Hex(DATA));
    expect((await readFile(target)).equals(DATA)).toBe(true);
  });

  it('resumes after the body stalls longer than timeoutMs', async () => {
    server = await startTestServer((req, res, n) => {
      if (n === 1) {
        res.writeHead(200, { 'content-disposition': `attachment; filename="${ID}"`, 'content-length': String(DATA.length), etag: `"${sha256Hex(DATA)}"` });
        res.write(DATA.subarray(0, 65_536)); // ...and then nothing: a hung connection
      } else {
        serveBackup(req, res, ID, DATA);
      }
    });
    const client = createClient({ baseUrl: server.baseUrl, token: TOKEN, timeoutMs: 300 });
    const retries: string[] = [];
    const result = await client.downloadToFile(ID, join(dir, ID), { onRetry: (r) => retries.push(r.error.code) });
    expect(result.sha256).toBe(sha256Hex(DATA));
    expect(retries).toEqual(['TIMEOUT']);
  });

  it('deletes the partial file and throws CHECKSUM_MISMATCH when the SHA-256 differs', async () => {
    const wrong = sha256Hex(Buffer.from('something else'));
    server = await startTestServer((req, res) => serveBackup(req, res, ID, DATA, { announcedSha256: wrong }));
    const client = createClient({ baseUrl: server.baseUrl, token: TOKEN });
    const target = join(dir, ID);

    const err = await client.downloadToFile(ID, target).catch((e: unknown) => e);

    expect(err).toBeInstanceOf(BackupServiceError);
    expect(err).toMatchObject({ code: 'CHECKSUM_MISMATCH' });
    expect((err as Error).message).toContain(wrong);
    expect(await readdir(dir)).toEqual([]);
  });

  it('gives up after `retries` failed attempts in a row and leaves no partial file', async () => {
    server = await startTestServer((_req, res) => serveHalfThenCut(res, ID, DATA, 0));
    const client = createClient({ baseUrl: server.baseUrl, token: TOKEN });
    const err = await client.downloadToFile(ID, join(dir, ID), { retries: 2 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'CONNECTION_LOST' });
    expect(server.requests).toHaveLength(3);
    expect(await readdir(dir)).toEqual([]);
  });

  it('rejects with the signal reason on abort and removes the partial file', async () => {
    server = await startTestServer((_req, res) => {
      res.writeHead(200, { 'content-disposition': `attachment; filename="${ID}"`, 'content-length': String(DATA.length), etag: `"${sha256Hex(DATA)}"` });
      res.write(DATA.subarray(0, 1000));
    });
    const client = createClient({ baseUrl: server.baseUrl, token: TOKEN });
    const controller = new AbortController();
    const reason = new Error('operator cancelled');
    const pending = client.downloadToFile(ID, join(dir, ID), {
      signal: controller.signal,
      onProgress: () => controller.abort(reason),
    });
    await expect(pending).rejects.toBe(reason);
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('downloadToFile of a zstd backup', () => {
  const ZST = 'backup_20260511T010000Z.sql.zst';
  // A real zstd stream (the zstd CLI, content checksum on), several chunks long.
  const ZDATA = execFileSync('zstd', ['-c', '-q', '--check'], { input: Buffer.from(Array.from({ length: 200_000 }, (_, i) => `${i}\t${(i * 7919) % 104729}\n`).join('')) });
  const listed = {
    id: ZST,
    createdAt: '2026-05-11T01:00:05Z',
    sizeBytes: ZDATA.length,
    sha256: sha256Hex(ZDATA),
    pgVersion: '15.4',
    durationMs: 42,
    triggeredBy: 'api',
    drill: null,
  };
  /** The service's answers: the newest backup's metadata, and its download (ranges honoured). */
  const service = (): Promise<TestServer> =>
    startTestServer((req, res) => {
      if (req.url === '/api/v1/backups/latest') json(res, 200, listed);
      else serveBackup(req, res, ZST, ZDATA);
    });

  it('saves latest under the id it is, when the path is a function of the id, asking for application/zstd', async () => {
    server = await service();
    const client = createClient({ baseUrl: server.baseUrl, token: TOKEN });
    const result = await client.downloadToFile('latest', (id) => join(dir, id));
    expect(result).toMatchObject({ id: ZST, path: join(dir, ZST), sizeBytes: ZDATA.length, sha256: sha256Hex(ZDATA) });
    expect((await readFile(join(dir, ZST))).equals(ZDATA)).toBe(true);
    // latest was resolved first, then downloaded by its id: the file's name is the backup's.
    expect(server.requests.map((r) => r.url)).toEqual(['/api/v1/backups/latest', `/api/v1/backups/${ZST}/download`]);
    expect(server.requests[1]?.headers.accept).toContain('application/zstd');
    expect(server.requests[1]?.headers.accept).toContain('application/gzip');
  });

  it('refuses (FORMAT_MISMATCH) a path ending .sql.gz for a zstd backup and leaves no file', async () => {
    server = await service();
    const client = createClient({ baseUrl: server.baseUrl, token: TOKEN });
    const err = await client.downloadToFile('latest', join(dir, 'latest.sql.gz')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackupServiceError);
    expect(err).toMatchObject({ code: 'FORMAT_MISMATCH' });
    expect((err as Error).message).toContain(`${ZST} is a zstd backup, but ${join(dir, 'latest.sql.gz')} ends in .sql.gz (a gzip backup)`);
    expect(await readdir(dir)).toEqual([]);
    // A path of the right extension, or of none, takes it.
    await expect(client.downloadToFile(ZST, join(dir, 'copy.sql.zst'))).resolves.toMatchObject({ sha256: sha256Hex(ZDATA) });
    await expect(client.downloadToFile(ZST, join(dir, 'copy.bin'))).resolves.toMatchObject({ sha256: sha256Hex(ZDATA) });
  });
});

describe('downloadToFile of an encrypted backup', () => {
  const AGE = 'backup_20260512T010000Z.sql.gz.age';
  // Ciphertext as the service stores it: opaque bytes, downloaded and verified as they are.
  const CIPHERTEXT = Buffer.concat([Buffer.from('age-encryption.org/v1\n'), randomBytes(300_000)]);

  it('saves it under its .age id, sent as application/octet-stream, verified by its SHA-256', async () => {
    server = await startTestServer((req, res) => serveBackup(req, res, AGE, CIPHERTEXT));
    const client = createClient({ baseUrl: server.baseUrl, token: TOKEN });
    const result = await client.downloadToFile(AGE, (id) => join(dir, id));
    expect(result).toMatchObject({ id: AGE, path: join(dir, AGE), sha256: sha256Hex(CIPHERTEXT) });
    expect((await readFile(join(dir, AGE))).equals(CIPHERTEXT)).toBe(true);
    expect(server.requests[0]?.headers.accept).toContain('application/octet-stream');
  });

  it('refuses (FORMAT_MISMATCH) a path that drops the .age, and an .age path for a plain backup', async () => {
    server = await startTestServer((req, res) => serveBackup(req, res, AGE, CIPHERTEXT));
    const client = createClient({ baseUrl: server.baseUrl, token: TOKEN });
    const err = await client.downloadToFile(AGE, join(dir, 'copy.sql.gz')).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'FORMAT_MISMATCH' });
    expect((err as Error).message).toContain(`${AGE} is an encrypted gzip backup, but ${join(dir, 'copy.sql.gz')} ends in .sql.gz (a gzip backup): name the file .sql.gz.age`);
    expect(await readdir(dir)).toEqual([]);
    await server.close();
    server = await startTestServer((req, res) => serveBackup(req, res, ID, DATA));
    const plain = createClient({ baseUrl: server.baseUrl, token: TOKEN });
    await expect(plain.downloadToFile(ID, join(dir, 'copy.sql.gz.age'))).rejects.toMatchObject({ code: 'FORMAT_MISMATCH', message: expect.stringContaining('is a gzip backup, but') });
    expect(await readdir(dir)).toEqual([]);
  });

  it('refuses a download of an encrypted id sent as application/gzip (it would be mistaken for a plain dump)', async () => {
    server = await startTestServer((req, res) => serveBackup(req, res, AGE, CIPHERTEXT, { contentType: 'application/gzip' }));
    const client = createClient({ baseUrl: server.baseUrl, token: TOKEN });
    const err = await client.downloadToFile(AGE, join(dir, AGE)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'INVALID_RESPONSE' });
    expect((err as Error).message).toMatch(/as application\/gzip, but .* is encrypted \(application\/octet-stream\)/);
  });
});
