import type { Readable } from 'node:stream';

/** An object in a storage backend, named relative to the backend's directory or key prefix. */
export interface StoredObject {
  readonly name: string;
  readonly sizeBytes: number;
  readonly lastModified: Date;
  /** S3's ETag: changes when the object is replaced (stat only; absent on local storage). */
  readonly etag?: string;
}

export interface ReadRange {
  /** First byte, inclusive. */
  readonly start: number;
  /** Last byte, inclusive. */
  readonly end: number;
}

/** An object opened by `Storage.openReader`; the caller closes it (also on failure). */
export interface ObjectReader {
  /** Reads up to `length` bytes at `position` into the start of `buffer`; resolves to the count, 0 at the end. */
  read(buffer: Buffer, length: number, position: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * The one seam between the service and where backups live. Names are plain file names (no
 * separators); every implementation refuses anything else (invariant 7, defence in depth).
 *
 * Publishing is the caller's job: `putStream` stores a dump under its final name but nothing
 * lists as a backup until `putSmall` writes its sidecar (invariant 1).
 */
export interface Storage {
  readonly backend: 'local' | 's3';
  /** Human-readable location without secrets, e.g. `s3://bucket/prefix` or `/backups`. */
  readonly location: string;

  /**
   * Streams `body` to `name`, which must not exist yet: writes never replace an object, so two
   * writers that picked the same name cannot overwrite each other (StorageExistsError instead).
   * On any failure (body error, abort, backend error) nothing is left
   * under `name` or in a temporary place (local temp file removed, S3 multipart upload aborted)
   * and the error is rethrown. Resolves once the object is durably stored.
   */
  putStream(name: string, body: Readable, opts: { signal: AbortSignal; sizeHintBytes?: number }): Promise<{ sizeBytes: number; etag?: string }>;

  /**
   * Atomically writes a small object (a sidecar) that must not exist yet (StorageExistsError):
   * readers see no object or the whole new one.
   */
  putSmall(name: string, data: Buffer, opts?: { signal?: AbortSignal }): Promise<void>;

  /** Reads an object (or a byte range of it) as a stream. Throws StorageNotFoundError when absent. */
  get(name: string, opts?: { range?: ReadRange; signal?: AbortSignal }): Promise<Readable>;

  /**
   * Opens an object for positional reads into the caller's buffers, where the backend can (local
   * files): a download then sends it from a few reused buffers instead of a new one per chunk.
   * Throws as `get` does (StorageNotFoundError when absent). Absent on backends without it (S3).
   */
  openReader?(name: string): Promise<ObjectReader>;

  /** Reads a small object whole. Throws StorageNotFoundError when absent. */
  getSmall(name: string, opts?: { signal?: AbortSignal }): Promise<Buffer>;

  /** Size and date of an object, or null when absent. */
  stat(name: string): Promise<StoredObject | null>;

  /** Deletes an object; deleting an absent object is not an error. */
  delete(name: string): Promise<void>;

  /**
   * Every object directly under the directory/prefix (all pages). Throws when the listing fails
   * or cannot be completed: callers (retention, index) must never act on a partial listing.
   */
  list(opts?: { signal?: AbortSignal }): Promise<StoredObject[]>;

  /**
   * Removes what interrupted writes left behind (local temp files; S3 multipart uploads where the
   * backend can list them), only for final names `owns` accepts and only when started before
   * `olderThan`: another writer's upload in progress is left alone. Returns the final names.
   */
  cleanupIncomplete(olderThan: Date, owns: (name: string) => boolean): Promise<string[]>;

  /** Throws when the backend is not reachable/writable (S3 HeadBucket; local dir writable). */
  check(opts?: { signal?: AbortSignal }): Promise<void>;

  /** Releases what the backend holds open (S3's keep-alive sockets); called once, at shutdown. */
  destroy(): void;
}

export class StorageNotFoundError extends Error {
  readonly code = 'STORAGE_NOT_FOUND';
  constructor(readonly objectName: string) {
    super(`no such object: ${objectName}`);
    this.name = 'StorageNotFoundError';
  }
}

/** A create-only write found the name taken (another writer chose the same name). */
export class StorageExistsError extends Error {
  readonly code = 'STORAGE_EXISTS';
  constructor(readonly objectName: string, options?: { cause?: unknown }) {
    super(`${objectName} exists already: it was not replaced`, options);
    this.name = 'StorageExistsError';
  }
}

export class StorageError extends Error {
  readonly code = 'STORAGE_ERROR';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StorageError';
  }
}

const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;

/** Throws unless `name` is a plain file name: no separators, no `..`, no NUL. */
export function assertSafeName(name: string): void {
  if (!SAFE_NAME.test(name) || name.includes('..')) {
    throw new StorageError(`refusing unsafe object name ${JSON.stringify(name.slice(0, 80))}`);
  }
}
