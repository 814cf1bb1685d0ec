import { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { BackupServiceError, type BackupDownload, type BackupServiceClient } from '@db-backup-service/sdk';

/** Failures a new request may get past: the connection, a timeout, a service restarting. */
const RETRYABLE = new Set(['CONNECTION_LOST', 'TIMEOUT', 'UNREACHABLE', 'SERVICE_UNAVAILABLE']);
const MAX_BACKOFF_MS = 5_000;

function isRetryable(err: unknown): err is BackupServiceError {
  return err instanceof BackupServiceError && (RETRYABLE.has(err.code) || (err.code === 'HTTP_ERROR' && err.status !== null && err.status >= 500));
}

export interface ResumableDownloadOptions {
  readonly signal: AbortSignal;
  /** Attempts in a row that may fail before giving up; one that received data resets the count. Default 5. */
  readonly retries?: number;
  readonly onRetry: (info: { readonly attempt: number; readonly resumeFrom: number; readonly error: BackupServiceError }) => void;
}

/**
 * A backup's bytes from its first one, as one stream, across cut connections: after a cut the rest
 * is asked for with a Range request pinned to the same backup (If-Range with its ETag), as
 * downloadToFile resumes, but into the restore rather than a file. The restore hashes the whole
 * stream, so a resume that delivered other bytes fails its checksum before COMMIT.
 */
export function resumableDownload(client: BackupServiceClient, first: BackupDownload, opts: ResumableDownloadOptions): Readable {
  const maxFailures = opts.retries ?? 5;
  async function* bytes(): AsyncGenerator<Buffer> {
    let download: BackupDownload | null = first;
    let received = 0;
    let failures = 0;
    for (;;) {
      try {
        if (download === null) {
          download = await client.download(first.id, { signal: opts.signal, range: { start: received }, ...(first.etag ? { ifRange: first.etag } : {}) });
          if (download.status !== 206 || download.range?.start !== received) {
            download.stream.destroy();
            throw new BackupServiceError('INVALID_RESPONSE', `${client.baseUrl} did not resume ${first.id} at byte ${received} (answered ${download.status}): the backup changed or the service ignores ranges`);
          }
        }
        for await (const chunk of download.stream) {
          received += (chunk as Buffer).length;
          failures = 0;
          yield chunk as Buffer;
        }
        return;
      } catch (err) {
        if (opts.signal.aborted) throw opts.signal.reason;
        if (!isRetryable(err) || failures >= maxFailures) throw err;
        failures += 1;
        download = null;
        opts.onRetry({ attempt: failures, resumeFrom: received, error: err });
        await delay(Math.min(MAX_BACKOFF_MS, 200 * 2 ** (failures - 1)), undefined, { signal: opts.signal });
      }
    }
  }
  return Readable.from(bytes(), { objectMode: false });
}
