import { createHash, type Hash } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import type { BackupDownload, BackupServiceClient } from './client.js';
import { BackupServiceError } from './errors.js';
import { COMPRESSION_FORMATS, ENCRYPTED_EXTENSION, isEncryptedId, plainNameOf, type CompressionFormat } from './generated/contract/index.js';

/** Progress of {@link BackupServiceClient.downloadToFile}. */
export interface DownloadProgress {
  /** Bytes in the file so far (after a resume: including those received before the cut). */
  readonly receivedBytes: number;
  /** Size of the whole backup, when the service sent it. */
  readonly totalBytes: number | null;
}

/** Options of {@link BackupServiceClient.downloadToFile}. */
export interface DownloadToFileOptions {
  /** Aborts the download; the partial file is removed and the promise rejects with `signal.reason`. */
  readonly signal?: AbortSignal;
  /** Called after every chunk written. */
  readonly onProgress?: (progress: DownloadProgress) => void;
  /**
   * How many attempts in a row may fail (cut connection, timeout, unreachable, 5xx) before giving
   * up; an attempt that received data resets the count. Default 5.
   */
  readonly retries?: number;
  /** Called before each retry, e.g. to log it. */
  readonly onRetry?: (info: { readonly attempt: number; readonly resumeFrom: number; readonly error: BackupServiceError }) => void;
}

/** Result of {@link BackupServiceClient.downloadToFile}: the file is complete and verified. */
export interface DownloadedFile {
  /** The backup id (for `latest`, the id it resolved to). */
  readonly id: string;
  readonly path: string;
  readonly sizeBytes: number;
  /** SHA-256 (hex) of the file, equal to the service's. */
  readonly sha256: string;
  /** How many times the download resumed after a failure. */
  readonly resumes: number;
}

const RETRYABLE = new Set(['CONNECTION_LOST', 'TIMEOUT', 'UNREACHABLE', 'SERVICE_UNAVAILABLE']);
const MAX_BACKOFF_MS = 5_000;

function isRetryable(err: unknown): err is BackupServiceError {
  if (!(err instanceof BackupServiceError)) return false;
  return RETRYABLE.has(err.code) || (err.code === 'HTTP_ERROR' && err.status !== null && err.status >= 500);
}

/**
 * Appends chunks to a file handle, hashing exactly the bytes that reached the file: after a cut the
 * byte count and the hash state both describe the file, so a resume continues both where they stop.
 */
class FileSink {
  written = 0;
  #hash: Hash = createHash('sha256');
  /** The chunk on its way to the file, if any. */
  #inFlight: Promise<void> = Promise.resolve();

  constructor(
    private readonly fh: FileHandle,
    private readonly onChunk: () => void,
  ) {}

  async reset(): Promise<void> {
    await this.fh.truncate(0);
    this.written = 0;
    this.#hash = createHash('sha256');
  }

  writable(): Writable {
    return new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        this.#inFlight = this.fh.write(chunk, 0, chunk.length, this.written).then(
          () => {
            this.#hash.update(chunk);
            this.written += chunk.length;
            this.onChunk();
            callback();
          },
          (err: Error) => callback(err),
        );
      },
    });
  }

  /**
   * Resolves once no chunk is on its way to the file. A pipeline rejects as soon as the body
   * fails, while the last chunk's write may still be pending: until it settles, `written` and the
   * hash are about to move, and a resume must not start (or the file be closed) before that.
   */
  settled(): Promise<void> {
    return this.#inFlight.catch(() => undefined);
  }

  digest(): string {
    return this.#hash.digest('hex');
  }
}

/** The checksum and size the whole file must have, fixed by the first answer. */
interface Expected {
  id: string;
  sha256: string | null;
  sizeBytes: number | null;
  etag: string | null;
}

/** The format whose extension `path` ends in (before a `.age`), when it ends in one of them, and whether it ends in `.age`. */
function kindOfPath(path: string): { format: CompressionFormat; encrypted: boolean } | null {
  const found = Object.entries(COMPRESSION_FORMATS).find(([, f]) => plainNameOf(path).endsWith(f.extension));
  return found === undefined ? null : { format: found[0] as CompressionFormat, encrypted: isEncryptedId(path) };
}

/** The extension a file of this kind of backup should have: `.sql.gz`, `.sql.zst`, `.sql.gz.age`, … */
function extensionOf(kind: { format: CompressionFormat; encrypted: boolean }): string {
  return `${COMPRESSION_FORMATS[kind.format].extension}${kind.encrypted ? ENCRYPTED_EXTENSION : ''}`;
}

export async function downloadToFile(
  client: BackupServiceClient,
  idOrLatestArg: string,
  pathArg: string | ((id: string) => string),
  opts: DownloadToFileOptions = {},
): Promise<DownloadedFile> {
  const { signal } = opts;
  const maxFailures = opts.retries ?? 5;
  signal?.throwIfAborted();
  let idOrLatest = idOrLatestArg;
  if (typeof pathArg === 'function' && idOrLatest === 'latest') {
    // The file is named after the backup, so which one `latest` is must be known before it is opened.
    const latest = await client.latestBackup(signal ? { signal } : {});
    if (latest === null) throw new BackupServiceError('NOT_FOUND', `db-backup-service at ${client.baseUrl} has no successful backup yet`, { status: 404 });
    idOrLatest = latest.id;
  }
  const path = typeof pathArg === 'function' ? pathArg(idOrLatest) : pathArg;
  const partial = `${path}.partial`;
  // 0600: a backup is a full copy of a production database.
  const fh = await open(partial, 'w', 0o600);
  let expected: Expected | null = null;
  const sink = new FileSink(fh, () => opts.onProgress?.({ receivedBytes: sink.written, totalBytes: expected?.sizeBytes ?? null }));
  let failures = 0;
  let resumes = 0;

  const retryOrThrow = async (err: unknown, progressed: boolean): Promise<void> => {
    if (signal?.aborted) throw signal.reason;
    if (progressed) failures = 0;
    if (!isRetryable(err) || failures >= maxFailures) throw err;
    failures += 1;
    resumes += 1;
    opts.onRetry?.({ attempt: failures, resumeFrom: sink.written, error: err });
    try {
      await delay(Math.min(MAX_BACKOFF_MS, 200 * 2 ** (failures - 1)), undefined, signal ? { signal } : undefined);
    } catch (delayErr) {
      throw signal?.aborted ? signal.reason : delayErr;
    }
  };

  try {
    for (;;) {
      signal?.throwIfAborted();
      const resumeFrom = sink.written;
      let dl: BackupDownload;
      try {
        // After the first answer, ask for that concrete id: "latest" may move on meanwhile.
        dl = await client.download(expected?.id ?? idOrLatest, {
          ...(signal ? { signal } : {}),
          ...(resumeFrom > 0 ? { range: { start: resumeFrom }, ...(expected?.etag ? { ifRange: expected.etag } : {}) } : {}),
        });
      } catch (err) {
        if (err instanceof BackupServiceError && err.code === 'RANGE_NOT_SATISFIABLE' && resumeFrom > 0) {
          // The file holds more than the backup has: start over rather than trust any of it.
          await sink.reset();
          await retryOrThrow(new BackupServiceError('CONNECTION_LOST', err.message, { status: err.status, problem: err.problem, cause: err }), false);
          continue;
        }
        await retryOrThrow(err, false);
        continue;
      }

      if (expected === null) {
        // A file named for another kind would be restored (or decrypted) the wrong way later.
        const named = kindOfPath(path);
        const actual = { format: dl.format, encrypted: isEncryptedId(dl.id) };
        if (named !== null && (named.format !== actual.format || named.encrypted !== actual.encrypted)) {
          dl.stream.destroy();
          const what = (kind: typeof actual) => `${kind.encrypted ? 'an encrypted ' : 'a '}${kind.format} backup`;
          throw new BackupServiceError(
            'FORMAT_MISMATCH',
            `${dl.id} is ${what(actual)}, but ${path} ends in ${extensionOf(named)} (${what(named)}): name the file ${extensionOf(actual)}, or pass a function of the id as the path, e.g. (id) => \`/var/tmp/\${id}\``,
          );
        }
        expected = { id: dl.id, sha256: dl.sha256, sizeBytes: dl.sizeBytes, etag: dl.etag };
      } else if (dl.status === 200 || (dl.sha256 !== null && expected.sha256 !== null && dl.sha256 !== expected.sha256)) {
        // A 200 to a ranged request: the service ignored the range, or If-Range found the backup
        // changed. Either way the body is the whole backup: restart the file with it.
        if (dl.status !== 200) {
          dl.stream.destroy();
          throw new BackupServiceError('INVALID_RESPONSE', `db-backup-service at ${client.baseUrl} resumed ${expected.id} with a different checksum`, { status: dl.status });
        }
        expected = { id: dl.id, sha256: dl.sha256 ?? expected.sha256, sizeBytes: dl.sizeBytes ?? expected.sizeBytes, etag: dl.etag };
        await sink.reset();
      }

      try {
        await pipeline(dl.stream, sink.writable());
        break;
      } catch (err) {
        await sink.settled();
        await retryOrThrow(err, sink.written > resumeFrom);
      }
    }

    if (expected === null) throw new Error('unreachable: download loop ended without an answer');
    await fh.sync();
    const sha256 = sink.digest();
    const sizeBytes = sink.written;
    let want = expected.sha256;
    let wantSize = expected.sizeBytes;
    if (want === null) {
      // No checksum header (e.g. stripped by a proxy): the listing carries the sidecar's checksum.
      const meta = (await client.listBackups(signal ? { signal } : {})).find((b) => b.id === expected?.id);
      if (!meta) {
        throw new BackupServiceError('INVALID_RESPONSE', `db-backup-service at ${client.baseUrl} sent ${expected.id} without a checksum, and the backup is not in its listing`);
      }
      want = meta.sha256;
      wantSize = meta.sizeBytes;
    }
    if (sha256 !== want || (wantSize !== null && sizeBytes !== wantSize)) {
      throw new BackupServiceError(
        'CHECKSUM_MISMATCH',
        `downloaded ${expected.id} does not match its checksum: got sha256 ${sha256} (${sizeBytes} bytes), expected ${want}${wantSize === null ? '' : ` (${wantSize} bytes)`}; the partial file was deleted`,
      );
    }
    await fh.close();
    await rename(partial, path);
    return { id: expected.id, path, sizeBytes, sha256, resumes };
  } catch (err) {
    await sink.settled();
    await fh.close().catch(() => undefined);
    // Nothing half-written survives: a later call starts over (the partial cannot be trusted).
    await rm(partial, { force: true });
    throw err;
  }
}
