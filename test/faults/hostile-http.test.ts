// Issue 8, part 3: hostile HTTP input against the built service. Malformed request lines and
// headers, oversized headers, near-miss tokens, broken percent-encoding, traversal ids in every
// encoding, unexpected methods, bodies on GET, hostile Range headers, idle half-requests and
// thousands of concurrent unauthenticated requests. Every answer must be a clean 4xx (or the
// route's normal answer where the input is odd but legal HTTP), never a 5xx, never a stack trace,
// never a secret, never a byte of a file outside the backup directory; the process stays up and
// /health answers 200 afterwards.
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Backup } from '@db-backup-service/contract';
import { INSPECTOR_NODE_OPTIONS } from './support/gc.js';
import { leakCheckOverCycles, leakFigures } from './support/leak-check.js';
import { httpRequest, rawRequest } from './support/raw-http.js';
import { startRig, type Rig } from './support/rig.js';
import { STACK_TRACE } from './support/secrets.js';
import { printSummary } from './support/summary.js';

/** Planted next to (outside) the backup directory: no answer may ever contain it. */
const MARKER = `outside-the-backup-dir-${randomUUID()}`;
const OUTSIDE_ID = 'backup_20260101T000000Z.sql.gz';

describe('hostile HTTP input', () => {
  let rig: Rig;
  let parent: string;
  let port: number;
  let backup: Backup;
  let requests = 0;
  const statuses = new Map<number | string, number>();
  /** Problems found by the current test (reset before each); `allProblems` keeps the run's total. */
  const problems: string[] = [];
  let allProblems = 0;
  beforeEach(() => {
    allProblems += problems.length;
    problems.length = 0;
  });

  /** Records one answer and checks it: allowed status, no stack trace, no planted bytes, no /etc/passwd. */
  const check = (what: string, status: number | null, body: string, allowed: readonly (number | null)[]): void => {
    requests++;
    statuses.set(status ?? 'closed', (statuses.get(status ?? 'closed') ?? 0) + 1);
    if (process.env.FAULTS_VERBOSE === '1' && !what.includes('x concurrency')) console.log(`[faults] hostile-http ${status ?? 'closed'} <- ${what.slice(0, 120)}`);
    rig.watch.scan(`answer to ${what}`, body);
    if (!allowed.includes(status)) problems.push(`${what}: status ${status}, expected ${allowed.join('/')}: ${body.slice(0, 200)}`);
    if (status !== null && status >= 500) problems.push(`${what}: 5xx ${status}`);
    if (STACK_TRACE.test(body)) problems.push(`${what}: stack trace in the answer: ${body.slice(0, 300)}`);
    if (body.includes(MARKER) || body.includes('root:x:0:0')) problems.push(`${what}: served a file outside the backup directory`);
  };
  // 403: express.static refusing a path with dot segments under /docs/assets.
  const CLEAN_4XX = [400, 401, 403, 404, 405, 408, 413, 414, 431];

  const raw = async (what: string, payload: string | Buffer, allowed: readonly (number | null)[] = CLEAN_4XX) => {
    const res = await rawRequest(port, payload);
    if (res.timedOut) problems.push(`${what}: no answer and no close within 5 s`);
    check(`raw ${what}`, res.status, res.text, allowed);
    return res;
  };
  const get = async (what: string, path: string, init: RequestInit, allowed: readonly number[]) => {
    const res = await fetch(`${rig.svc.baseUrl}${path}`, { ...init, signal: AbortSignal.timeout(15_000) });
    const body = await res.text();
    check(what, res.status, body, allowed);
    return { res, body };
  };
  const auth = () => ({ Authorization: `Bearer ${rig.token}` });

  beforeAll(async () => {
    parent = await mkdtemp(join(tmpdir(), 'faults-hostile-'));
    const dir = join(parent, 'backups');
    await mkdir(dir);
    // Bait one level up: a secret-looking dump, and a file with a valid backup name and sidecar.
    await writeFile(join(parent, 'secret.sql.gz'), MARKER);
    await writeFile(join(parent, OUTSIDE_ID), MARKER);
    await writeFile(join(parent, `${OUTSIDE_ID}.meta.json`), JSON.stringify({ id: OUTSIDE_ID, marker: MARKER }));
    rig = await startRig({ backend: 'local', bigRows: 2_000, dir, env: { NODE_OPTIONS: INSPECTOR_NODE_OPTIONS } });
    port = Number(rig.env.HTTP_PORT);
    const job = await rig.A.backup();
    expect(job.status).toBe('succeeded');
    backup = await rig.A.json<Backup>('/api/v1/backups/latest');
  });

  afterAll(async () => {
    await rig?.tearDown();
    await rm(parent, { recursive: true, force: true });
  });

  it('answers malformed request lines and headers with 4xx (or closes), never 5xx', async () => {
    const h = 'Host: 127.0.0.1\r\nConnection: close\r\n';
    await raw('garbage line', 'GARBAGE\r\n\r\n');
    await raw('method only', 'GET\r\n\r\n');
    await raw('extra token in request line', `GET /health HTTP/1.1 extra\r\n${h}\r\n`);
    await raw('unknown HTTP version', `GET /health HTTP/9.9\r\n${h}\r\n`, [...CLEAN_4XX, 505]);
    await raw('binary junk', Buffer.from([0x00, 0x01, 0x02, 0xff, 0xfe, 0x0d, 0x0a, 0x0d, 0x0a]));
    await raw('space in the URL', `GET /hea lth HTTP/1.1\r\n${h}\r\n`);
    await raw('header without colon', `GET /health HTTP/1.1\r\n${h}Bad Header\r\n\r\n`);
    await raw('space in a header name', `GET /health HTTP/1.1\r\n${h}Bad Name: v\r\n\r\n`);
    await raw('control character in a header value', `GET /health HTTP/1.1\r\n${h}X-A: a\x01b\r\n\r\n`);
    await raw('NUL in a header value', `GET /health HTTP/1.1\r\n${h}X-A: a\x00b\r\n\r\n`);
    await raw('obsolete line folding', `GET /health HTTP/1.1\r\n${h}X-A: a\r\n b\r\n\r\n`);
    await raw('two different Content-Lengths', `GET /health HTTP/1.1\r\n${h}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`);
    await raw('negative Content-Length', `GET /health HTTP/1.1\r\n${h}Content-Length: -1\r\n\r\n`);
    await raw('Content-Length and Transfer-Encoding (smuggling)', `POST /api/v1/backups HTTP/1.1\r\n${h}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`);
    await raw('Transfer-Encoding not ending in chunked', `POST /api/v1/backups HTTP/1.1\r\n${h}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`);
    await raw('broken chunk size', `POST /api/v1/backups HTTP/1.1\r\n${h}Transfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n`);
    await raw('non-ASCII bytes in the path', Buffer.concat([Buffer.from('GET /api/v1/backups/'), Buffer.from('ｂａｃｋｕｐ', 'utf8'), Buffer.from(`/download HTTP/1.1\r\n${h}\r\n`)]));
    // Odd but legal HTTP: the route's normal answer.
    await raw('absolute-form request target', `GET http://evil.example/health HTTP/1.1\r\n${h}\r\n`, [200, 400, 404]);
    await raw('HTTP/1.0 without Host', 'GET /health HTTP/1.0\r\n\r\n', [200]);
    await raw('bare LF line endings', 'GET /health HTTP/1.1\nHost: x\nConnection: close\n\n', [200, 400]);
    await raw('two pipelined requests', `GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /info HTTP/1.1\r\n${h}\r\n`, [200]);
    expect(problems).toEqual([]);
  });

  it('answers oversized headers with 431, and an oversized Authorization header with 401 or 431', async () => {
    const h = 'Host: 127.0.0.1\r\nConnection: close\r\n';
    const big = await raw('one 20 KB header', `GET /health HTTP/1.1\r\n${h}X-Big: ${'a'.repeat(20_000)}\r\n\r\n`, [431]);
    expect(big.status).toBe(431);
    const many = Array.from({ length: 2_000 }, (_, i) => `X-H${i}: v\r\n`).join('');
    expect((await raw('2,000 headers (~20 KB)', `GET /health HTTP/1.1\r\n${h}${many}\r\n`, [431])).status).toBe(431);
    expect((await raw('20 KB URL', `GET /api/v1/backups/${'a'.repeat(20_000)}/download HTTP/1.1\r\n${h}\r\n`, [414, 431])).status).not.toBeNull();
    const authBig = `Authorization: Bearer ${'a'.repeat(17_000)}\r\n`;
    expect((await raw('17 KB Authorization', `GET /api/v1/backups HTTP/1.1\r\n${h}${authBig}\r\n`, [431])).status).toBe(431);
    // Just under the limit: read, compared, refused.
    await get('15 KB Authorization', '/api/v1/backups', { headers: { Authorization: `Bearer ${'a'.repeat(15_000)}` } }, [401]);
    await get('the token repeated 200 times', '/api/v1/backups', { headers: { Authorization: `Bearer ${rig.token.repeat(200)}` } }, [401]);
    expect(problems).toEqual([]);
  });

  it('accepts exactly the token: one character or one length off is 401', async () => {
    const t = rig.token;
    const flip = (i: number) => t.slice(0, i) + (t[i] === 'a' ? 'b' : 'a') + t.slice(i + 1);
    const wrong: [string, string][] = [
      ['first character changed', `Bearer ${flip(0)}`],
      ['middle character changed', `Bearer ${flip(t.length >> 1)}`],
      ['last character changed', `Bearer ${flip(t.length - 1)}`],
      ['one character longer', `Bearer ${t}a`],
      ['one character shorter', `Bearer ${t.slice(0, -1)}`],
      ['upper-cased', `Bearer ${t.toUpperCase()}`],
      ['doubled', `Bearer ${t}${t}`],
      ['trailing junk after a space', `Bearer ${t} x`],
      ['tab instead of space', `Bearer\t${t}`],
      ['no scheme', t],
      ['Basic scheme', `Basic ${Buffer.from(`x:${t}`).toString('base64')}`],
      ['Token scheme', `Token ${t}`],
      ['empty bearer', 'Bearer '],
      ['empty header', ''],
      ['base64 of the token', `Bearer ${Buffer.from(t).toString('base64')}`],
      ['percent-encoded first character', `Bearer %${t.charCodeAt(0).toString(16)}${t.slice(1)}`],
    ];
    for (const [what, header] of wrong) {
      const { res, body } = await get(`token ${what}`, '/api/v1/backups', { headers: { Authorization: header } }, [401]);
      if (res.status === 401) expect(JSON.parse(body)).toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
    }
    // Raw: bytes fetch will not send (a NUL, non-ASCII look-alikes), and duplicate headers.
    const h = 'Host: 127.0.0.1\r\nConnection: close\r\n';
    await raw('token with a NUL', `GET /api/v1/backups HTTP/1.1\r\n${h}Authorization: Bearer ${t}\x00\r\n\r\n`, [400, 401]);
    await raw('token with a fullwidth look-alike', Buffer.concat([Buffer.from(`GET /api/v1/backups HTTP/1.1\r\n${h}Authorization: Bearer ${t.slice(0, -1)}`), Buffer.from('０', 'utf8'), Buffer.from('\r\n\r\n')]), [400, 401]);
    // Node keeps the first of duplicate Authorization headers: a wrong first one is refused.
    await raw('wrong then right Authorization', `GET /api/v1/backups HTTP/1.1\r\n${h}Authorization: Bearer ${flip(3)}\r\nAuthorization: Bearer ${t}\r\n\r\n`, [400, 401]);
    await get('token in the query string', `/api/v1/backups?access_token=${t}`, {}, [401]);
    // The right token, for contrast (the scheme is case-insensitive, RFC 9110).
    await get('the token', '/api/v1/backups', { headers: auth() }, [200]);
    await get('the token, lower-case scheme', '/api/v1/backups', { headers: { Authorization: `bearer ${t}` } }, [200]);
    expect(problems).toEqual([]);
  });

  it('answers invalid percent-encoding with 400/404 on every parametrised route', async () => {
    const bad = ['%', '%%', '%zz', '%E0%A4%A', '%u002e', '%%32%65', '%C0', '%ED%A0%80', '%FF%FE', '%0', 'a%'];
    for (const b of bad) {
      await get(`download id ${b}`, `/api/v1/backups/${b}/download`, { headers: auth() }, [400, 404]);
      await get(`job id ${b}`, `/api/v1/backups/jobs/${b}`, { headers: auth() }, [400, 404]);
      await get(`unauthenticated download id ${b}`, `/api/v1/backups/${b}/download`, {}, [400, 401, 404]);
    }
    expect(problems).toEqual([]);
  });

  it('never serves anything outside the backup directory, whatever the traversal encoding', async () => {
    const ids = [
      '..%2fsecret.sql.gz', '..%2f..%2f..%2f..%2fetc%2fpasswd', '%2e%2e%2fsecret.sql.gz', '%2E%2E%2Fsecret.sql.gz', '.%2e%2fsecret.sql.gz',
      '%2e%2e%5csecret.sql.gz', '..%5csecret.sql.gz', '..%255csecret.sql.gz', '..%252fsecret.sql.gz', '%252e%252e%252fsecret.sql.gz',
      '%25252e%25252e%25252fsecret.sql.gz', '%c0%ae%c0%ae%c0%afsecret.sql.gz', '%c0%2e%c0%2e%c0%2fsecret.sql.gz', '%e0%80%ae%e0%80%ae%e0%80%afsecret.sql.gz',
      '%ef%bc%8e%ef%bc%8e%ef%bc%8fsecret.sql.gz', '%e2%80%a5%ef%bc%8fsecret.sql.gz', '..%e2%88%95secret.sql.gz', '..%ef%bc%bcsecret.sql.gz',
      '%u002e%u002e%u2215secret.sql.gz', '..%00%2fsecret.sql.gz', `${OUTSIDE_ID}%00`, `${OUTSIDE_ID}%00.meta.json`, `..%2f${OUTSIDE_ID}`,
      `..%2fbackups%2f..%2f${OUTSIDE_ID}`, '....%2f%2fsecret.sql.gz', '..%3b%2fsecret.sql.gz', '%2fetc%2fpasswd', '%2e', '%2e%2e', '.', '..',
      `${OUTSIDE_ID}.meta.json`, `${backup.id}.meta.json`, `${backup.id}%2f..%2f..%2fsecret.sql.gz`, `${backup.id}%00`, `${backup.id}%20`,
      `%20${backup.id}`, backup.id.toUpperCase(), `latest%2f..%2f..%2fsecret.sql.gz`, 'backup_20260101T000000Z.sql.gz%2f..%2f..%2fsecret.sql.gz',
      // Valid backup name, planted outside the directory: not in the index, so never read.
      OUTSIDE_ID,
    ];
    // Sent raw: fetch (WHATWG URL) would resolve "..", "%2e%2e" and "\\" before sending.
    const h = `Host: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer ${rig.token}\r\n`;
    for (const id of ids) {
      await raw(`traversal id ${id}`, `GET /api/v1/backups/${id}/download HTTP/1.1\r\n${h}\r\n`, [400, 404]);
      await raw(`traversal id ${id} (HEAD)`, `HEAD /api/v1/backups/${id}/download HTTP/1.1\r\n${h}\r\n`, [400, 404]);
      await raw(`traversal job id ${id}`, `GET /api/v1/backups/jobs/${id} HTTP/1.1\r\n${h}\r\n`, [400, 404]);
    }
    // Dot segments and backslashes in the path itself.
    for (const path of [
      '/api/v1/backups/../../../../etc/passwd', '/api/v1/backups/../../secret.sql.gz/download', '/api/v1/backups/..\\..\\secret.sql.gz/download',
      '/api/v1/backups/%2e%2e/%2e%2e/secret.sql.gz/download', `/api/v1/backups/${backup.id}/../../secret.sql.gz`, '/api/v1/backups/./../secret.sql.gz/download',
      '//etc/passwd', '/..%2f..%2fetc%2fpasswd', `/api/v1/backups/${OUTSIDE_ID}/download`, '/docs/assets/../../../../etc/passwd', '/docs/assets/..%2f..%2f..%2fpackage.json',
    ]) {
      await raw(`path ${path}`, `GET ${path} HTTP/1.1\r\n${h}\r\n`, [400, 403, 404]);
    }
    // The real backup is still there and whole.
    const ok = await fetch(`${rig.svc.baseUrl}/api/v1/backups/${backup.id}/download`, { headers: auth() });
    expect(ok.status).toBe(200);
    expect((await ok.arrayBuffer()).byteLength).toBe(backup.sizeBytes);
    expect(problems).toEqual([]);
  });

  it('refuses unexpected methods with 4xx on every route, and TRACE never echoes the request', async () => {
    const paths = ['/health', '/info', '/metrics', '/openapi.json', '/docs', '/api/v1/backups', '/api/v1/backups/latest',
      `/api/v1/backups/${backup.id}/download`, '/api/v1/backups/latest/download', `/api/v1/backups/jobs/${randomUUID()}`, '/nope'];
    for (const path of paths) {
      for (const method of ['PUT', 'DELETE', 'PATCH', 'PROPFIND', 'OPTIONS']) {
        for (const withToken of [false, true]) {
          // OPTIONS too: the service serves no CORS, so a preflight gets the 404 of any unknown route.
          const allowed = [400, 401, 404, 405];
          await get(`${method} ${path}${withToken ? ' (token)' : ''}`, path, { method, headers: withToken ? auth() : {} }, allowed);
        }
      }
    }
    for (const path of ['/health', '/api/v1/backups', `/api/v1/backups/${backup.id}/download`]) {
      // TRACE with the token in a header: a reflected request would leak the token (the scan catches it).
      await raw(`TRACE ${path}`, `TRACE ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer ${rig.token}\r\nX-Echo: marker\r\n\r\n`, [400, 404, 405]);
      await raw(`custom method on ${path}`, `FOO ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, [400, 404, 405]);
    }
    // CONNECT: no proxying here. Node closes the connection without an answer (no 'connect' handler),
    // which is as clean as a 4xx for this purpose; a 2xx would be an open proxy.
    for (const target of ['127.0.0.1:22', `127.0.0.1:${port}`, 'example.com:443']) {
      const res = await raw(`CONNECT ${target}`, `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`, [null, 400, 404, 405]);
      expect(res.status === null || res.status >= 400).toBe(true);
    }
    expect(problems).toEqual([]);
  });

  it('handles bodies on GET/HEAD and hostile Range headers without a 5xx', async () => {
    const h = `Host: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer ${rig.token}\r\n`;
    await raw('GET with a small body', `GET /api/v1/backups HTTP/1.1\r\n${h}Content-Length: 11\r\nContent-Type: application/json\r\n\r\n{"a":"b"}\r\n`, [200]);
    await raw('GET with a 100 KB body', `GET /api/v1/backups HTTP/1.1\r\n${h}Content-Length: 100000\r\n\r\n${'x'.repeat(100_000)}`, [413]);
    await raw('GET with a chunked body', `GET /api/v1/backups HTTP/1.1\r\n${h}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, [413]);
    // Keep-alive and a chunked body that never ends: refused and closed, not held open (raw()
    // counts "no answer and no close within 5 s" as a problem).
    const keepAlive = `Host: 127.0.0.1\r\nAuthorization: Bearer ${rig.token}\r\n`;
    await raw('keep-alive GET with an endless chunked body', `GET /api/v1/backups HTTP/1.1\r\n${keepAlive}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n`, [413]);
    await raw('GET download with a body', `GET /api/v1/backups/latest/download HTTP/1.1\r\n${h}Content-Length: 5\r\n\r\nhello`, [200, 413]);
    await raw('HEAD with a body', `HEAD /api/v1/backups/latest/download HTTP/1.1\r\n${h}Content-Length: 5\r\n\r\nhello`, [200, 413]);
    await raw('GET /health with a JSON body', `GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`, [200]);
    await raw('POST trigger with a 20 KB body', `POST /api/v1/backups HTTP/1.1\r\n${h}Content-Length: 20000\r\n\r\n${'x'.repeat(20_000)}`, [413]);
    await raw('POST trigger with a body claiming 1 GB', `POST /api/v1/backups HTTP/1.1\r\n${h}Content-Length: 1000000000\r\n\r\nxx`, [413]);
    await raw('POST unauthenticated with a chunked body', 'POST /api/v1/backups HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n', [401, 413]);
    const ranges = ['bytes=abc', 'bytes=-0', 'bytes=0--1', 'bytes=5-1', 'bytes=99999999999999999999999-', 'bytes=-99999999999999999999999', 'bytes=0-1,2-3',
      'bytes=0-0,-1', `bytes=${backup.sizeBytes}-`, 'items=0-1', 'bytes=', 'bytes', `bytes=0-${'9'.repeat(400)}`, 'bytes=1e3-2e3', 'bytes=0x10-0x20', 'bytes= 1-2'];
    for (const range of ranges) {
      const { res } = await get(`Range ${range.slice(0, 40)}`, `/api/v1/backups/${backup.id}/download`, { headers: { ...auth(), Range: range } }, [200, 206, 416]);
      if (res.status === 206) expect(res.headers.get('content-range')).toMatch(/^bytes \d+-\d+\/\d+$/);
    }
    await raw('If-Range garbage', `GET /api/v1/backups/${backup.id}/download HTTP/1.1\r\n${h}Range: bytes=1-2\r\nIf-Range: "\x7f\x80"\r\n\r\n`, [200, 206, 400]);
    expect(problems).toEqual([]);
  });

  it('stays responsive with 200 idle half-sent requests open, and drops nothing else', async () => {
    const sockets: Socket[] = [];
    try {
      for (let i = 0; i < 200; i++) {
        const s = connect({ host: '127.0.0.1', port });
        s.on('error', () => undefined);
        s.write('GET /api/v1/backups HTTP/1.1\r\nHost: x\r\nX-Slow: ');
        sockets.push(s);
      }
      const started = Date.now();
      await get('/health while 200 half-requests are open', '/health', {}, [200]);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      for (const s of sockets) s.destroy();
    }
    expect(problems).toEqual([]);
  });

  it('closes a connection whose small request body trickles in for longer than the request timeout (30 s)', async () => {
    const s = connect({ host: '127.0.0.1', port });
    s.on('error', () => undefined);
    const received: Buffer[] = [];
    s.on('data', (chunk: Buffer) => received.push(chunk));
    // A body under the size limit, one byte every second: the answer comes at once (nothing
    // reads the body), but the keep-alive connection stays busy until the body is complete.
    s.write(`GET /api/v1/backups HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${rig.token}\r\nContent-Length: 1000\r\n\r\n`);
    const trickle = setInterval(() => s.write('x'), 1_000);
    const started = Date.now();
    try {
      const closed = await new Promise<boolean>((resolve) => {
        const deadline = setTimeout(() => resolve(false), 60_000);
        s.once('close', () => {
          clearTimeout(deadline);
          resolve(true);
        });
      });
      const elapsedS = (Date.now() - started) / 1000;
      expect(closed, 'the server should close the connection within 60 s').toBe(true);
      expect(elapsedS).toBeGreaterThanOrEqual(29);
      expect(Buffer.concat(received).toString('latin1')).toMatch(/^HTTP\/1\.1 200 /);
    } finally {
      clearInterval(trickle);
      s.destroy();
    }
  }, 90_000);

  it('answers 3,000 unauthenticated requests at concurrency 300 with clean 401s (and /health 200s)', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 300 });
    const total = 3_000;
    const concurrency = 300;
    const mix = floodMix(rig.token, backup.id);
    const latencies: number[] = [];
    const errors = new Map<string, number>();
    const started = Date.now();
    await inParallel(concurrency, total, async (n) => {
      const r = mix[n % mix.length]!;
      const res = await httpRequest(agent, port, { method: r.method, path: r.path, headers: r.headers });
      latencies.push(res.ms);
      if (res.error) {
        errors.set(res.error, (errors.get(res.error) ?? 0) + 1);
        requests++;
        return;
      }
      check(`${r.method} ${r.path} x concurrency`, res.status, res.body, r.ok);
    });
    const seconds = (Date.now() - started) / 1000;
    agent.destroy();
    latencies.sort((a, b) => a - b);
    console.log(
      `[faults] hostile-http flood: ${total} requests at concurrency ${concurrency} in ${seconds.toFixed(1)} s ` +
        `(${Math.round(total / seconds)}/s), latency p50=${latencies[total >> 1]} p99=${latencies[Math.floor(total * 0.99)]} max=${latencies.at(-1)} ms, ` +
        `network errors ${JSON.stringify(Object.fromEntries(errors))}`,
    );
    expect(Object.fromEntries(errors)).toEqual({});
    expect(problems).toEqual([]);
  });

  it('is still alive and healthy, leaks nothing over six identical hostile cycles, and no answer or log line held a secret', async () => {
    expect(rig.svc.child.exitCode).toBeNull();
    const health = await fetch(`${rig.svc.baseUrl}/health`);
    expect(health.status).toBe(200);
    await health.text();
    // Leaks: the same hostile mix six times; the steady state after the 2nd cycle against the one
    // after the 6th (support/leak-check.ts). One cycle: 600 requests of the flood's mix at its
    // concurrency (300 sockets), a round of malformed and oversized requests, 50 half-sent ones.
    const h = 'Host: 127.0.0.1\r\nConnection: close\r\n';
    const malformed: [string, string][] = [
      ['garbage line', 'GARBAGE\r\n\r\n'],
      ['header without colon', `GET /health HTTP/1.1\r\n${h}Bad Header\r\n\r\n`],
      ['smuggling', `POST /api/v1/backups HTTP/1.1\r\n${h}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
      ['20 KB header', `GET /health HTTP/1.1\r\n${h}X-Big: ${'a'.repeat(20_000)}\r\n\r\n`],
      ['traversal', `GET /api/v1/backups/..%2fsecret.sql.gz/download HTTP/1.1\r\n${h}Authorization: Bearer ${rig.token}\r\n\r\n`],
      ['chunked GET', `GET /api/v1/backups HTTP/1.1\r\n${h}Authorization: Bearer ${rig.token}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`],
    ];
    const cycle = async (n: number): Promise<void> => {
      const agent = new Agent({ keepAlive: true, maxSockets: 300 });
      const mix = floodMix(rig.token, backup.id);
      try {
        await inParallel(300, 600, async (i) => {
          const r = mix[i % mix.length]!;
          const res = await httpRequest(agent, port, { method: r.method, path: r.path, headers: r.headers });
          if (res.error) problems.push(`cycle ${n}: ${r.method} ${r.path}: ${res.error}`);
          else check(`cycle ${n}: ${r.method} ${r.path}`, res.status, res.body, r.ok);
        });
      } finally {
        agent.destroy();
      }
      for (const [what, payload] of malformed) await raw(`cycle ${n}: ${what}`, payload);
      const sockets: Socket[] = [];
      for (let i = 0; i < 50; i++) {
        const sock = connect({ host: '127.0.0.1', port });
        sock.on('error', () => undefined);
        sock.write('GET /api/v1/backups HTTP/1.1\r\nHost: x\r\nX-Slow: ');
        sockets.push(sock);
      }
      await get(`cycle ${n}: /health while 50 half-requests are open`, '/health', {}, [200]);
      for (const sock of sockets) sock.destroy();
    };
    const leak = await leakCheckOverCycles(rig.svc, cycle);
    rig.svc.logs.forEach((line, i) => rig.watch.scan(`service log line ${i + 1}`, line));
    const fivexx = [...statuses.entries()].filter(([s]) => typeof s === 'number' && s >= 500).reduce((n, [, v]) => n + v, 0);
    printSummary('hostile-http', {
      requests,
      ...Object.fromEntries([...statuses.entries()].sort().map(([s, n]) => [`status:${s}`, n])),
      '5xx': fivexx,
      problems: allProblems + problems.length,
      alive: rig.svc.child.exitCode === null,
      ...leakFigures(leak),
      textsScanned: rig.watch.textsScanned,
      secretsFound: rig.watch.hits.length,
    });
    expect(rig.watch.hits, rig.watch.describeHits()).toEqual([]);
    expect(fivexx).toBe(0);
    expect(problems).toEqual([]);
    expect(rig.svc.child.exitCode).toBeNull();
    expect(leak.verdict, leak.reasons.join('; ')).toBe('ok');
  }, 240_000);
});

/** The concurrency test's mix: unauthenticated or wrongly authenticated requests (401), and /health (200). */
function floodMix(token: string, backupId: string): { method: string; path: string; headers: Record<string, string>; ok: number[] }[] {
  const wrong = token.slice(0, -1) + (token.endsWith('0') ? '1' : '0');
  return [
    { method: 'GET', path: '/api/v1/backups', headers: {}, ok: [401] },
    { method: 'GET', path: '/api/v1/backups/latest/download', headers: { Authorization: `Bearer ${wrong}` }, ok: [401] },
    { method: 'POST', path: '/api/v1/backups', headers: {}, ok: [401] },
    { method: 'GET', path: `/api/v1/backups/jobs/${randomUUID()}`, headers: { Authorization: 'Basic eDp5' }, ok: [401] },
    { method: 'GET', path: `/api/v1/backups/${backupId}/download`, headers: { Authorization: `Bearer ${'x'.repeat(64)}` }, ok: [401] },
    { method: 'GET', path: '/health', headers: {}, ok: [200] },
  ];
}

/** Runs `send(0)` .. `send(total - 1)` on `workers` concurrent workers, each taking the next number when free. */
async function inParallel(workers: number, total: number, send: (n: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      for (let n = next++; n < total; n = next++) await send(n);
    }),
  );
}
