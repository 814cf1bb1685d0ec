import { BackupSidecarSchema, ENCRYPTED_EXTENSION, isBackupId, isEncryptedId, UNKNOWN, type Backup, type BackupSidecar, type DrillSummary, type Pin, type PinRecord } from './schemas.js';

/** A backup `<id>` is listed only when `<id>.meta.json` exists beside it (invariant 1). */
export const SIDECAR_SUFFIX = '.meta.json';

/** The sidecar object name of a backup: `<id>.meta.json`. */
export function sidecarName(id: string): string {
  return `${id}${SIDECAR_SUFFIX}`;
}

/**
 * A backup's contents manifest, `<id>.contents.json`: written before the sidecar, removed with the
 * backup. An encrypted backup's is encrypted to the same recipients (it names every table), and
 * its name says so: `<id>.contents.json.age`.
 */
export function contentsName(id: string): string {
  return `${id}.contents.json${isEncryptedId(id) ? ENCRYPTED_EXTENSION : ''}`;
}

/** A backup's newest drill record, `<id>.drill.json`: written after a drill, removed with the backup. */
export function drillName(id: string): string {
  return `${id}.drill.json`;
}

/** A pinned backup's pin, `<id>.pin.json`: retention never deletes the backup while it exists; removed with the backup. */
export function pinName(id: string): string {
  return `${id}.pin.json`;
}

/** The part of a pin record (`<id>.pin.json`) a backup's JSON carries as `pinned`. */
export function pinOfRecord(record: PinRecord): Pin {
  return { at: record.at, reason: record.reason };
}

/** The backup id a sidecar name belongs to, or null when `name` is not a sidecar of a valid id. */
export function backupIdOfSidecar(name: string): string | null {
  if (!name.endsWith(SIDECAR_SUFFIX)) return null;
  const id = name.slice(0, -SIDECAR_SUFFIX.length);
  return isBackupId(id) ? id : null;
}

export type ParsedSidecar = { readonly ok: true; readonly sidecar: BackupSidecar } | { readonly ok: false; readonly problem: string };

/**
 * The one sidecar parser (server, db-restore's local and --file sources). Accepts our sidecars and
 * the reference service's (only id, createdAt, sizeBytes, sha256, pgVersion, durationMs,
 * triggeredBy), filling what is missing with BackupSidecarSchema's defaults. `problem` says why a
 * text is not a sidecar, for a log line or an error; `expectedId` (the name it was read under)
 * must match the id inside.
 */
export function parseSidecar(text: string, expectedId: string | null): ParsedSidecar {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, problem: 'not valid JSON' };
  }
  const parsed = BackupSidecarSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, problem: `not a backup sidecar (${issue ? `${issue.path.join('.') || 'value'}: ${issue.message}` : 'invalid'})` };
  }
  if (expectedId !== null && parsed.data.id !== expectedId) return { ok: false, problem: `it describes ${parsed.data.id}, not ${expectedId}` };
  // A name and a sidecar that disagree on encryption would send a restore down the wrong path.
  if (isEncryptedId(parsed.data.id) !== (parsed.data.encryption !== null)) {
    return { ok: false, problem: isEncryptedId(parsed.data.id) ? 'its id ends in .age, but it records no encryption' : 'it records encryption, but its id does not end in .age' };
  }
  return { ok: true, sidecar: parsed.data };
}

/**
 * Is this backup of `database` (invariant 11)? A sidecar without a database (the reference
 * service's, `unknown`) counts as ours: under our name prefix it can only be this service's
 * predecessor's.
 */
export function isOfDatabase(sidecar: Pick<BackupSidecar, 'database'>, database: string): boolean {
  return sidecar.database === database || sidecar.database === UNKNOWN;
}

/** The public Backup fields of a sidecar, with its newest drill and its pin: what the API lists. */
export function toBackup(sidecar: BackupSidecar, companions: { readonly drill?: DrillSummary | null; readonly pinned?: Pin | null } = {}): Backup {
  const { id, createdAt, sizeBytes, sha256, pgVersion, durationMs, triggeredBy, encryption } = sidecar;
  return { id, createdAt, sizeBytes, sha256, pgVersion, durationMs, triggeredBy, encryption, drill: companions.drill ?? null, pinned: companions.pinned ?? null };
}

/**
 * Newest first by creation time; ties (same second) by id in code-point order, whose `_<n>` suffix
 * orders same-second backups. Code points, not localeCompare: the order must not depend on a locale.
 */
export function compareNewestFirst(a: Pick<Backup, 'createdAt' | 'id'>, b: Pick<Backup, 'createdAt' | 'id'>): number {
  return Date.parse(b.createdAt) - Date.parse(a.createdAt) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}
