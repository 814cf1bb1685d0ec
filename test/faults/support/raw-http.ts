// HTTP below fetch: raw bytes on a socket (what fetch refuses to send or normalises away), and a
// node:http client with its own connection pool for the concurrency test.
import { request, type Agent } from 'node:http';
import { connect } from 'node:net';

export interface RawResponse {
  /** Status of the first response, or null when the server closed without answering. */
  readonly status: number | null;
  /** Everything the server sent (all responses, for pipelined requests), latin1-decoded. */
  readonly text: string;
  /** The server closed the connection (as opposed to our timeout ending the wait). */
  readonly closedByServer: boolean;
  readonly timedOut: boolean;
}

/**
 * Sends `payload` as is to 127.0.0.1:port and collects the answer until the server closes the
 * connection or `timeoutMs` passes (then we close it). Requests should say `Connection: close`
 * where they can, so a well-formed exchange ends with the server's close rather than the timeout.
 */
export function rawRequest(port: number, payload: string | Buffer, timeoutMs = 5_000): Promise<RawResponse> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let timedOut = false;
    let closedByServer = false;
    const socket = connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      timedOut = true;
      socket.destroy();
    }, timeoutMs);
    socket.on('connect', () => {
      // The server may answer and close before we finish writing (e.g. 431): not an error here.
      socket.write(payload, () => undefined);
    });
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => {
      closedByServer = true;
      socket.end();
    });
    socket.on('error', () => {
      // ECONNRESET after the server answered and closed while we were still writing.
      closedByServer = !timedOut;
    });
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ status: m?.[1] ? Number(m[1]) : null, text, closedByServer, timedOut });
    });
  });
}

export interface SimpleResponse {
  readonly status: number | null;
  readonly body: string;
  readonly error: string | null;
  readonly ms: number;
}

/** One request through `agent` (node:http); never rejects: a network failure is `error`. */
export function httpRequest(
  agent: Agent,
  port: number,
  opts: { method: string; path: string; headers?: Record<string, string>; timeoutMs?: number },
): Promise<SimpleResponse> {
  const started = Date.now();
  return new Promise((resolve) => {
    const req = request(
      { host: '127.0.0.1', port, agent, method: opts.method, path: opts.path, headers: opts.headers ?? {}, timeout: opts.timeoutMs ?? 30_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? null, body: Buffer.concat(chunks).toString('utf8'), error: null, ms: Date.now() - started }));
        res.on('error', (e) => resolve({ status: res.statusCode ?? null, body: '', error: e.message, ms: Date.now() - started }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ status: null, body: '', error: e.code ?? e.message, ms: Date.now() - started }));
    req.end();
  });
}
