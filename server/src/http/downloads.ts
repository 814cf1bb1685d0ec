import { PassThrough, Stream, type Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { Request, Response } from 'express';
import { contentTypeOfId, isBackupId, type BackupSidecar } from '@db-backup-service/contract';
import type { BackupIndex } from '../backup-index.js';
import type { Logger } from '../logger.js';
import { StorageNotFoundError, type ObjectReader, type Storage } from '../storage/storage.js';
import { notFound, problem, PROBLEM_CONTENT_TYPE } from './problem.js';
import { parseRange } from './range.js';

type DownloadResponse =
  | { status: 200 | 206; body: Stream }
  | { status: 404 | 416 | 503; body: ReturnType<typeof problem> };

/** Seconds a client is told to wait (Retry-After) when storage cannot be read. */
export const STORAGE_RETRY_AFTER_SECONDS = 5;

/** The download headers set before storage was asked; a problem answer must not carry them. */
const DOWNLOAD_HEADERS = ['Content-Length', 'Content-Range', 'Content-Disposition', 'ETag', 'Repr-Digest', 'Accept-Ranges', 'Last-Modified'];

/**
 * Serves one backup: streamed from storage (never buffered), with the headers `curl -OJ` and
 * `curl -C -` rely on. The id is resolved through the index only, so an id that is not a listed
 * backup never reaches storage (invariant 7).
 */
export async function serveDownload(
  deps: { index: BackupIndex; storage: Storage; logger: Logger },
  idOrLatest: { id: string } | 'latest',
  req: Request,
  res: Response,
): Promise<DownloadResponse> {
  const backup = resolve(deps.index, idOrLatest);
  if (!backup) {
    res.type(PROBLEM_CONTENT_TYPE);
    return { status: 404, body: notFound(idOrLatest === 'latest' ? 'no successful backup yet' : 'no such backup') };
  }
  const etag = `"${backup.sha256}"`;
  const ifRange = req.headers['if-range'];
  const range = ifRange === undefined || ifRange === etag ? parseRange(req.headers.range, backup.sizeBytes) : { kind: 'none' as const };

  if (range.kind === 'unsatisfiable') {
    // Before the download headers: with them, `curl -OJ` would save this problem under the backup's name.
    res.set({ 'Content-Range': `bytes */${backup.sizeBytes}`, 'Accept-Ranges': 'bytes' }).type(PROBLEM_CONTENT_TYPE);
    return { status: 416, body: problem(416, 'Range Not Satisfiable', `the backup has ${backup.sizeBytes} bytes`, 'RANGE_NOT_SATISFIABLE') };
  }
  res.set({
    'Content-Type': contentTypeOfId(backup.id),
    'Content-Disposition': `attachment; filename="${backup.id}"`,
    ETag: etag,
    'Repr-Digest': `sha-256=:${Buffer.from(backup.sha256, 'hex').toString('base64')}:`,
    'Accept-Ranges': 'bytes',
    'Last-Modified': new Date(backup.createdAt).toUTCString(),
    'Cache-Control': 'private, no-transform',
  });
  const status = range.kind === 'range' ? 206 : 200;
  const start = range.kind === 'range' ? range.start : 0;
  const end = range.kind === 'range' ? range.end : backup.sizeBytes - 1;
  if (status === 206) res.set('Content-Range', `bytes ${start}-${end}/${backup.sizeBytes}`);
  res.set('Content-Length', String(end - start + 1));

  if (req.method === 'HEAD' || backup.sizeBytes === 0) return { status, body: endedStream() };

  const failed = (error: unknown): DownloadResponse => {
    for (const header of DOWNLOAD_HEADERS) res.removeHeader(header);
    res.type(PROBLEM_CONTENT_TYPE);
    if (error instanceof StorageNotFoundError) {
      // Deleted behind our back (another instance's retention): stop listing it.
      deps.index.remove(backup.id);
      return { status: 404, body: notFound('no such backup') };
    }
    // Storage unreachable or failing (S3 down, a full local fd table, EIO): not a bug of ours, and
    // the backup is still listed and intact, so this is a temporary 503 with Retry-After (which the
    // SDK's downloadToFile retries), not a 500 "internal error". Found by the fault suite (issue 8:
    // downloads during an S3 outage answered 500). StorageError messages carry no credentials.
    deps.logger.warn('download refused: storage read failed', { backupId: backup.id, error: (error as Error).message });
    res.set('Retry-After', String(STORAGE_RETRY_AFTER_SECONDS));
    return {
      status: 503,
      body: problem(503, 'Service Unavailable', 'the backup storage cannot be read right now; retry later', 'STORAGE_UNAVAILABLE'),
    };
  };
  // Mid-body storage failure or an object that ended early: cut the connection so the client sees
  // a truncated transfer (Content-Length unmet), never a complete-looking corrupt file.
  const cut = (error: Error): void => {
    if (res.writableFinished || res.destroyed) return;
    deps.logger.warn('download aborted: storage stream failed', { backupId: backup.id, error: error.message });
    res.destroy(error);
  };

  if (deps.storage.openReader) {
    let reader: ObjectReader;
    try {
      reader = await deps.storage.openReader(backup.id);
    } catch (error) {
      return failed(error);
    }
    return { status, body: new SelfSentBody(res, () => sendFromRing(reader, start, end, res).catch(cut)) };
  }

  const abort = new AbortController();
  let source: Readable;
  try {
    source = await deps.storage.get(backup.id, { range: { start, end }, signal: abort.signal });
  } catch (error) {
    return failed(error);
  }
  res.once('close', () => {
    // The client left (or we finished): release the storage stream/socket at once.
    if (!res.writableFinished) {
      abort.abort();
      source.destroy();
    }
  });
  return { status, body: new SelfSentBody(res, () => sendFromStream(source, end - start + 1, res).catch(cut)) };
}

/**
 * A local download's ring: 4 x 256 KiB, so at most 1 MiB in flight per download. Measured on a
 * 500 MB cached file (bench/README.md): 4 x 256 KiB was as fast as or faster than 4 x 1 MiB,
 * 2-3 x 512 KiB and 4-8 x 128 KiB, all within the noise of a shared machine.
 */
const RING_BUFFER_BYTES = 256 * 1024;
const RING_BUFFERS = 4;

/**
 * A download's body. ts-rest sends a stream body with `body.pipe(res)`; this one answers that call
 * by sending the bytes itself (sendFromRing, sendFromStream): a Readable's chunks could not be
 * reused (whoever reads them may keep them), and a stage in between is one more hop per chunk.
 */
class SelfSentBody extends Stream {
  readonly #res: Response;
  readonly #send: () => void;

  constructor(res: Response, send: () => void) {
    super();
    this.#res = res;
    this.#send = send;
  }

  override pipe<T extends NodeJS.WritableStream>(destination: T): T {
    if ((destination as unknown) !== this.#res) throw new Error('a download body is sent only to its own response');
    this.#send();
    return destination;
  }
}

/**
 * Sends bytes `start`..`end` (inclusive) of `reader` to `res` from a ring of RING_BUFFERS reused
 * buffers, then ends the response. A buffer is read into again only once the socket has taken
 * the bytes written from it (res.write's callback): no new buffer per chunk, so a download makes
 * almost no garbage (with a fresh 1 MiB buffer per read, V8's frequent full collections of
 * short-lived external memory were most of a download's cost: bench/README.md), and the ring is
 * the back-pressure (at most RING_BUFFERS x RING_BUFFER_BYTES in flight). The next read overlaps
 * the socket's write of the previous buffer. When the client leaves, no read starts after that
 * and the file is closed once the read in flight (if any) returns. Rejects when the object ends
 * early or a read fails; the caller cuts the response then.
 */
async function sendFromRing(reader: ObjectReader, start: number, end: number, res: Response): Promise<void> {
  const free = Array.from({ length: RING_BUFFERS }, () => Buffer.allocUnsafeSlow(RING_BUFFER_BYTES));
  let wake: (() => void) | null = null;
  // destroyed: the client may have left before ts-rest called pipe() (then 'close' came already).
  const gone = (): boolean => res.destroyed;
  // Node calls every write's callback, also when the socket is destroyed; the wake on 'close' does
  // not depend on that.
  const onClose = (): void => wake?.();
  res.once('close', onClose);
  try {
    let position = start;
    while (position <= end) {
      while (free.length === 0 && !gone()) await new Promise<void>((resolve) => (wake = resolve));
      wake = null;
      if (gone()) return;
      const buffer = free.pop()!;
      const bytes = await reader.read(buffer, Math.min(buffer.length, end + 1 - position), position);
      if (gone()) return;
      if (bytes === 0) throw new Error(`storage stream ended early (${position - start} of ${end - start + 1} bytes)`);
      position += bytes;
      res.write(bytes === buffer.length ? buffer : buffer.subarray(0, bytes), (error) => {
        // After an error (the socket is gone) the buffer may still be referenced: never reused.
        if (!error) free.push(buffer);
        wake?.();
      });
    }
    res.end();
  } finally {
    res.off('close', onClose);
    // A read-only file's close cannot lose data: its failure must not cut a response sent in full.
    await reader.close().catch(() => undefined);
  }
}

/**
 * Sends a backend's object stream (S3) to `res` with nothing in between, and ends the response
 * only when exactly `expected` bytes came: an object that ended early or a stream that failed
 * rejects instead, and the caller cuts the response.
 */
async function sendFromStream(source: Readable, expected: number, res: Response): Promise<void> {
  let seen = 0;
  source.on('data', (chunk: Buffer) => (seen += chunk.length));
  source.pipe(res, { end: false });
  await finished(source);
  if (seen !== expected) throw new Error(`storage stream ended early (${seen} of ${expected} bytes)`);
  res.end();
}

function resolve(index: BackupIndex, idOrLatest: { id: string } | 'latest'): BackupSidecar | null {
  if (idOrLatest === 'latest') return index.latest();
  if (!isBackupId(idOrLatest.id)) return null;
  return index.get(idOrLatest.id) ?? null;
}

function endedStream(): Readable {
  const stream = new PassThrough();
  stream.end();
  return stream;
}
