import { PassThrough, Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Request, Response } from 'express';
import { isBackupId, type BackupSidecar } from '@db-backup-service/contract';
import type { BackupIndex } from '../backup-index.js';
import type { Logger } from '../logger.js';
import { StorageNotFoundError, type Storage } from '../storage/storage.js';
import { notFound, problem, PROBLEM_CONTENT_TYPE } from './problem.js';
import { parseRange } from './range.js';

type DownloadResponse =
  | { status: 200 | 206; body: Readable }
  | { status: 404 | 416; body: ReturnType<typeof problem> };

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

  res.set({
    'Content-Type': 'application/gzip',
    'Content-Disposition': `attachment; filename="${backup.id}"`,
    ETag: etag,
    'Repr-Digest': `sha-256=:${Buffer.from(backup.sha256, 'hex').toString('base64')}:`,
    'Accept-Ranges': 'bytes',
    'Last-Modified': new Date(backup.createdAt).toUTCString(),
    'Cache-Control': 'private, no-transform',
  });

  if (range.kind === 'unsatisfiable') {
    res.set('Content-Range', `bytes */${backup.sizeBytes}`).type(PROBLEM_CONTENT_TYPE);
    return { status: 416, body: problem(416, 'Range Not Satisfiable', `the backup has ${backup.sizeBytes} bytes`, 'RANGE_NOT_SATISFIABLE') };
  }
  const status = range.kind === 'range' ? 206 : 200;
  const start = range.kind === 'range' ? range.start : 0;
  const end = range.kind === 'range' ? range.end : backup.sizeBytes - 1;
  if (status === 206) res.set('Content-Range', `bytes ${start}-${end}/${backup.sizeBytes}`);
  res.set('Content-Length', String(end - start + 1));

  if (req.method === 'HEAD' || backup.sizeBytes === 0) return { status, body: endedStream() };

  const abort = new AbortController();
  let source: Readable;
  try {
    source = await deps.storage.get(backup.id, { range: { start, end }, signal: abort.signal });
  } catch (error) {
    if (error instanceof StorageNotFoundError) {
      // Deleted behind our back (another instance's retention): stop listing it.
      deps.index.remove(backup.id);
      res.removeHeader('Content-Length');
      res.type(PROBLEM_CONTENT_TYPE);
      return { status: 404, body: notFound('no such backup') };
    }
    throw error;
  }
  // ts-rest sends the body with a bare pipe(); the guard and the handlers below close its gaps.
  const body = lengthGuard(end - start + 1);
  pipeline(source, body).catch((error: Error) => {
    if (res.writableFinished || res.destroyed) return;
    // Mid-body storage failure or an object that ended early: cut the connection so the client
    // sees a truncated transfer (Content-Length unmet), never a complete-looking corrupt file.
    deps.logger.warn('download aborted: storage stream failed', { backupId: backup.id, error: error.message });
    res.destroy(error);
  });
  res.once('close', () => {
    // The client left (or we finished): release the storage stream/socket at once.
    if (!res.writableFinished) {
      abort.abort();
      source.destroy();
    }
  });
  return { status, body };
}

/** Passes bytes through and fails at the end unless exactly `expected` bytes came. */
function lengthGuard(expected: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      callback(null, chunk);
    },
    flush(callback) {
      callback(seen === expected ? null : new Error(`storage stream ended early (${seen} of ${expected} bytes)`));
    },
  });
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
