import {
  compareNewestFirst,
  contentsName,
  drillName,
  DrillRecordSchema,
  isBackupId,
  isOfDatabase,
  parseSidecar,
  pinName,
  pinOfRecord,
  PinRecordSchema,
  sidecarName,
  toBackup,
  type Backup,
  type BackupSidecar,
  type DrillRecord,
  type DrillSummary,
  type Pin,
} from '@db-backup-service/contract';
import { CompanionRecords, versionOf } from './companion-records.js';
import type { Logger } from './logger.js';
import { StorageNotFoundError, type Storage, type StoredObject } from './storage/storage.js';

/** Does `id` carry this service's name prefix? Retention and clean-up act on nothing else. */
export function isOwnBackupId(id: string, namePrefix: string): boolean {
  return isBackupId(id) && id.startsWith(`${namePrefix}_`);
}

/**
 * The objects that belong to backup `id` besides its dump and sidecar: its contents manifest,
 * drill record and pin. They go with the backup and never make one listed (only a sidecar does).
 */
export function companionNames(id: string): string[] {
  return [contentsName(id), drillName(id), pinName(id)];
}

/** Companion names end in one of these after the id (an encrypted backup's manifest in `.contents.json.age`). */
const COMPANION_SUFFIX = /\.(?:contents\.json(?:\.age)?|drill\.json|pin\.json)$/;

/** The backup id a companion object (`<id>.contents.json[.age]`, `<id>.drill.json`, `<id>.pin.json`) belongs to, or null. */
export function backupIdOfCompanion(name: string): string | null {
  const suffix = COMPANION_SUFFIX.exec(name);
  if (suffix === null) return null;
  const id = name.slice(0, suffix.index);
  return isBackupId(id) && companionNames(id).includes(name) ? id : null;
}

/** Whose backups these are (invariant 11): this name prefix, and a sidecar naming this database. */
export interface Owner {
  readonly namePrefix: string;
  readonly database: string;
}

/** What one sidecar said: our backup, another database's, or not a sidecar (with why). */
export type SidecarEntry =
  | { readonly kind: 'own' | 'foreign'; readonly sidecar: BackupSidecar }
  | { readonly kind: 'invalid'; readonly problem: string };

/** A sidecar as last read, with the size and date it had in the listing (a change means: read it again). */
export interface KnownSidecar {
  readonly version: string;
  readonly entry: SidecarEntry;
}

export interface StorageSnapshot {
  /** Our dumps with a valid sidecar of our database: the backups. */
  readonly backups: BackupSidecar[];
  /**
   * Own-prefix dump objects without a sidecar in this listing (interrupted, unverified, or in
   * flight), and companions whose backup has neither dump nor sidecar in it (left by a failed
   * clean-up, or a drill that outlived its backup).
   */
  readonly orphans: StoredObject[];
  /** Own-prefix backups whose sidecar names another database: never listed, pruned or cleaned. */
  readonly foreign: number;
  /** Every sidecar read, by backup id: what the next snapshot need not read again. */
  readonly known: ReadonlyMap<string, KnownSidecar>;
  /** The drill record (`<id>.drill.json`) beside each own backup that has one, by backup id. */
  readonly drills: ReadonlyMap<string, StoredObject>;
  /** The pin (`<id>.pin.json`) beside each own backup that has one, by backup id. */
  readonly pins: ReadonlyMap<string, StoredObject>;
}

/** The part of a drill record the backup JSON carries. */
export function summaryOf(record: DrillRecord): DrillSummary {
  const { status, at, durationMs, tablesChecked, rowsChecked, detail } = record;
  return { status, at, durationMs, tablesChecked, rowsChecked, detail };
}

/**
 * Reads one complete listing and the sidecars it needs. A sidecar already in `known` at the same
 * size and date is not read again, so a refresh reads only what changed and an invalid sidecar is
 * reported once, not on every refresh. Invalid and foreign sidecars still mark their dump as
 * someone's (never an orphan). Throws when the listing fails: callers must never act on a partial
 * view (invariant 4).
 */
export async function readSnapshot(storage: Storage, owner: Owner, known: ReadonlyMap<string, KnownSidecar>, logger: Logger): Promise<StorageSnapshot> {
  const objects = await storage.list();
  const names = new Map(objects.map((o) => [o.name, o]));
  const backups: BackupSidecar[] = [];
  const orphans: StoredObject[] = [];
  const read = new Map<string, KnownSidecar>();
  const drills = new Map<string, StoredObject>();
  const pins = new Map<string, StoredObject>();
  let foreign = 0;
  for (const object of objects) {
    const companionOf = backupIdOfCompanion(object.name);
    if (companionOf !== null) {
      // Never a backup, nor someone's backup by itself: only leftover once its backup is gone.
      if (isOwnBackupId(companionOf, owner.namePrefix) && !names.has(companionOf) && !names.has(sidecarName(companionOf))) orphans.push(object);
      continue;
    }
    if (!isOwnBackupId(object.name, owner.namePrefix)) continue;
    const drillObject = names.get(drillName(object.name));
    if (drillObject) drills.set(object.name, drillObject);
    const pinObject = names.get(pinName(object.name));
    if (pinObject) pins.set(object.name, pinObject);
    const sidecarObject = names.get(sidecarName(object.name));
    if (!sidecarObject) {
      orphans.push(object);
      continue;
    }
    const version = versionOf(sidecarObject);
    const previous = known.get(object.name);
    let current: KnownSidecar | undefined = previous?.version === version ? previous : undefined;
    if (!current) {
      try {
        const parsed = parseSidecar((await storage.getSmall(sidecarName(object.name))).toString('utf8'), object.name);
        if (parsed.ok) {
          current = { version, entry: { kind: isOfDatabase(parsed.sidecar, owner.database) ? 'own' : 'foreign', sidecar: parsed.sidecar } };
        } else {
          current = { version, entry: { kind: 'invalid', problem: parsed.problem } };
          // Once per version of the file: the next refresh finds it in `known` and stays quiet.
          logger.warn('ignoring a backup whose sidecar is not valid (it is left as it is)', { sidecar: sidecarName(object.name), reason: parsed.problem });
        }
      } catch (error) {
        // Deleted between list and read (retention elsewhere): simply gone.
        if (error instanceof StorageNotFoundError) continue;
        // A transient read failure must not make a known backup disappear (L1): keep what we had.
        current = previous;
        logger.warn('could not read a sidecar; keeping what was known of it', { sidecar: sidecarName(object.name), error: (error as Error).message });
        if (!current) continue;
      }
    }
    read.set(object.name, current);
    if (current.entry.kind === 'own') backups.push(current.entry.sidecar);
    else if (current.entry.kind === 'foreign') foreign++;
  }
  return { backups, orphans, foreign, known: read, drills, pins };
}

/**
 * The listing served by the API: built from storage at start, kept current by the service's own
 * writes and deletes, and re-read periodically so changes made by others show up. A request never
 * reads sidecars.
 */
export class BackupIndex {
  readonly #storage: Storage;
  readonly #owner: Owner;
  readonly #logger: Logger;
  #byId = new Map<string, BackupSidecar>();
  /** Each listed backup's newest drill, by id. */
  readonly #drills: CompanionRecords<DrillSummary>;
  /** The pin of each pinned listed backup, by id. */
  readonly #pins: CompanionRecords<Pin>;
  #known: ReadonlyMap<string, KnownSidecar> = new Map();
  #foreign = 0;
  #warnedForeign = false;
  #sorted: BackupSidecar[] = [];
  /** The listing as the API sends it, built on first use after a change. */
  #listJson: Buffer | null = null;
  /** The refresh in flight (or the last one): refreshes run one after another. */
  #refreshing: Promise<unknown> = Promise.resolve();
  #pendingRefreshes = 0;
  /**
   * add()/remove() made while refreshes are pending, by id (sidecar null: removed), numbered: a
   * refresh applies those made after it was requested on top of its listing, which may predate them.
   */
  readonly #changes = new Map<string, { readonly sidecar: BackupSidecar | null; readonly seq: number }>();
  #seq = 0;

  constructor(storage: Storage, owner: Owner, logger: Logger) {
    this.#storage = storage;
    this.#owner = owner;
    this.#logger = logger;
    this.#drills = new CompanionRecords({ storage, logger, what: 'drill record', parse: (json) => {
      const parsed = DrillRecordSchema.safeParse(json);
      return parsed.success ? summaryOf(parsed.data) : null;
    } });
    this.#pins = new CompanionRecords({
      storage,
      logger,
      what: 'pin',
      parse: (json) => {
        const parsed = PinRecordSchema.safeParse(json);
        return parsed.success ? pinOfRecord(parsed.data) : null;
      },
      // A pin protects by existing, whatever it holds (written by hand, cut short): shown as pinned
      // since it was written, so the plan, the list and a run agree.
      invalid: (object) => ({ at: object.lastModified.toISOString(), reason: null }),
    });
  }

  /**
   * Replaces the index with a fresh read of storage; on failure the previous index stays.
   * Serialised, so an older read never finishes after a newer one and wins; and a backup added
   * after the refresh was requested stays, even though the listing may predate its sidecar (L1).
   */
  refresh(): Promise<StorageSnapshot> {
    const since = this.#seq;
    this.#pendingRefreshes++;
    const run = this.#refreshing.then(() => this.#refreshOnce(since)).finally(() => {
      if (--this.#pendingRefreshes === 0) {
        this.#changes.clear();
        this.#drills.settled();
        this.#pins.settled();
      }
    });
    this.#refreshing = run.catch(() => undefined);
    return run;
  }

  async #refreshOnce(since: number): Promise<StorageSnapshot> {
    // What the index holds counts as known: a backup added by this service whose sidecar read
    // fails for a moment stays listed (its read is retried on the next refresh).
    const known = new Map(this.#known);
    for (const [id, sidecar] of this.#byId) if (!known.has(id)) known.set(id, { version: '', entry: { kind: 'own', sidecar } });
    const snapshot = await readSnapshot(this.#storage, this.#owner, known, this.#logger);
    const byId = new Map(snapshot.backups.map((b) => [b.id, b]));
    for (const [id, change] of this.#changes) {
      if (change.seq <= since) continue;
      if (change.sidecar) byId.set(id, change.sidecar);
      else byId.delete(id);
    }
    this.#byId = byId;
    await this.#drills.refresh(byId.keys(), snapshot.drills, since);
    await this.#pins.refresh(byId.keys(), snapshot.pins, since);
    this.#known = snapshot.known;
    this.#foreign = snapshot.foreign;
    this.#resort();
    if (snapshot.foreign > 0 && !this.#warnedForeign) {
      this.#warnedForeign = true;
      this.#logger.warn('backups of another database share this location and name prefix: they are ignored (not listed, pruned or cleaned up)', {
        foreignBackups: snapshot.foreign,
        database: this.#owner.database,
        storage: this.#storage.location,
        fix: 'give each database its own BACKUP_NAME_PREFIX, S3_PREFIX or BACKUP_LOCAL_DIR',
      });
    }
    return { ...snapshot, backups: [...byId.values()], orphans: snapshot.orphans.filter((o) => !byId.has(backupIdOfCompanion(o.name) ?? o.name)) };
  }

  /** Records a drill this service just ran (its record may not be in storage: the write may have failed). */
  setDrill(record: DrillRecord): void {
    if (!this.#byId.has(record.backupId)) return;
    this.#drills.set(record.backupId, summaryOf(record), ++this.#seq, this.#pendingRefreshes > 0);
    this.#listJson = null;
  }

  /** The newest drill of a backup, or null when it was never drilled. */
  drillOf(id: string): DrillSummary | null {
    return this.#drills.get(id);
  }

  /** Records a pin this service just stored (a Pin) or deleted (null). */
  setPin(id: string, pin: Pin | null): void {
    if (!this.#byId.has(id) && pin !== null) return;
    this.#pins.set(id, pin, ++this.#seq, this.#pendingRefreshes > 0);
    this.#listJson = null;
  }

  /** A backup's pin, or null when it is not pinned. */
  pinOf(id: string): Pin | null {
    return this.#pins.get(id);
  }

  /**
   * Retention's view: pinned when its pin is known, or when the last listing had a pin object
   * that could not be read (a pin protects by existing).
   */
  isPinned(id: string): boolean {
    return this.#pins.get(id) !== null || this.#pins.unreadable(id);
  }

  /** The newest drill of any listed backup (by when it finished), with its backup id. */
  lastDrill(): (DrillSummary & { backupId: string }) | null {
    let last: (DrillSummary & { backupId: string }) | null = null;
    for (const [backupId, summary] of this.#drills.entries()) {
      if (this.#byId.has(backupId) && (last === null || summary.at > last.at)) last = { ...summary, backupId };
    }
    return last;
  }

  /** The newest backup whose newest drill passed: the newest one known to restore (a failed or skipped drill proves nothing). */
  lastVerified(): BackupSidecar | null {
    return this.#sorted.find((b) => this.#drills.get(b.id)?.status === 'passed') ?? null;
  }

  add(sidecar: BackupSidecar): void {
    this.#byId.set(sidecar.id, sidecar);
    this.#record(sidecar.id, sidecar);
    this.#resort();
  }

  remove(id: string): void {
    this.#record(id, null);
    const pending = this.#pendingRefreshes > 0;
    this.#drills.set(id, null, this.#seq, pending);
    this.#pins.set(id, null, this.#seq, pending);
    if (this.#byId.delete(id)) this.#resort();
  }

  #record(id: string, sidecar: BackupSidecar | null): void {
    if (this.#pendingRefreshes > 0) this.#changes.set(id, { sidecar, seq: ++this.#seq });
  }

  /** Newest first. */
  list(): readonly BackupSidecar[] {
    return this.#sorted;
  }

  /** Own-prefix backups of another database seen in the last refresh (/info). */
  get foreignCount(): number {
    return this.#foreign;
  }

  /** A listed backup as the API shows it: with its newest drill and its pin. */
  toPublic(sidecar: BackupSidecar): Backup {
    return toBackup(sidecar, { drill: this.drillOf(sidecar.id), pinned: this.pinOf(sidecar.id) });
  }

  /**
   * `list()` as public Backups, serialised to JSON (UTF-8). Kept until the index changes: with
   * 1,000 backups that is ~250 KB of JSON, which took most of a list request's time to rebuild.
   */
  listJson(): Buffer {
    this.#listJson ??= Buffer.from(JSON.stringify(this.#sorted.map((sidecar) => this.toPublic(sidecar))));
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
