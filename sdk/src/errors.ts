import type { Problem } from './generated/contract/index.js';

/**
 * Stable reasons a call failed, independent of the server's own `problem.code`:
 * - `UNAUTHORIZED` (401), `NOT_FOUND` (404), `RANGE_NOT_SATISFIABLE` (416),
 *   `SERVICE_UNAVAILABLE` (503), `HTTP_ERROR` (any other unexpected status);
 * - `UNREACHABLE`: no HTTP answer at all (refused, DNS, reset before the headers);
 * - `TIMEOUT`: no answer (or, for a download, no data) within `timeoutMs`;
 * - `CONNECTION_LOST`: a download's body ended early (after every retry, for `downloadToFile`);
 * - `INVALID_RESPONSE`: the answer does not match the API contract;
 * - `CHECKSUM_MISMATCH`: a downloaded file's SHA-256 or size differs from what the service announced;
 * - `JOB_WAIT_TIMEOUT`: `waitForJob` passed its deadline while the job was still queued/running;
 * - `FORMAT_MISMATCH`: `downloadToFile` was given a path whose extension names the other
 *   compression format than the backup's (`.sql.gz` for a zstd backup, `.sql.zst` for a gzip one).
 */
export type BackupServiceErrorCode =
  | 'UNAUTHORIZED'
  | 'NOT_FOUND'
  | 'RANGE_NOT_SATISFIABLE'
  | 'SERVICE_UNAVAILABLE'
  | 'HTTP_ERROR'
  | 'UNREACHABLE'
  | 'TIMEOUT'
  | 'CONNECTION_LOST'
  | 'INVALID_RESPONSE'
  | 'CHECKSUM_MISMATCH'
  | 'JOB_WAIT_TIMEOUT'
  | 'FORMAT_MISMATCH';

/**
 * The one error the SDK throws (apart from an abort, which rethrows `signal.reason`).
 * Messages name the service's base URL and never contain the API token.
 */
export class BackupServiceError extends Error {
  override readonly name = 'BackupServiceError';
  /** Why the call failed; see {@link BackupServiceErrorCode}. */
  readonly code: BackupServiceErrorCode;
  /** HTTP status of the answer, or null when there was none (UNREACHABLE, TIMEOUT before the headers). */
  readonly status: number | null;
  /** The API's problem+json body (RFC 9457) when the service sent one. */
  readonly problem: Problem | null;

  constructor(
    code: BackupServiceErrorCode,
    message: string,
    opts: { status?: number | null; problem?: Problem | null; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.status = opts.status ?? null;
    this.problem = opts.problem ?? null;
  }
}

/** The error code for an unexpected HTTP status. */
export function codeForStatus(status: number): BackupServiceErrorCode {
  switch (status) {
    case 401:
      return 'UNAUTHORIZED';
    case 404:
      return 'NOT_FOUND';
    case 416:
      return 'RANGE_NOT_SATISFIABLE';
    case 503:
      return 'SERVICE_UNAVAILABLE';
    default:
      return 'HTTP_ERROR';
  }
}

/**
 * The base URL as it may be shown in a message: without user info (a `user:pass@` in the URL is a
 * credential) and without query or fragment.
 */
export function displayUrl(baseUrl: string): string {
  try {
    const url = new URL(baseUrl);
    url.username = '';
    url.password = '';
    url.search = '';
    url.hash = '';
    return url.toString().replace(/\/$/, '');
  } catch {
    return '<invalid base URL>';
  }
}

/**
 * The most specific system error code in a fetch failure. undici reports `TypeError: fetch failed`
 * with the socket error as `cause` (sometimes an AggregateError, for happy-eyeballs attempts).
 */
export function networkErrorCode(err: unknown): string {
  const seen = new Set<unknown>();
  let current: unknown = err;
  while (current !== null && typeof current === 'object' && !seen.has(current)) {
    seen.add(current);
    const e = current as { code?: unknown; errors?: unknown[]; cause?: unknown; message?: unknown };
    if (typeof e.code === 'string' && !e.code.startsWith('UND_ERR') && e.code !== 'ABORT_ERR') return e.code;
    if (Array.isArray(e.errors) && e.errors.length > 0) {
      current = e.errors[0];
      continue;
    }
    if (e.cause === undefined) {
      if (typeof e.code === 'string') return e.code;
      return typeof e.message === 'string' && e.message !== '' ? e.message : 'network error';
    }
    current = e.cause;
  }
  return 'network error';
}
