import type { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { initClient } from '@ts-rest/core';
import {
  apiContract,
  BackupSchema,
  COMPRESSION_FORMATS,
  compressionOfId,
  contentTypeOfId,
  ENCRYPTED_CONTENT_TYPE,
  HealthSchema,
  InfoSchema,
  isBackupId,
  isEncryptedId,
  JobConflictSchema,
  JobSchema,
  PIN_REASON_MAX_LENGTH,
  PinRequestSchema,
  ProblemSchema,
  redact,
  RetentionPlanSchema,
  type Backup,
  type CompressionFormat,
  type Health,
  type Info,
  type Job,
  type JobConflict,
  type JobProgress,
  type RetentionPlan,
} from './generated/contract/index.js';
import { z } from 'zod';
import { downloadToFile, type DownloadedFile, type DownloadToFileOptions } from './download-to-file.js';
import { BackupServiceError, codeForStatus, displayUrl } from './errors.js';
import {
  parseContentDispositionFilename,
  parseContentRange,
  parseLength,
  sha256FromEtag,
  sha256FromReprDigest,
  type ContentRange,
} from './headers.js';
import { bodyStream, createFetcher, isRawBody, type Transport } from './transport.js';

/** Options of {@link createClient}. */
export interface ClientOptions {
  /** Where the service listens, e.g. `http://db-backup:8080` (without `/api/v1`). */
  readonly baseUrl: string;
  /** The service's `API_TOKEN`, sent as `Authorization: Bearer`. Never part of an error message. */
  readonly token: string;
  /** A fetch implementation (default: the global fetch of Node >= 22). */
  readonly fetch?: typeof globalThis.fetch;
  /**
   * Deadline in ms for a JSON call (headers and body), for the headers of a download, and for
   * each wait for the next chunk of a download body. Default 30 000. A download as a whole has no
   * deadline: it may take as long as it keeps receiving data.
   */
  readonly timeoutMs?: number;
}

/** Options every call accepts. */
export interface CallOptions {
  /** Aborts the call; the promise then rejects with `signal.reason`. */
  readonly signal?: AbortSignal;
}

/**
 * Result of {@link BackupServiceClient.triggerBackup} and {@link BackupServiceClient.triggerDrill}.
 * A running job of the same kind is not an error: the service runs one backup and one drill at a
 * time and answers 409 with the running job's id, which can be polled.
 */
export type TriggerResult =
  | { readonly kind: 'started'; readonly job: Job }
  | { readonly kind: 'conflict'; readonly jobId: string; readonly conflict: JobConflict };

/** Options of {@link BackupServiceClient.waitForJob}. */
export interface WaitForJobOptions extends CallOptions {
  /** Pause between polls; default 1000 ms. */
  readonly intervalMs?: number;
  /** Give up (BackupServiceError `JOB_WAIT_TIMEOUT`) when the job has not finished by then; default: wait forever. */
  readonly timeoutMs?: number;
  /** Called with every polled state. */
  readonly onPoll?: (job: Job) => void;
  /**
   * Called when a poll finds the job's `progress` changed (a running backup reports it every
   * 250 ms; the finished job keeps its last one): bytes dumped and stored, rate, elapsed time and
   * the expected total (the previous backup's dump size, null when there is none). Never called
   * while `progress` is null (a queued job, a drill).
   */
  readonly onProgress?: (progress: JobProgress, job: Job) => void;
}

/** Options of {@link BackupServiceClient.download}. */
export interface DownloadOptions extends CallOptions {
  /** Ask for a byte range (206). `end` is inclusive; omit it for "to the end". */
  readonly range?: { readonly start: number; readonly end?: number };
  /**
   * Sent as `If-Range` with `range`: the ETag of the representation the caller already holds part
   * of. When the backup changed, the service answers 200 with the whole body instead of a 206.
   */
  readonly ifRange?: string;
}

/** Options of {@link BackupServiceClient.pin}. */
export interface PinOptions extends CallOptions {
  /** Why the backup is kept (1-500 characters after trimming), shown as `pinned.reason`; omit it for none. */
  readonly reason?: string;
}

/** An open download: headers are in, `stream` delivers the body. */
export interface BackupDownload {
  /** The backup id, from Content-Disposition (for `latest`, the id it resolved to). */
  readonly id: string;
  /** How the body is compressed: the id's extension (`.sql.gz` gzip, `.sql.zst` zstd), which the Content-Type agrees with. */
  readonly format: CompressionFormat;
  /** 200 for the whole backup, 206 for the requested range. */
  readonly status: 200 | 206;
  /** Size of the whole backup (Content-Length of a 200, total of a 206's Content-Range); null when not sent. */
  readonly sizeBytes: number | null;
  /** SHA-256 (hex) of the whole backup, from Repr-Digest or the ETag; null when neither carries one. */
  readonly sha256: string | null;
  /** The ETag as sent, for `ifRange` when resuming. */
  readonly etag: string | null;
  /** The range this answer carries (206 only). */
  readonly range: ContentRange | null;
  /** Bytes in this answer's body, when known. */
  readonly contentLength: number | null;
  /**
   * The body. Read it to the end or destroy it: destroying aborts the HTTP request. It errors with
   * a BackupServiceError (`CONNECTION_LOST`, `TIMEOUT`) when the connection breaks, or with the
   * signal's reason on abort.
   */
  readonly stream: Readable;
}

/** The typed facade over the db-backup-service REST API. Create one with {@link createClient}. */
export interface BackupServiceClient {
  /** The base URL without credentials. */
  readonly baseUrl: string;
  /** POST /api/v1/backups: starts a backup, or reports the one already running as a value. */
  triggerBackup(opts?: CallOptions): Promise<TriggerResult>;
  /**
   * POST /api/v1/backups/:id/drill: starts a restore drill of a backup id or `'latest'` (a job of
   * kind `drill`), or reports the drill already running as a value. An unknown backup throws
   * NOT_FOUND. The drill's result is the job's status (failed: `errorMessage` says why) and the
   * backup's `drill`.
   */
  triggerDrill(idOrLatest: string, opts?: CallOptions): Promise<TriggerResult>;
  /** GET /api/v1/backups/jobs/:jobId. Jobs live in the service's memory: a restart forgets them (NOT_FOUND). */
  getJob(jobId: string, opts?: CallOptions): Promise<Job>;
  /** Polls a job until it is `succeeded` or `failed` and returns it in that state (a failed job is not thrown). */
  waitForJob(jobId: string, opts?: WaitForJobOptions): Promise<Job>;
  /** GET /api/v1/backups: every stored, verified backup, newest first. */
  listBackups(opts?: CallOptions): Promise<Backup[]>;
  /** GET /api/v1/backups/latest: the newest successful backup, or null when there is none yet (404). */
  latestBackup(opts?: CallOptions): Promise<Backup | null>;
  /** Opens a streaming download of a backup id or `'latest'`. */
  download(idOrLatest: string, opts?: DownloadOptions): Promise<BackupDownload>;
  /**
   * Downloads to `path` through `path + '.partial'`, resuming after a cut connection, and renames
   * into place only when the SHA-256 of the whole file matches what the service announced.
   * `path` may be a function of the backup id (`(id) => \`/var/tmp/${id}\``), so that a file of
   * `latest` gets the name, and with it the extension (`.sql.gz` or `.sql.zst`), of the backup it is;
   * a path ending in the other format's extension is refused (`FORMAT_MISMATCH`).
   */
  downloadToFile(idOrLatest: string, path: string | ((id: string) => string), opts?: DownloadToFileOptions): Promise<DownloadedFile>;
  /**
   * PUT /api/v1/backups/:id/pin: retention never deletes the backup while it is pinned. Returns the
   * backup with `pinned` set (`{ at, reason }`). Pinning a pinned backup replaces its reason and
   * time. An unknown backup throws NOT_FOUND; an id that is not a backup id (or `'latest'`) is
   * refused with NOT_FOUND before any request.
   */
  pin(id: string, opts?: PinOptions): Promise<Backup>;
  /** DELETE /api/v1/backups/:id/pin: returns the backup with `pinned` null (also when it was not pinned). NOT_FOUND as for {@link pin}. */
  unpin(id: string, opts?: CallOptions): Promise<Backup>;
  /**
   * GET /api/v1/retention: what retention would do now, with the policy it applies: every listed
   * backup, newest first, `keep` with each rule that keeps it (`pinned`, `newest success`,
   * `daily 2026-11-30`, …) or `delete` with `expired`.
   */
  retentionPlan(opts?: CallOptions): Promise<RetentionPlan>;
  /** GET /health (no auth): a 503 is returned as a value with status DOWN, not thrown. */
  health(opts?: CallOptions): Promise<Health>;
  /** GET /info (no auth). */
  info(opts?: CallOptions): Promise<Info>;
}

const DEFAULT_TIMEOUT_MS = 30_000;

function sameProgress(a: JobProgress, b: JobProgress | null): boolean {
  return (
    b !== null &&
    a.dumpedBytes === b.dumpedBytes &&
    a.storedBytes === b.storedBytes &&
    a.elapsedMs === b.elapsedMs &&
    a.bytesPerSecond === b.bytesPerSecond &&
    a.estimatedTotalBytes === b.estimatedTotalBytes
  );
}

interface ApiResponse {
  status: number;
  body: unknown;
  headers: Headers;
}

/**
 * Creates a client for one service. Every method throws {@link BackupServiceError} on failure
 * (or rejects with `signal.reason` when aborted).
 *
 * @example
 * const client = createClient({ baseUrl: 'http://db-backup:8080', token: process.env.API_TOKEN! });
 * const started = await client.triggerBackup();
 * const jobId = started.kind === 'started' ? started.job.jobId : started.jobId;
 * const job = await client.waitForJob(jobId, { timeoutMs: 3_600_000 });
 */
export function createClient(options: ClientOptions): BackupServiceClient {
  const baseUrl = options.baseUrl.replace(/\/+$/, '');
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new TypeError('createClient: baseUrl must be an http(s) URL such as http://db-backup:8080');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`createClient: baseUrl must be an http(s) URL such as http://db-backup:8080 (got ${displayUrl(baseUrl)})`);
  }
  if (url.username !== '' || url.password !== '') {
    // fetch refuses such URLs anyway; the token is the only credential the service knows.
    throw new TypeError(`createClient: baseUrl must not contain user info (got ${displayUrl(baseUrl)}); pass the API token as \`token\``);
  }
  const token = options.token;
  const transport: Transport = {
    baseUrl,
    displayUrl: displayUrl(baseUrl),
    fetch: options.fetch ?? globalThis.fetch,
    timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    // Short strings would redact ordinary words; a real token is long (the service demands >= 32).
    redact: (text) => (token.length >= 8 ? redact(text, token) : text),
  };
  const api = initClient(apiContract, {
    baseUrl,
    baseHeaders: { authorization: `Bearer ${token}` },
    api: createFetcher(transport),
    validateResponse: false,
  });

  /** An error for an answer the caller did not expect, carrying the problem+json body when there is one. */
  const failure = (res: ApiResponse, what: string): BackupServiceError => {
    const parsed = ProblemSchema.safeParse(res.body);
    const problem = parsed.success ? parsed.data : null;
    const reason = problem ? (problem.detail ?? problem.title) : `HTTP ${res.status}`;
    const hint = res.status === 401 ? ' (check the API token: it must equal the service\'s API_TOKEN)' : '';
    return new BackupServiceError(codeForStatus(res.status), transport.redact(`db-backup-service at ${transport.displayUrl} answered ${res.status} to ${what}: ${reason}${hint}`), {
      status: res.status,
      problem,
    });
  };

  /** Validates a success body against the contract's schema. */
  const expectBody = <T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, res: ApiResponse, what: string): T => {
    const parsed = schema.safeParse(res.body);
    if (parsed.success) return parsed.data;
    const issue = parsed.error.issues[0];
    const where = issue ? `${issue.path.join('.') || 'body'}: ${issue.message}` : 'unexpected body';
    throw new BackupServiceError('INVALID_RESPONSE', `db-backup-service at ${transport.displayUrl} sent a ${res.status} to ${what} that does not match the API contract (${where})`, {
      status: res.status,
    });
  };

  const fetchOptions = (opts: CallOptions | undefined): { fetchOptions?: { signal: AbortSignal } } =>
    opts?.signal ? { fetchOptions: { signal: opts.signal } } : {};

  /** Checked before any request (invariant 7): an id never becomes an arbitrary URL path. */
  const requireBackupId = (id: string, orLatest: boolean): void => {
    if ((orLatest && id === 'latest') || isBackupId(id)) return;
    throw new BackupServiceError(
      'NOT_FOUND',
      `${JSON.stringify(id.slice(0, 120))} is not a backup id (expected <prefix>_<yyyyMMddTHHmmssZ>.sql.gz or .sql.zst, .age after it when encrypted${orLatest ? ', or "latest"' : ''})`,
    );
  };

  const client: BackupServiceClient = {
    baseUrl: transport.displayUrl,

    async triggerBackup(opts) {
      const what = 'POST /api/v1/backups';
      const res = await api.triggerBackup(fetchOptions(opts));
      if (res.status === 202) return { kind: 'started', job: expectBody(JobSchema, res, what) };
      if (res.status === 409) {
        const conflict = expectBody(JobConflictSchema, res, what);
        return { kind: 'conflict', jobId: conflict.jobId, conflict };
      }
      throw failure(res, what);
    },

    async triggerDrill(idOrLatest, opts) {
      const what = `POST /api/v1/backups/${idOrLatest}/drill`;
      const res = await api.triggerDrill({ params: { id: encodeURIComponent(idOrLatest) }, ...fetchOptions(opts) });
      if (res.status === 202) return { kind: 'started', job: expectBody(JobSchema, res, what) };
      if (res.status === 409) {
        const conflict = expectBody(JobConflictSchema, res, what);
        return { kind: 'conflict', jobId: conflict.jobId, conflict };
      }
      throw failure(res, what);
    },

    async getJob(jobId, opts) {
      const what = `GET /api/v1/backups/jobs/${jobId}`;
      const res = await api.getJob({ params: { jobId: encodeURIComponent(jobId) }, ...fetchOptions(opts) });
      if (res.status === 200) return expectBody(JobSchema, res, what);
      throw failure(res, what);
    },

    async waitForJob(jobId, opts = {}) {
      const intervalMs = opts.intervalMs ?? 1000;
      const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
      let lastProgress: JobProgress | null = null;
      for (;;) {
        const job = await client.getJob(jobId, opts);
        opts.onPoll?.(job);
        if (job.progress !== null && !sameProgress(job.progress, lastProgress)) opts.onProgress?.(job.progress, job);
        lastProgress = job.progress;
        if (job.status === 'succeeded' || job.status === 'failed') return job;
        const left = deadline - Date.now();
        if (left <= 0) {
          throw new BackupServiceError('JOB_WAIT_TIMEOUT', `backup job ${jobId} is still ${job.status} after ${opts.timeoutMs} ms (db-backup-service at ${transport.displayUrl})`);
        }
        try {
          await delay(Math.min(intervalMs, left), undefined, opts.signal ? { signal: opts.signal } : undefined);
        } catch (err) {
          throw opts.signal?.aborted ? opts.signal.reason : err;
        }
      }
    },

    async listBackups(opts) {
      const what = 'GET /api/v1/backups';
      const res = await api.listBackups(fetchOptions(opts));
      if (res.status === 200) return expectBody(z.array(BackupSchema), res, what);
      throw failure(res, what);
    },

    async latestBackup(opts) {
      const what = 'GET /api/v1/backups/latest';
      const res = await api.getLatestBackup(fetchOptions(opts));
      if (res.status === 200) return expectBody(BackupSchema, res, what);
      // "No successful backup yet" is an ordinary state for a fresh service, not a failure.
      if (res.status === 404) return null;
      throw failure(res, what);
    },

    async download(idOrLatest, opts = {}) {
      requireBackupId(idOrLatest, true);
      const latest = idOrLatest === 'latest';
      const what = latest ? 'GET /api/v1/backups/latest/download' : `GET /api/v1/backups/${idOrLatest}/download`;
      const extraHeaders: Record<string, string> = {
        accept: [...Object.values(COMPRESSION_FORMATS).map((f) => f.contentType), ENCRYPTED_CONTENT_TYPE, 'application/problem+json'].join(', '),
      };
      if (opts.range) {
        const { start, end } = opts.range;
        if (!Number.isSafeInteger(start) || start < 0 || (end !== undefined && (!Number.isSafeInteger(end) || end < start))) {
          throw new RangeError(`download: invalid range ${JSON.stringify(opts.range)}`);
        }
        extraHeaders.range = `bytes=${start}-${end ?? ''}`;
        if (opts.ifRange) extraHeaders['if-range'] = opts.ifRange;
      }
      // Our own controller joins the caller's signal: the body stream aborts it on destroy or idle.
      const abortFetch = new AbortController();
      const signal = opts.signal ? AbortSignal.any([opts.signal, abortFetch.signal]) : abortFetch.signal;
      const request = { extraHeaders, fetchOptions: { signal } };
      const res = latest
        ? await api.downloadLatestBackup(request)
        : await api.downloadBackup({ params: { id: encodeURIComponent(idOrLatest) }, ...request });

      if (!isRawBody(res.body)) throw failure(res, what);
      const response = res.body.response;
      const discard = (): void => {
        abortFetch.abort();
        response.body?.cancel().catch(() => undefined);
      };
      if (res.status !== 200 && res.status !== 206) {
        discard();
        throw new BackupServiceError('INVALID_RESPONSE', `db-backup-service at ${transport.displayUrl} answered ${res.status} to ${what}, expected 200 or 206`, { status: res.status });
      }
      const invalid = (why: string): BackupServiceError => {
        discard();
        return new BackupServiceError('INVALID_RESPONSE', `db-backup-service at ${transport.displayUrl} sent a download (${what}) ${why}`, { status: res.status });
      };

      const headers = response.headers;
      const filename = parseContentDispositionFilename(headers.get('content-disposition'));
      // The id may become a file name on the caller's side: only a well-formed id is accepted.
      const id = filename !== null && isBackupId(filename) ? filename : latest ? null : idOrLatest;
      if (id === null) throw invalid('without a valid backup id in Content-Disposition');
      if (!latest && id !== idOrLatest) throw invalid(`for ${JSON.stringify(id)} instead of the requested backup`);
      const format = compressionOfId(id);
      // Another type (a proxy's application/octet-stream) says nothing; the other format's type
      // contradicts the id, and so does any compression's type for an encrypted backup (it is ciphertext).
      const contentType = headers.get('content-type')?.split(';')[0]?.trim().toLowerCase() ?? '';
      const typed = Object.entries(COMPRESSION_FORMATS).find(([, f]) => f.contentType === contentType);
      if (typed !== undefined && (isEncryptedId(id) || typed[0] !== format)) {
        throw invalid(`as ${contentType}, but ${id} is ${isEncryptedId(id) ? 'encrypted' : `a ${format} backup`} (${contentTypeOfId(id)})`);
      }

      const contentLength = parseLength(headers.get('content-length'));
      const range = res.status === 206 ? parseContentRange(headers.get('content-range')) : null;
      if (res.status === 206) {
        if (range === null) throw invalid('with a 206 but no valid Content-Range');
        if (opts.range && range.start !== opts.range.start) throw invalid(`starting at byte ${range.start} instead of ${opts.range.start}`);
        if (contentLength !== null && contentLength !== range.end - range.start + 1) throw invalid('whose Content-Length does not match its Content-Range');
      }
      const sizeBytes = res.status === 206 ? (range?.total ?? null) : contentLength;

      const etag = headers.get('etag');
      const fromDigest = sha256FromReprDigest(headers.get('repr-digest'));
      const fromEtag = sha256FromEtag(etag);
      if (fromDigest !== null && fromEtag !== null && fromDigest !== fromEtag) throw invalid('whose Repr-Digest and ETag disagree');
      if (response.body === null) throw invalid('without a body');

      const stream = bodyStream(response.body, {
        transport,
        what,
        expectedBytes: contentLength,
        callerSignal: opts.signal,
        abortFetch,
      });
      return {
        id,
        format,
        status: res.status,
        sizeBytes,
        sha256: fromDigest ?? fromEtag,
        etag,
        range,
        contentLength,
        stream,
      };
    },

    downloadToFile(idOrLatest, path, opts) {
      return downloadToFile(client, idOrLatest, path, opts);
    },

    async pin(id, opts = {}) {
      requireBackupId(id, false);
      // No body without a reason: the service then stores the pin with reason null.
      const body = opts.reason === undefined ? undefined : { reason: opts.reason };
      if (body !== undefined && !PinRequestSchema.safeParse(body).success) {
        // Refused before any request, as a bad range is: a caller's mistake, not the service's answer.
        throw new RangeError(`pin: reason must be a string of 1-${PIN_REASON_MAX_LENGTH} characters (after trimming)`);
      }
      const what = `PUT /api/v1/backups/${id}/pin`;
      const res = await api.pinBackup({ params: { id: encodeURIComponent(id) }, body, ...fetchOptions(opts) });
      if (res.status === 200) return expectBody(BackupSchema, res, what);
      throw failure(res, what);
    },

    async unpin(id, opts) {
      requireBackupId(id, false);
      const what = `DELETE /api/v1/backups/${id}/pin`;
      const res = await api.unpinBackup({ params: { id: encodeURIComponent(id) }, ...fetchOptions(opts) });
      if (res.status === 200) return expectBody(BackupSchema, res, what);
      throw failure(res, what);
    },

    async retentionPlan(opts) {
      const what = 'GET /api/v1/retention';
      const res = await api.retentionPlan(fetchOptions(opts));
      if (res.status === 200) return expectBody(RetentionPlanSchema, res, what);
      throw failure(res, what);
    },

    async health(opts) {
      const what = 'GET /health';
      const res = await api.health(fetchOptions(opts));
      if (res.status === 200 || res.status === 503) return expectBody(HealthSchema, res, what);
      throw failure(res, what);
    },

    async info(opts) {
      const what = 'GET /info';
      const res = await api.info(fetchOptions(opts));
      if (res.status === 200) return expectBody(InfoSchema, res, what);
      throw failure(res, what);
    },
  };
  return client;
}

