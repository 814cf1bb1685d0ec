import type { Readable } from 'node:stream';
import type { ContentsManifest, DumpDecryption, ManifestProblem } from '@db-backup-service/restore';
import type { Backup, BackupSidecar, CompressionFormat } from '@db-backup-service/sdk';
import type { Progress } from './progress.js';

/** A backup chosen for restore, with what its dump must match. */
export interface ResolvedBackup {
  /** Backup id, or the file name for a --file without sidecar. */
  readonly id: string;
  /** How the dump is compressed (inside its encryption): the id's extension (compressionOfId); for --file, the file's own name's or its bytes'. */
  readonly format: CompressionFormat;
  /**
   * age-encrypted (an id ending in .age, or a --file that begins as an age file): to these
   * recipients, from its sidecar or the listing (empty where none says). null: not encrypted.
   */
  readonly encryption: { readonly recipients: readonly string[] } | null;
  readonly createdAt: string | null;
  readonly sizeBytes: number;
  /** SHA-256 from the sidecar (directly or through the service); null for a --file without one. */
  readonly sha256: string | null;
  /** The database that was dumped, from the sidecar (for the plan); absent where unknown. */
  readonly database?: string;
  /** The PostgreSQL version that was dumped, from the sidecar or listing (for the plan). */
  readonly pgVersion?: string;
  /** The sidecar's summary of the contents manifest (null: none); absent where the sidecar is not read (the service). */
  readonly contents?: BackupSidecar['contents'];
  /** Where it comes from, for the plan: "local directory /backups", "db-backup-service at http://...". */
  readonly origin: string;
}

/** A dump on local disk, ready to be verified and restored. */
export interface LocalDump {
  readonly path: string;
  /** Removes what fetching created (a downloaded temp copy); a no-op for files we only read. */
  cleanup(): Promise<void>;
}

/**
 * A backup's contents manifest for a drill: the manifest; or none (with a note why); or one that
 * failed its check (a problem, and why: `identity` is the configuration's fault, not the backup's).
 */
export type ManifestLookup =
  | { readonly manifest: ContentsManifest; readonly problem: null; readonly note: null }
  | { readonly manifest: null; readonly problem: string; readonly reason: ManifestProblem | 'unreadable'; readonly note: null }
  | { readonly manifest: null; readonly problem: null; readonly note: string | null };

/** Where backups are listed and read from: one implementation per storage backend, plus --file. */
export interface BackupSource {
  readonly description: string;
  /** Every backup, newest first. */
  list(opts: { signal?: AbortSignal }): Promise<Backup[]>;
  /** One backup by id or "latest"; throws CliError NOT_FOUND (4) when there is none. */
  resolve(idOrLatest: string, opts: { signal?: AbortSignal }): Promise<ResolvedBackup>;
  /** The stored dump as a stream from its first byte, read once (the default swap restore streams it into psql). */
  open(backup: ResolvedBackup, opts: { signal: AbortSignal }): Promise<Readable>;
  /** The backup's contents manifest (`<id>.contents.json`, or `.contents.json.age` decrypted with `decrypt`), checked against its sidecar (db-restore --drill). */
  manifest(backup: ResolvedBackup, decrypt: DumpDecryption | null): Promise<ManifestLookup>;
  /** Makes the dump available as a local file, downloading it where needed (--in-place verifies it before dropping anything). */
  fetch(backup: ResolvedBackup, opts: { signal: AbortSignal; progress: Progress }): Promise<LocalDump>;
}
