import { BackupSidecarSchema, isBackupId, type Backup, type BackupSidecar } from '@db-backup-service/contract';
import type { Logger } from './logger.js';
import type { Storage, StoredObject } from './storage/storage.js';

const SIDECAR_SUFFIX = '.meta.json';

/** The public Backup fields of a sidecar (the sidecar carries more for restores). */
export function toBackup(sidecar: BackupSidecar): Backup {
  const { id, createdAt, sizeBytes, sha256, pgVersion, durationMs, triggeredBy } = sidecar;
  return { id, createdAt, sizeBytes, sha256, pgVersion, durationMs, triggeredBy };
}

/** Newest first by creation time; the id (which embeds the time) breaks ties deterministically. */
export function compareNewestFirst(a: BackupSidecar, b: BackupSidecar): number {
  return Date.parse(b.createdAt) - Date.parse(a.createdAt) || b.id.localeCompare(a.id);
}

/** Does `id` belong to this service (its name prefix)? Retention and clean-up act on nothing else. */
export function isOwnBackupId(id: string, namePrefix: string): boolean {
  return isBackupId(id) && id.startsWith(`${namePrefix}_`);
}

export interface StorageSnapshot {
  /** Dumps with a valid sidecar: the backups. */
  readonly backups: BackupSidecar[];
  /** Own-prefix dump objects without a sidecar (interrupted or unverified). */
  readonly orphans: StoredObject[];
}

/**
 * Reads one complete listing and the sidecars it needs. `known` lets the index skip sidecars it
 * has already parsed, so a refresh reads only what changed. Throws when the listing fails: callers
 * must never act on a partial view (invariant 4).
 */
export async function readSnapshot(
  storage: Storage,
  namePrefix: string,
  known: ReadonlyMap<string, BackupSidecar>,
  logger: Logger,
): Promise<StorageSnapshot> {
  const objects = await storage.list();
  const names = new Map(objects.map((o) => [o.name, o]));
  const backups: BackupSidecar[] = [];
  const orphans: StoredObject[] = [];
  for (const object of objects) {
    if (!isOwnBackupId(object.name, namePrefix)) continue;
    if (!names.has(object.name + SIDECAR_SUFFIX)) {
      orphans.push(object);
      continue;
    }
    const cached = known.get(object.name);
    if (cached) {
      backups.push(cached);
      continue;
    }
    try {
      const parsed = BackupSidecarSchema.safeParse(JSON.parse((await storage.getSmall(object.name + SIDECAR_SUFFIX)).toString('utf8')));
      if (parsed.success && parsed.data.id === object.name) backups.push(parsed.data);
      else logger.warn('ignoring a backup whose sidecar is invalid', { backupId: object.name });
    } catch (error) {
      // A sidecar deleted between list and read (retention elsewhere) is not an error.
      logger.warn('could not read a sidecar', { backupId: object.name, error: (error as Error).message });
    }
  }
  return { backups, orphans };
}

/**
 * The listing served by the API: built from storage at start, kept current by the service's own
 * writes and deletes, and re-read periodically so changes made by others show up. A request never
 * reads sidecars.
 */
export class BackupIndex {
  #byId = new Map<string, BackupSidecar>();
  #sorted: BackupSidecar[] = [];
  /** The listing as the API sends it, built on first use after a change. */
  #listJson: Buffer | null = null;
  #lastRefresh: Date | null = null;

  constructor(
    private readonly storage: Storage,
    private readonly namePrefix: string,
    private readonly logger: Logger,
  ) {}

  /** Replaces the index with a fresh read of storage; on failure the previous index stays. */
  async refresh(): Promise<StorageSnapshot> {
    const snapshot = await readSnapshot(this.storage, this.namePrefix, this.#byId, this.logger);
    this.#byId = new Map(snapshot.backups.map((b) => [b.id, b]));
    this.#resort();
    this.#lastRefresh = new Date();
    return snapshot;
  }

  get lastRefresh(): Date | null {
    return this.#lastRefresh;
  }

  add(sidecar: BackupSidecar): void {
    this.#byId.set(sidecar.id, sidecar);
    this.#resort();
  }

  remove(id: string): void {
    if (this.#byId.delete(id)) this.#resort();
  }

  /** Newest first. */
  list(): readonly BackupSidecar[] {
    return this.#sorted;
  }

  /**
   * `list()` as public Backups, serialised to JSON (UTF-8). Kept until the index changes: with
   * 1,000 backups that is ~250 KB of JSON, which took most of a list request's time to rebuild.
   */
  listJson(): Buffer {
    this.#listJson ??= Buffer.from(JSON.stringify(this.#sorted.map(toBackup)));
    return this.#listJson;
  }

  latest(): BackupSidecar | null {
    return this.#sorted[0] ?? null;
  }

  get(id: string): BackupSidecar | undefined {
    return this.#byId.get(id);
  }

  has(id: string): boolean {
    return this.#byId.has(id);
  }

  #resort(): void {
    this.#sorted = [...this.#byId.values()].sort(compareNewestFirst);
    this.#listJson = null;
  }
}

export { SIDECAR_SUFFIX };
