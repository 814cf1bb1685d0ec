import { Readable } from 'node:stream';
import type { ApiFetcher } from '@ts-rest/core';
import type { RouteMetadata } from './generated/contract/index.js';
import { BackupServiceError, networkErrorCode } from './errors.js';

/** What every request needs: where, how, and how long to wait. Never serialised into a message. */
export interface Transport {
  readonly baseUrl: string;
  /** baseUrl without credentials, for messages. */
  readonly displayUrl: string;
  readonly fetch: typeof globalThis.fetch;
  readonly timeoutMs: number;
  /** Removes the token from a text that is about to become an error message (defence in depth). */
  readonly redact: (text: string) => string;
}

const RAW = Symbol('db-backup-service.raw-response');

/**
 * The body the fetcher hands back for a 2xx of a binary route: the Response, unread. ts-rest's
 * default fetcher would buffer it whole with `res.blob()` (STACK-NOTES), which defeats streaming.
 */
export interface RawBody {
  readonly [RAW]: true;
  readonly response: Response;
}

export function isRawBody(body: unknown): body is RawBody {
  return typeof body === 'object' && body !== null && (body as Partial<RawBody>)[RAW] === true;
}

/** Thrown into an AbortController when our own deadline passes, to tell it apart from the caller's abort. */
class DeadlineReached extends Error {
  constructor() {
    super('deadline reached');
  }
}

/** "GET /api/v1/backups" for messages: the path only, never the query or credentials. */
export function requestLine(method: string, url: string): string {
  try {
    return `${method} ${new URL(url).pathname}`;
  } catch {
    return method;
  }
}

/**
 * Maps a failed fetch (no HTTP answer) to what the caller should see: the caller's own abort
 * reason, a TIMEOUT, or UNREACHABLE naming the base URL and the system error code.
 */
export function mapFetchFailure(t: Transport, err: unknown, what: string, callerSignal: AbortSignal | undefined, deadline: AbortSignal): unknown {
  if (callerSignal?.aborted) return callerSignal.reason;
  if (deadline.aborted && deadline.reason instanceof DeadlineReached) {
    return new BackupServiceError('TIMEOUT', `db-backup-service at ${t.displayUrl} did not answer ${what} within ${t.timeoutMs} ms`, { cause: err });
  }
  const code = t.redact(networkErrorCode(err));
  return new BackupServiceError('UNREACHABLE', `cannot reach db-backup-service at ${t.displayUrl}: ${code}`, { cause: err });
}

/**
 * ts-rest `api` fetcher. JSON (and problem+json) bodies are read here, within the deadline; a 2xx
 * of a binary route is returned unread as a RawBody, with the deadline covering the headers only
 * (the download stream applies its own idle deadline while it waits for data).
 */
export function createFetcher(t: Transport): ApiFetcher {
  return async (args) => {
    const metadata = args.route.metadata as RouteMetadata | undefined;
    const callerSignal = args.fetchOptions?.signal ?? undefined;
    callerSignal?.throwIfAborted();
    const what = requestLine(args.method, args.path);

    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new DeadlineReached()), t.timeoutMs);
    const signal = callerSignal ? AbortSignal.any([callerSignal, deadline.signal]) : deadline.signal;
    try {
      let response: Response;
      try {
        // Called unbound, as a plain function: some fetch implementations reject a foreign `this`.
        const doFetch = t.fetch;
        response = await doFetch(args.path, { method: args.method, headers: args.headers, body: args.body ?? null, signal });
      } catch (err) {
        throw mapFetchFailure(t, err, what, callerSignal, deadline.signal);
      }
      if (metadata?.binary === true && response.ok) {
        const body: RawBody = { [RAW]: true, response };
        return { status: response.status, headers: response.headers, body };
      }
      let text: string;
      try {
        text = await response.text();
      } catch (err) {
        throw mapFetchFailure(t, err, what, callerSignal, deadline.signal);
      }
      const contentType = response.headers.get('content-type') ?? '';
      let body: unknown = text;
      if (/[/+]json\b/i.test(contentType)) {
        try {
          body = JSON.parse(text) as unknown;
        } catch {
          // Left as text: the caller's schema check turns it into INVALID_RESPONSE.
        }
      }
      return { status: response.status, headers: response.headers, body };
    } finally {
      clearTimeout(timer);
    }
  };
}

export interface BodyStreamOptions {
  readonly transport: Transport;
  readonly what: string;
  /** Bytes this response should carry (Content-Length), when known: fewer means a cut connection. */
  readonly expectedBytes: number | null;
  readonly callerSignal: AbortSignal | undefined;
  /** Aborts the underlying fetch (and so its socket) when the stream is destroyed or idles too long. */
  readonly abortFetch: AbortController;
}

/**
 * A Node Readable over a fetch body. Unlike `Readable.fromWeb` it arms the idle deadline only while
 * a read is pending on the network, so a slow consumer (backpressure) never trips it; it reports a
 * short body as CONNECTION_LOST; and destroying it aborts the fetch, which releases the socket.
 */
export function bodyStream(body: ReadableStream<Uint8Array>, opts: BodyStreamOptions): Readable {
  const reader = body.getReader();
  const t = opts.transport;
  let received = 0;
  let idle: NodeJS.Timeout | undefined;
  let idleFired = false;

  const lost = (cause: unknown): BackupServiceError => {
    const of = opts.expectedBytes === null ? '' : ` of ${opts.expectedBytes}`;
    const reason = cause === undefined ? 'the body ended early' : t.redact(networkErrorCode(cause));
    return new BackupServiceError('CONNECTION_LOST', `connection to db-backup-service at ${t.displayUrl} lost after ${received}${of} bytes (${opts.what}): ${reason}`, { cause });
  };

  const stream = new Readable({
    read() {
      idle = setTimeout(() => {
        idleFired = true;
        opts.abortFetch.abort();
      }, t.timeoutMs);
      reader.read().then(
        ({ done, value }) => {
          clearTimeout(idle);
          if (done) {
            if (opts.expectedBytes !== null && received < opts.expectedBytes) {
              stream.destroy(lost(undefined));
            } else {
              stream.push(null);
            }
            return;
          }
          received += value.byteLength;
          stream.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
        },
        (err: unknown) => {
          clearTimeout(idle);
          if (opts.callerSignal?.aborted) {
            stream.destroy(opts.callerSignal.reason as Error);
          } else if (idleFired) {
            stream.destroy(new BackupServiceError('TIMEOUT', `db-backup-service at ${t.displayUrl} sent no data for ${t.timeoutMs} ms (${opts.what}, after ${received} bytes)`, { cause: err }));
          } else {
            stream.destroy(lost(err));
          }
        },
      );
    },
    destroy(err, callback) {
      clearTimeout(idle);
      opts.callerSignal?.removeEventListener('abort', onCallerAbort);
      // Frees the connection when the consumer gives up early (e.g. an HTTP client disconnected).
      opts.abortFetch.abort();
      reader.cancel().catch(() => undefined);
      callback(err);
    },
  });

  // A paused stream has no read pending, so an abort would otherwise go unnoticed until the next read.
  const onCallerAbort = (): void => {
    stream.destroy(opts.callerSignal?.reason as Error);
  };
  opts.callerSignal?.addEventListener('abort', onCallerAbort, { once: true });
  return stream;
}
