// Shared by the ownership tests: a logger that keeps what the service would log, and backups
// written straight into storage the way another writer (our own or the reference service) leaves them.
import { Writable, Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { COMPRESSION_FORMATS, sidecarName, type CompressionFormat } from '@db-backup-service/contract';
import { createLogger, type Logger } from './logger.js';
import type { Storage } from './storage/storage.js';

export interface CapturedLogger {
  readonly logger: Logger;
  /** Every line written, parsed. */
  readonly lines: Record<string, unknown>[];
}

/** The service's real JSON logger, writing into `lines`. */
export function captureLogger(): CapturedLogger {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  return { logger: createLogger({ format: 'json', level: 'debug', stream }), lines };
}

/** `<prefix>_<yyyyMMddTHHmmssZ>.sql.gz` (or `.sql.zst`) of a date. */
export function idAt(date: Date, prefix = 'backup', format: CompressionFormat = 'gzip'): string {
  return `${prefix}_${date.toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '')}${COMPRESSION_FORMATS[format].extension}`;
}

/** Exactly the fields the reference service writes (spec/reference-service.txt, "Backup metadata"). */
export function referenceSidecar(id: string, createdAt: Date, dump: Buffer): Record<string, unknown> {
  return {
    id,
    createdAt: createdAt.toISOString().replace(/\.\d+Z$/, 'Z'),
    sizeBytes: dump.length,
    sha256: createHash('sha256').update(dump).digest('hex'),
    pgVersion: '17.2',
    durationMs: 1234,
    triggeredBy: 'scheduler',
  };
}

/** Our own sidecar's fields, for `database`. */
export function ownSidecar(id: string, createdAt: Date, dump: Buffer, database: string): Record<string, unknown> {
  return {
    ...referenceSidecar(id, createdAt, dump),
    createdAt: createdAt.toISOString(),
    pgDumpVersion: '15.18',
    uncompressedSizeBytes: 10,
    compression: { format: 'gzip', level: 6 },
    database,
    serviceVersion: 'test',
    format: 'plain',
  };
}

/** Stores a small gzipped dump and then its sidecar (`sidecar` as JSON, or raw text), as a writer would. */
export async function putBackup(storage: Storage, id: string, sidecar: (dump: Buffer) => Record<string, unknown> | string): Promise<Buffer> {
  const dump = gzipSync(Buffer.from(`-- dump ${id}\n`));
  await storage.putStream(id, Readable.from([dump]), { signal: AbortSignal.timeout(10_000) });
  const body = sidecar(dump);
  await storage.putSmall(sidecarName(id), Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)));
  return dump;
}
