import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { redact } from '@db-backup-service/contract';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { S3Settings } from '../config/config.js';
import { assertValidRange, isSafeName } from './checks.js';
import { StorageError, StorageExistsError, StorageNotFoundError, assertSafeName } from './storage.js';
import type { ReadRange, Storage, StoredObject } from './storage.js';

const MIB = 1024 * 1024;
/** S3's own bounds for a part (the last part may be smaller). */
const S3_MIN_PART_SIZE = 5 * MIB;
const S3_MAX_PART_SIZE = 5 * 1024 * MIB;
/** S3 allows 10,000 parts; aim lower so that a size hint that is a little low still fits. */
const TARGET_PARTS = 9_000;
/**
 * Our floor is S3's: lib-storage holds about two parts at a time (the one uploading and the next
 * one's chunks, then their concatenation), so the part size is most of what an S3 backup needs
 * beyond a local one. Measured (bench, 100 and 300 MB dumps): peak RSS 160 MB with 8 MiB parts,
 * 153-156 MB with 5 MiB parts. More requests per GB, which no S3-compatible store minds.
 */
const MIN_PART_SIZE = S3_MIN_PART_SIZE;
/** Without a size hint: 16 MiB parts cap an upload at ~156 GiB (10,000 parts), ~32 MiB of memory. */
const DEFAULT_PART_SIZE = 16 * MIB;
const CHECK_TIMEOUT_MS = 3_000;

/**
 * Part size for a multipart upload. `configured` (S3_PART_SIZE_MB) wins, clamped to S3's limits;
 * otherwise it is sized from the expected object size so the upload stays under ~9,000 parts,
 * never below 5 MiB (S3's minimum) and never above 5 GiB (S3's maximum part size).
 */
export function choosePartSize(sizeHintBytes: number | undefined, configured: number | null): number {
  if (configured !== null) return Math.min(S3_MAX_PART_SIZE, Math.max(S3_MIN_PART_SIZE, Math.ceil(configured)));
  if (sizeHintBytes === undefined || !Number.isFinite(sizeHintBytes) || sizeHintBytes <= 0) return DEFAULT_PART_SIZE;
  const perPart = Math.ceil(Math.ceil(sizeHintBytes / TARGET_PARTS) / MIB) * MIB;
  return Math.min(S3_MAX_PART_SIZE, Math.max(MIN_PART_SIZE, perPart));
}

export interface S3StorageOptions extends S3Settings {
  /** Multipart lifecycle events, for logs (and for tests, which need the upload id). */
  readonly onEvent?: (event: S3StorageEvent) => void;
}

export type S3StorageEvent =
  | { readonly type: 'multipart-created'; readonly key: string; readonly uploadId: string }
  | { readonly type: 'multipart-aborted'; readonly key: string; readonly uploadId: string; readonly alreadyGone: boolean }
  | { readonly type: 'multipart-abort-failed'; readonly key: string; readonly uploadId: string; readonly message: string };

type AnyCommand = Parameters<S3Client['send']>[0];

/** Stores objects under `prefix/` in an S3 bucket. The AWS SDK does not leak past this file. */
export class S3Storage implements Storage {
  readonly backend = 's3' as const;
  readonly location: string;
  readonly #client: S3Client;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #endpointText: string;
  readonly #secrets: readonly (string | null)[];
  readonly #partSize: number | null;
  readonly #onEvent: (event: S3StorageEvent) => void;

  constructor(options: S3StorageOptions) {
    this.#bucket = options.bucket;
    this.#prefix = options.prefix.replace(/^\/+|\/+$/g, '');
    this.#secrets = options.credentials === null ? [] : [options.credentials.secretAccessKey, options.credentials.sessionToken];
    this.#partSize = options.partSizeBytes;
    this.#onEvent = options.onEvent ?? (() => undefined);
    this.#endpointText = options.endpoint === null ? `AWS S3 (${options.region})` : withoutUserInfo(options.endpoint);
    this.location = `s3://${this.#bucket}${this.#prefix === '' ? '' : `/${this.#prefix}`}`;
    this.#client = new S3Client({
      region: options.region,
      // Without static keys the SDK's default provider chain applies: environment, shared
      // config/credentials files (AWS_PROFILE), web identity (IRSA), EKS Pod Identity, ECS and EC2
      // instance roles, each refreshed before it expires.
      ...(options.credentials === null
        ? {}
        : {
            credentials: {
              accessKeyId: options.credentials.accessKeyId,
              secretAccessKey: options.credentials.secretAccessKey,
              ...(options.credentials.sessionToken === null ? {} : { sessionToken: options.credentials.sessionToken }),
            },
          }),
      // Nothing waits forever (invariant 12): the SDK sets no timeout of its own, so a proxy or load
      // balancer that accepts a connection and never answers would hang an upload, a listing or a
      // delete (and with it the job and the lock) until TCP gives up, or for ever. The socket
      // timeout is an idle timeout: a long part upload or download that keeps moving is not cut.
      requestHandler: { connectionTimeout: options.connectTimeoutMs, socketTimeout: options.requestTimeoutMs },
      ...(options.endpoint === null
        ? {}
        : {
            endpoint: options.endpoint,
            forcePathStyle: true,
            // Many S3-compatible servers reject the SDK's default CRC32 trailers; send checksums only
            // where S3 requires them. AWS itself keeps the SDK's defaults.
            requestChecksumCalculation: 'WHEN_REQUIRED' as const,
            responseChecksumValidation: 'WHEN_REQUIRED' as const,
          }),
    });
  }

  async putStream(name: string, body: Readable, opts: { signal: AbortSignal; sizeHintBytes?: number }): Promise<{ sizeBytes: number; etag?: string }> {
    const { signal } = opts;
    try {
      assertSafeName(name);
      signal.throwIfAborted();
    } catch (error) {
      // The producer (pg_dump -> gzip) would otherwise wait forever on back-pressure.
      body.destroy();
      throw error;
    }
    const key = this.#key(name);
    let sizeBytes = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        sizeBytes += chunk.length;
        callback(null, chunk);
      },
    });
    const multipart: { uploadId?: string; created?: Promise<unknown> } = {};
    const upload = new Upload({
      client: this.#uploadClient(name, key, signal, multipart),
      // Create-only (see #createOnly): lib-storage passes this to PutObject and CompleteMultipartUpload.
      params: { Bucket: this.#bucket, Key: key, Body: counter, IfNoneMatch: '*' },
      // One part in flight: memory stays at about partSize x 2 whatever the dump size (invariant 5).
      queueSize: 1,
      partSize: choosePartSize(opts.sizeHintBytes, this.#partSize),
      leavePartsOnError: false,
    });
    // The abort signal is deliberately NOT given to Upload: with its abortController, done()
    // rejects at once, possibly while CreateMultipartUpload is still in flight (upload id unknown),
    // and nothing aborts the multipart upload while the body stalls. Instead the signal tears down
    // the pipeline (so the body and Upload's reader fail) and cancels in-flight part requests, and
    // done() settles only once Upload has stopped.
    //
    // Which side failed first decides what is thrown: the body's own error as is (e.g. pg_dump's),
    // an S3 error wrapped. Once Upload stops reading, the body is destroyed with a secondary
    // AbortError, which must not be mistaken for the cause. Registered before pipeline's own
    // listener, this sees a body error while the counter is still intact.
    let bodyError: { error: unknown } | undefined;
    body.once('error', (error: unknown) => {
      if (!counter.destroyed) bodyError = { error };
    });
    const piping = pipeline(body, counter, { signal });
    const uploading = upload.done().catch((error: unknown) => {
      // S3 failed while the body was still flowing: stop reading (pipeline then destroys the body).
      counter.destroy();
      throw error;
    });
    const [piped, uploaded] = await Promise.allSettled([piping, uploading]);
    if (piped.status === 'fulfilled' && uploaded.status === 'fulfilled') {
      const etag = uploaded.value.ETag;
      return etag === undefined ? { sizeBytes } : { sizeBytes, etag };
    }

    body.destroy();
    // The id is known only once CreateMultipartUpload answered; it was sent without the signal so
    // that it always answers. lib-storage has usually aborted already (then: NoSuchUpload,
    // ignored), but not in every path (e.g. when its own abort request fails).
    await multipart.created;
    if (multipart.uploadId !== undefined) await this.#abortMultipart(key, multipart.uploadId);

    if (signal.aborted) throw signal.reason;
    if (bodyError !== undefined) throw bodyError.error;
    const failure = uploaded.status === 'rejected' ? uploaded.reason : undefined;
    if (failure instanceof StorageExistsError) throw failure;
    if (isPreconditionFailed(failure)) throw new StorageExistsError(name, { cause: failure });
    throw this.#wrap(`uploading ${this.#describe(key)}`, uploaded.status === 'rejected' ? uploaded.reason : (piped as PromiseRejectedResult).reason);
  }

  async putSmall(name: string, data: Buffer, opts?: { signal?: AbortSignal }): Promise<void> {
    assertSafeName(name);
    const key = this.#key(name);
    // A single PutObject is atomic in S3: readers see no object or the whole new one.
    const command = new PutObjectCommand({ Bucket: this.#bucket, Key: key, Body: data, ContentLength: data.length, IfNoneMatch: '*' });
    try {
      await this.#createOnly(name, () => this.#call(`writing ${this.#describe(key)}`, (o) => this.#client.send(command, o), opts?.signal));
    } catch (error) {
      if (isPreconditionFailed((error as { cause?: unknown }).cause)) throw new StorageExistsError(name, { cause: error });
      throw error;
    }
  }

  async get(name: string, opts?: { range?: ReadRange; signal?: AbortSignal }): Promise<Readable> {
    assertSafeName(name);
    if (opts?.range) assertValidRange(opts.range);
    const key = this.#key(name);
    const range = opts?.range ? `bytes=${opts.range.start}-${opts.range.end}` : undefined;
    const command = new GetObjectCommand({ Bucket: this.#bucket, Key: key, ...(range === undefined ? {} : { Range: range }) });
    const out = await this.#call(`reading ${this.#describe(key)}`, (o) => this.#client.send(command, o), opts?.signal, name);
    if (!(out.Body instanceof Readable)) {
      throw new StorageError(`reading ${this.#describe(key)}: the response has no readable body`);
    }
    return out.Body;
  }

  async getSmall(name: string, opts?: { signal?: AbortSignal }): Promise<Buffer> {
    const stream = await this.get(name, opts);
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of stream) chunks.push(chunk as Buffer);
    } catch (error) {
      throw this.#wrap(`reading ${this.#describe(this.#key(name))}`, error);
    }
    return Buffer.concat(chunks);
  }

  async stat(name: string): Promise<StoredObject | null> {
    assertSafeName(name);
    const key = this.#key(name);
    try {
      const out = await this.#client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: key }));
      return { name, sizeBytes: out.ContentLength ?? 0, lastModified: out.LastModified ?? new Date(0), ...(out.ETag === undefined ? {} : { etag: out.ETag }) };
    } catch (error) {
      if (isNotFound(error)) return null;
      throw this.#wrap(`reading the metadata of ${this.#describe(key)}`, error);
    }
  }

  async delete(name: string): Promise<void> {
    assertSafeName(name);
    const key = this.#key(name);
    // S3 answers 204 for an absent key too: deleting twice is fine.
    const command = new DeleteObjectCommand({ Bucket: this.#bucket, Key: key });
    await this.#call(`deleting ${this.#describe(key)}`, (o) => this.#client.send(command, o));
  }

  async list(opts?: { signal?: AbortSignal }): Promise<StoredObject[]> {
    const listPrefix = this.#listPrefix();
    const objects: StoredObject[] = [];
    let token: string | undefined;
    for (;;) {
      const command = new ListObjectsV2Command({
        Bucket: this.#bucket,
        Prefix: listPrefix,
        // Deeper keys come back as CommonPrefixes, not as objects.
        Delimiter: '/',
        ...(token === undefined ? {} : { ContinuationToken: token }),
      });
      const page = await this.#call(`listing ${this.location} at ${this.#endpointText}`, (o) => this.#client.send(command, o), opts?.signal);
      for (const item of page.Contents ?? []) {
        const name = item.Key?.slice(listPrefix.length);
        // Only names directly under the prefix that a backup could have (invariants 4 and 7).
        if (name === undefined || !item.Key?.startsWith(listPrefix) || !isSafeName(name)) continue;
        objects.push({ name, sizeBytes: item.Size ?? 0, lastModified: item.LastModified ?? new Date(0) });
      }
      if (page.IsTruncated !== true) return objects;
      if (page.NextContinuationToken === undefined || page.NextContinuationToken === '') {
        // Acting on a partial listing could prune the wrong backups (invariant 4): refuse.
        throw new StorageError(`listing ${this.location} at ${this.#endpointText}: a page was truncated without a continuation token`);
      }
      token = page.NextContinuationToken;
    }
  }

  async cleanupIncomplete(olderThan: Date, owns: (name: string) => boolean): Promise<string[]> {
    const listPrefix = this.#listPrefix();
    const removed: string[] = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const command = new ListMultipartUploadsCommand({
        Bucket: this.#bucket,
        Prefix: listPrefix,
        ...(keyMarker === undefined ? {} : { KeyMarker: keyMarker }),
        ...(uploadIdMarker === undefined ? {} : { UploadIdMarker: uploadIdMarker }),
      });
      const page = await this.#call(`listing multipart uploads under ${this.location} at ${this.#endpointText}`, (o) => this.#client.send(command, o));
      for (const item of page.Uploads ?? []) {
        if (item.Key === undefined || item.UploadId === undefined || item.Initiated === undefined) continue;
        const name = item.Key.slice(listPrefix.length);
        // Never touch keys outside our prefix or not named like ours (invariants 4, 11), nor an
        // upload younger than `olderThan`: it may be another service's, still in progress.
        if (!item.Key.startsWith(listPrefix) || !isSafeName(name) || !owns(name) || item.Initiated >= olderThan) continue;
        await this.#abortMultipart(item.Key, item.UploadId);
        removed.push(name);
      }
      if (page.IsTruncated !== true) return removed;
      if (page.NextKeyMarker === undefined && page.NextUploadIdMarker === undefined) {
        throw new StorageError(`listing multipart uploads under ${this.location} at ${this.#endpointText}: a page was truncated without a marker`);
      }
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  async check(opts?: { signal?: AbortSignal }): Promise<void> {
    const timeout = AbortSignal.timeout(CHECK_TIMEOUT_MS);
    const signal = opts?.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    try {
      await this.#client.send(new HeadBucketCommand({ Bucket: this.#bucket }), { abortSignal: signal });
    } catch (error) {
      if (opts?.signal?.aborted) throw opts.signal.reason;
      const reason = timeout.aborted
        ? `no answer within ${CHECK_TIMEOUT_MS / 1000} s`
        : isNotFound(error) ? 'the bucket does not exist' : this.#reason(error);
      throw new StorageError(
        `S3 bucket "${this.#bucket}" at ${this.#endpointText} is not usable: ${reason}. ` +
          'Check S3_ENDPOINT, S3_BUCKET, the region and the credentials (and that the bucket exists)',
        { cause: error },
      );
    }
  }

  destroy(): void {
    this.#client.destroy();
  }

  #key(name: string): string {
    return this.#prefix === '' ? name : `${this.#prefix}/${name}`;
  }

  #listPrefix(): string {
    return this.#prefix === '' ? '' : `${this.#prefix}/`;
  }

  #describe(key: string): string {
    return `s3://${this.#bucket}/${key} at ${this.#endpointText}`;
  }

  /**
   * The client lib-storage's Upload talks through: part uploads get the abort signal (an abort
   * cancels the request in flight), CreateMultipartUpload does not (we must learn the upload id
   * to abort it, even when aborting), nor do Complete/Abort (they must not be cut half-way).
   */
  #uploadClient(name: string, key: string, signal: AbortSignal, multipart: { uploadId?: string; created?: Promise<unknown> }): S3Client {
    const client = this.#client;
    const send = (command: AnyCommand): Promise<unknown> => {
      if (command instanceof CreateMultipartUploadCommand) {
        const pending = client.send(command);
        multipart.created = pending.then((out) => {
          if (out.UploadId === undefined) return;
          multipart.uploadId = out.UploadId;
          this.#onEvent({ type: 'multipart-created', key, uploadId: out.UploadId });
        }, () => undefined);
        return pending;
      }
      if (command instanceof CompleteMultipartUploadCommand) return this.#createOnly(name, () => client.send(command));
      if (command instanceof PutObjectCommand) return this.#createOnly(name, () => client.send(command, { abortSignal: signal }));
      if (command instanceof AbortMultipartUploadCommand) return client.send(command);
      return client.send(command, { abortSignal: signal });
    };
    return new Proxy(client, {
      get: (target, property) => (property === 'send' ? send : Reflect.get(target, property, target)),
    });
  }

  /**
   * Commits an object only if its name is free. The request carries `If-None-Match: *` (AWS S3,
   * MinIO and others refuse with 412 when the key exists, atomically). Stores that ignore the
   * header (the fauxqs emulator does) would silently replace the object, so the key is also
   * looked up just before: that narrows the window to the moment between the two requests; it
   * cannot close it.
   */
  async #createOnly<T>(name: string, commit: () => Promise<T>): Promise<T> {
    if ((await this.stat(name)) !== null) throw new StorageExistsError(name);
    return commit();
  }

  async #abortMultipart(key: string, uploadId: string): Promise<void> {
    try {
      // No signal: cleanup runs precisely when the caller's signal has been aborted.
      await this.#client.send(new AbortMultipartUploadCommand({ Bucket: this.#bucket, Key: key, UploadId: uploadId }));
      this.#onEvent({ type: 'multipart-aborted', key, uploadId, alreadyGone: false });
    } catch (error) {
      if (errorName(error) === 'NoSuchUpload') {
        this.#onEvent({ type: 'multipart-aborted', key, uploadId, alreadyGone: true });
        return;
      }
      // Best effort: the caller rethrows the original error; cleanupIncomplete (or a bucket
      // lifecycle rule) removes the parts later.
      this.#onEvent({ type: 'multipart-abort-failed', key, uploadId, message: this.#reason(error) });
    }
  }

  /**
   * Runs one SDK call: an abort throws the signal's reason, a missing object (when `notFound` names
   * it) StorageNotFoundError, anything else a StorageError with a credential-free message.
   */
  async #call<T>(what: string, run: (options: { abortSignal?: AbortSignal }) => Promise<T>, signal?: AbortSignal, notFound?: string): Promise<T> {
    try {
      return await run(signal ? { abortSignal: signal } : {});
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (notFound !== undefined && isNotFound(error)) throw new StorageNotFoundError(notFound);
      throw this.#wrap(what, error);
    }
  }

  #wrap(what: string, error: unknown): StorageError {
    // The SDK's timeout text names its own option; say which of ours to change.
    const hint = errorName(error) === 'TimeoutError' ? ' (see S3_CONNECT_TIMEOUT and S3_REQUEST_TIMEOUT)' : '';
    return new StorageError(`${what} failed: ${this.#reason(error)}${hint}`, { cause: error });
  }

  /** A one-line reason from an SDK or network error, never containing the secret key. */
  #reason(error: unknown): string {
    let text: string;
    if (error instanceof AggregateError && error.errors.length > 0 && error.message === '') {
      text = this.#reason(error.errors[0]);
    } else if (error instanceof Error) {
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      const code = (error as NodeJS.ErrnoException).code;
      const message = error.message === '' || error.message === 'UnknownError' ? (code ?? '') : error.message;
      text = [error.name, status === undefined ? '' : `(HTTP ${status})`, code !== undefined && !message.includes(code) ? `[${code}]` : '']
        .filter((part) => part !== '').join(' ') + (message === '' ? '' : `: ${message}`);
    } else {
      text = String(error);
    }
    return redact(text, this.#secrets);
  }
}

/** 412 PreconditionFailed (the key exists), or 409 ConditionalRequestConflict (a concurrent create won). */
function isPreconditionFailed(error: unknown): boolean {
  const name = errorName(error);
  const status = (error as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
  return name === 'PreconditionFailed' || name === 'ConditionalRequestConflict' || status === 412;
}

function errorName(error: unknown): string | undefined {
  return error instanceof Error ? error.name : undefined;
}

function isNotFound(error: unknown): boolean {
  const name = errorName(error);
  const status = (error as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
  // A missing bucket is also a 404, but a configuration problem, not an absent object.
  return name !== 'NoSuchBucket' && (name === 'NoSuchKey' || name === 'NotFound' || status === 404);
}

/** An endpoint for messages: credentials in the URL (http://user:pass@host) are dropped. */
function withoutUserInfo(endpoint: string): string {
  try {
    const url = new URL(endpoint);
    url.username = '';
    url.password = '';
    return url.toString().replace(/\/$/, '');
  } catch {
    return '(invalid endpoint URL)';
  }
}
