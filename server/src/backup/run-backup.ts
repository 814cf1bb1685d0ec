import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BackupSidecarSchema, contentsName, sidecarName } from '@db-backup-service/contract';
import type { BackupSidecar, ContentsManifest, Encryption, SidecarContents, Trigger } from '@db-backup-service/contract';
import { AgeEncryptStream, DumpContentsCounter, encryptBuffer } from '@db-backup-service/restore';
import type { Config } from '../config/config.js';
import { addLogContext } from '../logger.js';
import type { Logger } from '../logger.js';
import { StorageExistsError, type Storage } from '../storage/storage.js';
import { SERVICE_VERSION } from '../version.js';
import { BackupError } from './backup-error.js';
import { newBackupId } from './backup-id.js';
import { CompressedStreamCheck } from './compressed-check.js';
import { createCompressor } from './compressor.js';
import { describeError, findErrorCode } from './describe-error.js';
import { DumpTrailerObserver } from './dump-trailer.js';
import { GcPacer } from './gc-pacer.js';
import { abortedError, LockSession } from './lock-session.js';
import { PgDumpProcess } from './pg-dump-process.js';
import { choosePgDump } from './pg-tools.js';
import type { PgDumpClients, PgTools } from './pg-tools.js';
import { RateLimit } from './rate-limit.js';
import { redact } from '@db-backup-service/contract';
import { createEndGate, StreamMeter } from './stream-meter.js';
import { verifyStoredBackup } from './verify-backup.js';
import type { StreamedDigest } from './verify-backup.js';

/**
 * Points a backup passes, in order. `dumped`: pg_dump exited 0 with a complete trailer, and the
 * storage has not committed the object yet. `stored`: putStream resolved. `verified`: the stored
 * object read back correctly. `contents`: the contents manifest is stored; the sidecar is next.
 */
export type BackupStage = 'dumped' | 'stored' | 'verified' | 'contents';

export interface RunBackupDeps {
  readonly config: Config;
  readonly storage: Storage;
  /** The pg_dump binaries found at start-up; each backup takes the one for its server's version. */
  readonly pgDumps: PgDumpClients;
  readonly logger: Logger;
  /**
   * Backup ids already in use (the caller's index). Storage is asked as well before an id is
   * taken, so a stale set only costs a `_2` suffix, never an overwrite.
   */
  readonly existingIds: () => ReadonlySet<string>;
}

export interface RunBackupOptions {
  readonly triggeredBy: Trigger;
  /** Aborting kills pg_dump, aborts the upload, deletes what was stored and rejects with ABORTED. */
  readonly signal: AbortSignal;
  /** How far the dump got: when it starts, at most every 250 ms while it streams, and once when it has ended. */
  readonly onProgress?: (progress: BackupProgress) => void;
  /** Clock for the backup id and createdAt (tests). */
  readonly now?: () => Date;
  /** Named injection point: a throw here fails the backup at that point as a crash would (invariant 1). */
  readonly onStage?: (stage: BackupStage) => void | Promise<void>;
  /**
   * Test-only injection point: a stage between the compressor and the check that damages the
   * compressed stream (cuts it short, flips a byte, appends a frame) as a faulty encoder would, to
   * prove that the check fails the backup before anything is listed (invariants 1 and 2).
   */
  readonly __test__damageCompressed?: () => Transform;
  /**
   * Test-only injection point: the encryption stage itself fails after this many compressed bytes
   * (as a cipher error would), to prove that an encrypting backup fails closed: the job fails,
   * nothing is listed, and no byte that is not ciphertext was stored (invariant 10).
   */
  readonly __test__failEncryptionAfterBytes?: number;
}

export interface BackupProgress {
  /** Plain SQL bytes pg_dump has written. */
  readonly dumpedBytes: number;
  /** Compressed bytes on their way to storage (past the hash). */
  readonly storedBytes: number;
}

const PROGRESS_INTERVAL_MS = 250;

/**
 * Runs one backup: pg_dump -> gzip or zstd -> SHA-256 -> storage, read-back verification, the contents
 * manifest, then the sidecar, written last (invariants 1, 2, 5). Resolves with the sidecar;
 * rejects with a BackupError whose message is safe to show (invariant 6), after removing whatever
 * it stored.
 *
 * The caller provides the single-flight lock within this process and the log context (jobId);
 * this function adds `backupId` to it and takes a PostgreSQL advisory lock against other instances.
 */
export async function runBackup(deps: RunBackupDeps, opts: RunBackupOptions): Promise<BackupSidecar> {
  const secrets = secretsOf(deps.config);
  try {
    return await execute(deps, opts, secrets);
  } catch (error) {
    if (opts.signal.aborted) throw error instanceof BackupError && error.code === 'ABORTED' ? error : abortedError(opts.signal);
    if (error instanceof BackupError) throw error;
    throw new BackupError('INTERNAL', redact(`backup failed: ${describeError(error)}`, secrets), { cause: error });
  }
}

async function execute(deps: RunBackupDeps, opts: RunBackupOptions, secrets: readonly string[]): Promise<BackupSidecar> {
  const { config, storage, logger } = deps;
  const now = opts.now ?? (() => new Date());
  const startedAt = now();
  const started = performance.now();
  if (opts.signal.aborted) throw abortedError(opts.signal);
  logger.info('backup started', { triggeredBy: opts.triggeredBy, database: config.db.name, storage: storage.location });

  const outer = opts.signal;
  const session = await LockSession.open(config.db, { signal: outer, secrets, logger });
  // Losing the lock's connection stops the backup like an abort, but fails it with its own message.
  const signal = AbortSignal.any([outer, session.lost]);
  opts = { ...opts, signal };
  let id: string | null = null;
  let contentsAttempted = false;
  let sidecarAttempted = false;
  try {
    const pgTools = choosePgDump(deps.pgDumps, session.server);
    await session.lock(config.db.name);
    const sizeHintBytes = await session.databaseSizeBytes();
    id = await chooseBackupId(storage, config.backup, startedAt, deps.existingIds(), secrets);
    const { encryption } = config.backup;
    addLogContext({ backupId: id });
    logger.info('dumping database', {
      serverVersion: session.server.version,
      pgDumpVersion: pgTools.pgDumpVersion,
      pgDumpPath: pgTools.pgDumpPath,
      databaseSizeBytes: sizeHintBytes,
      compression: config.backup.compression,
      encryptedTo: encryption?.recipients,
    });

    const streamed = await dumpToStorage({ deps, opts, secrets, id, sizeHintBytes, pgTools });
    logger.info('dump stored', { sizeBytes: streamed.sizeBytes, uncompressedSizeBytes: streamed.uncompressedSizeBytes });
    await opts.onStage?.('stored');

    try {
      await verifyStoredBackup(storage, id, streamed, signal, { gcLimitBytes: GC_LIMIT_BYTES, encrypted: encryption !== null });
    } catch (error) {
      // A read-back that differs may be another writer's object, not a corrupt one of ours.
      await assertStillOurs(storage, id, streamed.etag, secrets);
      throw error;
    }
    await assertStillOurs(storage, id, streamed.etag, secrets);
    logger.info('dump verified', { sha256: streamed.sha256 });
    await opts.onStage?.('verified');

    // Before the sidecar: a listed backup always has the manifest its sidecar vouches for.
    contentsAttempted = true;
    const contents = await writeContents(storage, id, streamed.contents, encryption, signal, secrets);
    await opts.onStage?.('contents');

    const sidecar: BackupSidecar = BackupSidecarSchema.parse({
      id,
      createdAt: now().toISOString(),
      sizeBytes: streamed.sizeBytes,
      sha256: streamed.sha256,
      pgVersion: session.server.version,
      durationMs: Math.round(performance.now() - started),
      triggeredBy: opts.triggeredBy,
      pgDumpVersion: pgTools.pgDumpVersion,
      uncompressedSizeBytes: streamed.uncompressedSizeBytes,
      compression: config.backup.compression,
      database: config.db.name,
      serviceVersion: SERVICE_VERSION,
      format: 'plain',
      contents,
      encryption,
    });
    // The sidecar is what makes the dump a listed backup, so it is written last (invariant 1).
    sidecarAttempted = true;
    try {
      await storage.putSmall(sidecarName(id), Buffer.from(`${JSON.stringify(sidecar, null, 2)}\n`), { signal });
    } catch (error) {
      if (signal.aborted) throw abortedError(signal);
      throw storageFailure(`writing the sidecar of backup ${id}`, error, storage, secrets);
    }
    logger.info('backup finished', { durationMs: sidecar.durationMs, sizeBytes: sidecar.sizeBytes });
    return sidecar;
  } catch (error) {
    // ID_TAKEN: what is stored under this id is another writer's (writes are create-only), not ours to remove.
    if (id !== null && !(error instanceof BackupError && error.code === 'ID_TAKEN')) {
      await discard(storage, id, { sidecar: sidecarAttempted, contents: contentsAttempted }, logger, secrets);
    }
    throw session.lost.aborted && !outer.aborted ? session.lost.reason : error;
  } finally {
    await session.close();
  }
}

interface DumpContext {
  readonly deps: RunBackupDeps;
  readonly opts: RunBackupOptions;
  readonly secrets: readonly string[];
  readonly id: string;
  readonly sizeHintBytes: number;
  readonly pgTools: PgTools;
}

/**
 * Dead buffer memory a backup may leave for the garbage collector (see GcPacer): the trade
 * between peak RSS and GC time. At 16 MB a benchmark backup peaked at 154 MB RSS in one run of
 * six (median 146 MB); at 12 MB at most 143 MB, for ~7% more backup time (bench/README.md).
 */
const GC_LIMIT_BYTES = 12 * 1024 * 1024;

/**
 * pg_dump stdout -> trailer observer + byte count + contents counter -> GC pacer -> end gate ->
 * gzip or zstd -> decompression check -> [age encryption] -> SHA-256 + byte count ->
 * storage.putStream, with no temp file and bounded memory (invariant 5). With encryption
 * configured, the age stage is always in the pipeline and any failure of it errors the whole
 * stream, so storage gets ciphertext or nothing (invariant 10); the check before it still proves
 * the compressed bytes, and the hash after it covers what is stored. The end gate holds back the end of the stream until
 * pg_dump has exited 0 and the trailer is there, the check until the compressed stream has
 * decompressed to exactly the dump (and, for zstd, was exactly one frame); otherwise the stream
 * errors and the storage discards the upload instead of committing a partial dump.
 */
async function dumpToStorage(ctx: DumpContext): Promise<StreamedDigest & { readonly etag: string | undefined; readonly contents: ContentsManifest }> {
  const { config, storage, logger } = ctx.deps;
  const { pgTools } = ctx;
  const { signal, onStage } = ctx.opts;
  const { id, secrets } = ctx;
  signal.throwIfAborted();

  const dump = new PgDumpProcess(pgTools.pgDumpPath, config, secrets);
  // The first failure wins: once storage has failed, pg_dump dying of our kill is not the story.
  let failure: unknown = null;
  const fail = (error: unknown) => {
    failure ??= error;
    dump.kill();
  };
  const onAbort = () => dump.kill();
  signal.addEventListener('abort', onAbort, { once: true });

  const counter = new DumpContentsCounter();
  const trailer = new DumpTrailerObserver({ counter });
  const gate = createEndGate(async () => {
    try {
      await dump.assertSucceeded();
      trailer.assertCompleteDump();
      await onStage?.('dumped');
    } catch (error) {
      fail(error);
      throw error;
    }
  });
  const compressed = new StreamMeter({ sha256: true });
  // Decompresses the compressed stream as it flows and checks it comes to what pg_dump wrote (the
  // trailer observer's count, complete once the end gate has passed), before the end reaches storage.
  const check = new CompressedStreamCheck(config.backup.compression.format, () => trailer.bytes, fail);

  // BACKUP_MAX_UPLOAD_RATE: after the hash and the counts, so that it paces only the writes to storage.
  const { maxUploadBytesPerSecond } = config.backup;
  const limit = maxUploadBytesPerSecond === null ? [] : [new RateLimit(maxUploadBytesPerSecond)];
  const body = limit[0] ?? compressed;
  const progress = reportProgress(ctx.opts.onProgress, () => ({ dumpedBytes: trailer.bytes, storedBytes: compressed.bytes }));

  try {
    const compressor = createCompressor({
      ...config.backup.compression,
      threads: config.backup.compressionThreads,
      poolSize: config.runtime.threadPoolSize,
    });
    // The trailer observer counts the uncompressed bytes and the contents too: no stage of its own for that.
    const damage = ctx.opts.__test__damageCompressed?.();
    const compression = damage === undefined ? [compressor] : [compressor, damage];
    const encryption = encryptionStages(config.backup.encryption, ctx.opts.__test__failEncryptionAfterBytes);
    const piped = pipeline([dump.stdout, trailer, new GcPacer(GC_LIMIT_BYTES), gate, ...compression, check, ...encryption, compressed, ...limit], { signal });
    const stored = storage.putStream(id, body, { signal, sizeHintBytes: ctx.sizeHintBytes }).catch((error: unknown) => {
      // Failures that start in our own stream (pg_dump, trailer, onStage) are recorded first, by
      // the end gate, before the body errors; anything else that makes putStream fail is the
      // storage's (a rare local stream error would be mislabelled, but keeps its message).
      if (!signal.aborted) fail(storageFailure(`storing backup ${id}`, error, storage, secrets));
      // A backend may stop reading without destroying the body; without this the pipeline would stall.
      compressed.destroy(error instanceof Error ? error : new Error(String(error)));
      throw error;
    });
    const [pipeResult, putResult] = await Promise.allSettled([piped, stored]);
    progress.stop();

    if (pipeResult.status === 'rejected' || putResult.status === 'rejected') {
      dump.kill();
      const exit = await dump.exited;
      if (signal.aborted) throw abortedError(signal);
      if (failure !== null) throw failure;
      // A stream broke for a reason of its own (e.g. reading pg_dump's stdout); if pg_dump failed
      // too, its exit status and stderr are the better explanation.
      if (exit.error !== null || exit.code !== 0) throw dump.failure(exit);
      const reason: unknown = pipeResult.status === 'rejected' ? pipeResult.reason : (putResult as PromiseRejectedResult).reason;
      throw new BackupError('PG_DUMP_FAILED', redact(`streaming pg_dump's output failed: ${describeError(reason)}`, secrets), { cause: reason });
    }

    const stderr = dump.stderrTail();
    if (stderr !== '') logger.warn('pg_dump succeeded with messages on stderr', { stderr });
    if (putResult.value.sizeBytes !== compressed.bytes) {
      throw new BackupError(
        'VERIFY_FAILED',
        `storage reports ${putResult.value.sizeBytes} bytes for backup ${id}, but ${compressed.bytes} were streamed`,
      );
    }
    return {
      sizeBytes: compressed.bytes,
      sha256: compressed.sha256(),
      uncompressedSizeBytes: trailer.bytes,
      etag: putResult.value.etag,
      contents: counter.manifest(),
    };
  } finally {
    progress.stop();
    signal.removeEventListener('abort', onAbort);
    // Never leave a pg_dump behind, whatever happened above.
    if (!dump.hasExited) {
      dump.kill();
      await dump.exited;
    }
  }
}

/** The age stage (none without recipients); with the test's failure injected into it when asked. */
function encryptionStages(encryption: Encryption | null, failAfterBytes: number | undefined): Transform[] {
  if (encryption === null) return [];
  const encryptor = new AgeEncryptStream(encryption.recipients);
  if (failAfterBytes === undefined) return [encryptor];
  let seen = 0;
  const trigger = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen > failAfterBytes) encryptor.destroy(new Error('injected failure inside the encryption stage'));
      callback(null, chunk);
    },
  });
  return [trigger, encryptor];
}

/**
 * Calls `onProgress` with `read()` now, then every PROGRESS_INTERVAL_MS, and once more on `stop()`
 * (idempotent). One timer for the whole backup: nothing is added to the per-chunk path.
 */
function reportProgress(onProgress: ((progress: BackupProgress) => void) | undefined, read: () => BackupProgress): { stop(): void } {
  if (onProgress === undefined) return { stop: () => undefined };
  onProgress(read());
  let timer: NodeJS.Timeout | null = setInterval(() => onProgress(read()), PROGRESS_INTERVAL_MS);
  // Progress alone must not keep the process alive.
  timer.unref();
  return {
    stop() {
      if (timer === null) return;
      clearInterval(timer);
      timer = null;
      onProgress(read());
    },
  };
}

async function chooseBackupId(
  storage: Storage,
  naming: Pick<Config['backup'], 'namePrefix' | 'compression' | 'encryption'>,
  startedAt: Date,
  known: ReadonlySet<string>,
  secrets: readonly string[],
): Promise<string> {
  const taken = new Set(known);
  for (;;) {
    const kind = { format: naming.compression.format, encrypted: naming.encryption !== null };
    const id = newBackupId(naming.namePrefix, startedAt, kind, (candidate) => taken.has(candidate));
    let present: boolean;
    try {
      // A contents manifest left by an earlier failure under this id would make its write fail.
      const found = await Promise.all([storage.stat(id), storage.stat(sidecarName(id)), storage.stat(contentsName(id))]);
      present = found.some((object) => object !== null);
    } catch (error) {
      throw storageFailure(`checking storage for backup ${id}`, error, storage, secrets);
    }
    if (!present) return id;
    taken.add(id);
  }
}

/**
 * Throws ID_TAKEN when the dump under `id` is no longer the object this backup stored (its ETag
 * changed): on an S3 store that ignores If-None-Match (the fauxqs emulator, some gateways), two
 * writers whose lookups both found the id free both commit, and the later replaces the earlier.
 * The earlier one must then neither write a sidecar for the other's dump nor delete it. Local
 * storage publishes with link(), which cannot replace, and reports no ETag.
 */
async function assertStillOurs(storage: Storage, id: string, etag: string | undefined, secrets: readonly string[]): Promise<void> {
  if (etag === undefined) return;
  let current: string | undefined;
  try {
    current = (await storage.stat(id))?.etag;
  } catch (error) {
    throw storageFailure(`checking backup ${id} after storing it`, error, storage, secrets);
  }
  if (current !== etag) throw storageFailure(`storing backup ${id}`, new StorageExistsError(id), storage, secrets);
}

/**
 * Stores `<id>.contents.json` (pretty, like the sidecar) and returns the sidecar's summary of it,
 * whose sha256 is of exactly the bytes stored. An encrypted backup's manifest names every table
 * and its row count, so it is encrypted to the same recipients (`<id>.contents.json.age`).
 */
async function writeContents(
  storage: Storage,
  id: string,
  manifest: ContentsManifest,
  encryption: Encryption | null,
  signal: AbortSignal,
  secrets: readonly string[],
): Promise<SidecarContents> {
  const json = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
  let bytes: Buffer;
  try {
    bytes = encryption === null ? json : await encryptBuffer(json, encryption.recipients);
  } catch (error) {
    throw new BackupError('INTERNAL', redact(`encrypting the contents manifest of backup ${id} failed: ${describeError(error)}`, secrets), { cause: error });
  }
  try {
    await storage.putSmall(contentsName(id), bytes, { signal });
  } catch (error) {
    if (signal.aborted) throw abortedError(signal);
    throw storageFailure(`writing the contents manifest of backup ${id}`, error, storage, secrets);
  }
  return {
    sha256: createHash('sha256').update(bytes).digest('hex'),
    tables: manifest.tables.length,
    rows: manifest.tables.reduce((sum, table) => sum + table.rows, 0),
    largeObjects: manifest.largeObjects,
  };
}

/**
 * Removes a failed backup: sidecar first, so that a dump is never listed without being whole
 * (invariant 1), then the dump, then its contents manifest (never listed by itself). When the
 * sidecar cannot be deleted, the rest stays: a sidecar that may still be there must not end up
 * describing a missing dump (L2); clean-up leaves a dump with a sidecar alone. A manifest left
 * behind is removed by the leftover clean-up once neither its dump nor its sidecar exists.
 */
export async function discard(
  storage: Storage,
  id: string,
  attempted: { readonly sidecar: boolean; readonly contents: boolean },
  logger: Logger,
  secrets: readonly string[],
): Promise<void> {
  const names = [...(attempted.sidecar ? [sidecarName(id)] : []), id, ...(attempted.contents ? [contentsName(id)] : [])];
  for (const name of names) {
    try {
      await storage.delete(name);
    } catch (error) {
      logger.warn('could not delete the remains of a failed backup', {
        object: name,
        error: redact(describeError(error), secrets),
        ...(name === sidecarName(id) ? { kept: `${id} (its sidecar may still exist)` } : {}),
      });
      return;
    }
  }
}

function storageFailure(what: string, error: unknown, storage: Storage, secrets: readonly string[]): BackupError {
  if (error instanceof StorageExistsError) {
    // Two writers chose the same id in the same second (another service sharing this location and
    // name prefix): theirs stays whole; this backup fails and the next one picks a free id.
    return new BackupError(
      'ID_TAKEN',
      redact(`${what} failed: ${error.objectName} was written by another service at the same time (same name prefix in ${storage.location}); nothing was replaced, the next backup picks a new id`, secrets),
      { cause: error },
    );
  }
  const diskFull = findErrorCode(error, (code) => code === 'ENOSPC') !== null;
  const message = diskFull
    ? `${what} failed: no space left on ${storage.location} (ENOSPC)`
    : `${what} failed (${storage.location}): ${describeError(error)}`;
  return new BackupError(diskFull ? 'DISK_FULL' : 'STORAGE_FAILED', redact(message, secrets), { cause: error });
}

function secretsOf(config: Config): string[] {
  const secrets = [config.db.password, config.apiToken];
  if (config.storage.backend === 's3' && config.storage.credentials !== null) {
    secrets.push(config.storage.credentials.secretAccessKey, config.storage.credentials.sessionToken ?? '');
  }
  return secrets.filter((s) => s !== '');
}
