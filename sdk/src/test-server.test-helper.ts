// A tiny in-test HTTP server for SDK behaviour (Range resume, cut sockets, problem+json answers).
// It stands in for nothing in the backup path: the real service is exercised by the e2e tests.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { contentTypeOfId } from './generated/contract/index.js';

export const TOKEN = 'test-token-0123456789abcdef0123456789abcdef';

export interface TestServer {
  readonly baseUrl: string;
  readonly requests: { method: string; url: string; headers: IncomingMessage['headers'] }[];
  close(): Promise<void>;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void;

export async function startTestServer(handler: Handler): Promise<TestServer> {
  const requests: TestServer['requests'] = [];
  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      problem(res, 401, 'Unauthorized', 'missing or wrong bearer token', 'UNAUTHORIZED');
      return;
    }
    handler(req, res, requests.length);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function problem(res: ServerResponse, status: number, title: string, detail: string, code: string, extra: Record<string, unknown> = {}): void {
  res.writeHead(status, { 'content-type': 'application/problem+json' });
  res.end(JSON.stringify({ type: `urn:db-backup-service:${code.toLowerCase()}`, title, status, detail, code, ...extra }));
}

export function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

export function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export interface ServeBackupOptions {
  /** The checksum to announce (default: the real one). */
  announcedSha256?: string;
  /** Honour Range / If-Range (default true). */
  ranges?: boolean;
  /** The Content-Type to send (default: the id's format's, as the service sends it). */
  contentType?: string;
}

/**
 * Serves `data` as backup `id` the way the contract describes a download: Content-Disposition,
 * Content-Length, ETag and Repr-Digest with the SHA-256, a single byte Range (206/416) and If-Range.
 */
export function serveBackup(req: IncomingMessage, res: ServerResponse, id: string, data: Buffer, opts: ServeBackupOptions = {}): { start: number; end: number; status: number } {
  const sha = opts.announcedSha256 ?? sha256Hex(data);
  const etag = `"${sha}"`;
  const headers: Record<string, string> = {
    'content-type': opts.contentType ?? contentTypeOfId(id),
    'content-disposition': `attachment; filename="${id}"`,
    etag,
    'repr-digest': `sha-256=:${Buffer.from(sha, 'hex').toString('base64')}:`,
    'accept-ranges': 'bytes',
  };
  const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  const ifRange = req.headers['if-range'];
  if ((opts.ranges ?? true) && range?.[1] !== undefined && (ifRange === undefined || ifRange === etag)) {
    const start = Number(range[1]);
    const end = range[2] ? Math.min(Number(range[2]), data.length - 1) : data.length - 1;
    if (start >= data.length) {
      res.writeHead(416, { 'content-type': 'application/problem+json', 'content-range': `bytes */${data.length}` });
      res.end(JSON.stringify({ type: 'about:blank', title: 'Range Not Satisfiable', status: 416 }));
      return { start, end, status: 416 };
    }
    res.writeHead(206, { ...headers, 'content-length': String(end - start + 1), 'content-range': `bytes ${start}-${end}/${data.length}` });
    res.end(data.subarray(start, end + 1));
    return { start, end, status: 206 };
  }
  res.writeHead(200, { ...headers, 'content-length': String(data.length) });
  res.end(data);
  return { start: 0, end: data.length - 1, status: 200 };
}

/** Sends the headers and the first `bytes` of the body, then destroys the socket: a cut connection. */
export function serveHalfThenCut(res: ServerResponse, id: string, data: Buffer, bytes: number): void {
  const sha = sha256Hex(data);
  res.writeHead(200, {
    'content-type': contentTypeOfId(id),
    'content-disposition': `attachment; filename="${id}"`,
    'content-length': String(data.length),
    etag: `"${sha}"`,
    'accept-ranges': 'bytes',
  });
  res.write(data.subarray(0, bytes), () => {
    // Let the bytes reach the client before the cut, so the resume really starts mid-file.
    setTimeout(() => res.socket?.destroy(), 20);
  });
}
