import type { Logger } from './logger.js';
import { StorageNotFoundError, type Storage, type StoredObject } from './storage/storage.js';

/** A record as last read: `version` is its size and date in the listing ('' for one this service wrote). */
interface Known<T> {
  readonly version: string;
  readonly value: T;
}

export function versionOf(object: StoredObject): string {
  return `${object.sizeBytes}:${object.lastModified.getTime()}`;
}

/**
 * One kind of small JSON record kept beside listed backups (`<id>.drill.json`, `<id>.pin.json`),
 * as the index serves it: read when the listing shows it new or changed, dropped when the listing
 * no longer has it. This service's own writes and deletes are applied at once, and a refresh whose
 * listing may predate them (it was requested before) does not undo them.
 */
export class CompanionRecords<T> {
  #known = new Map<string, Known<T>>();
  /** Own writes (value) and deletes (null) while refreshes are pending, numbered like the index's changes. */
  readonly #changes = new Map<string, { readonly value: T | null; readonly seq: number }>();
  /** The version of each record found invalid: warned about once, not on every refresh. */
  #invalid = new Map<string, string>();
  /** Listed records that could not be read (and none was known before): they exist, value unknown. */
  #unreadable = new Set<string>();

  constructor(
    private readonly deps: {
      readonly storage: Storage;
      readonly logger: Logger;
      /** e.g. 'drill record', for log lines. */
      readonly what: string;
      /** The record's value, or null when the JSON is not such a record. */
      readonly parse: (json: unknown) => T | null;
      /** What an object that is not a valid record stands for (a pin protects by existing); null: nothing. */
      readonly invalid?: (object: StoredObject) => T;
    },
  ) {}

  get(id: string): T | null {
    return this.#known.get(id)?.value ?? null;
  }

  /** The last listing had this record but it could not be read (nor was it known before). */
  unreadable(id: string): boolean {
    return this.#unreadable.has(id);
  }

  /** Every record known, by backup id. */
  *entries(): IterableIterator<[string, T]> {
    for (const [id, { value }] of this.#known) yield [id, value];
  }

  /** This service stored (value) or deleted (null) the record of `id`; `seq` and `pending` as the index's. */
  set(id: string, value: T | null, seq: number, pending: boolean): void {
    if (value === null) this.#known.delete(id);
    else this.#known.set(id, { version: '', value });
    this.#unreadable.delete(id);
    if (pending) this.#changes.set(id, { value, seq });
  }

  /** No refresh is pending any more: own changes need not be remembered. */
  settled(): void {
    this.#changes.clear();
  }

  /**
   * Brings the records of the listed backups `ids` in line with a listing (`objects`: the record
   * object of each backup that has one), keeping own changes made after the refresh was requested
   * (`since`). An unreadable record keeps what was known of it.
   */
  async refresh(ids: Iterable<string>, objects: ReadonlyMap<string, StoredObject>, since: number): Promise<void> {
    const { storage, logger, what, parse } = this.deps;
    const next = new Map<string, Known<T>>();
    const invalid = new Map<string, string>();
    const unreadable = new Set<string>();
    for (const id of ids) {
      const previous = this.#known.get(id);
      const change = this.#changes.get(id);
      if (change !== undefined && change.seq > since) {
        if (change.value !== null) next.set(id, { version: '', value: change.value });
        continue;
      }
      const object = objects.get(id);
      if (!object) continue;
      const version = versionOf(object);
      if (previous?.version === version) {
        next.set(id, previous);
        continue;
      }
      // Not a valid record: what it stands for (a pin still pins), else what was known before.
      const keepInvalid = () => {
        invalid.set(id, version);
        const standIn = this.deps.invalid?.(object);
        if (standIn !== undefined) next.set(id, { version, value: standIn });
        else if (previous) next.set(id, previous);
      };
      if (this.#invalid.get(id) === version) {
        keepInvalid();
        continue;
      }
      try {
        const text = (await storage.getSmall(object.name)).toString('utf8');
        let value: T | null = null;
        try {
          value = parse(JSON.parse(text));
        } catch {
          // Not JSON: not a valid record either.
        }
        if (value !== null) {
          next.set(id, { version, value });
          continue;
        }
        logger.warn(this.deps.invalid ? `a ${what} that is not valid still counts` : `ignoring a ${what} that is not valid`, { object: object.name });
        keepInvalid();
        continue;
      } catch (error) {
        // Deleted between list and read: gone. Otherwise a transient failure: keep what was known.
        if (error instanceof StorageNotFoundError) continue;
        logger.warn(`could not read a ${what}`, { object: object.name, error: (error as Error).message });
      }
      if (previous) next.set(id, previous);
      else unreadable.add(id);
    }
    this.#known = next;
    this.#invalid = invalid;
    this.#unreadable = unreadable;
  }
}
