import { COMPRESSION_FORMATS, ENCRYPTED_EXTENSION, isBackupId, type CompressionFormat } from '@db-backup-service/contract';

// BACKUP_ID_PATTERN allows a suffix of at most four digits.
const MAX_SUFFIX = 9999;

/** `yyyyMMddTHHmmssZ` in UTC, the timestamp part of a backup id. */
export function formatBackupTimestamp(date: Date): string {
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  return (
    `${pad(date.getUTCFullYear(), 4)}${pad(date.getUTCMonth() + 1)}${pad(date.getUTCDate())}` +
    `T${pad(date.getUTCHours())}${pad(date.getUTCMinutes())}${pad(date.getUTCSeconds())}Z`
  );
}

/**
 * A new backup id, `<prefix>_<yyyyMMddTHHmmssZ>.sql.gz` (`.sql.zst` for zstd: the extension is the
 * format; `.age` after it when encrypted); when that is taken (two backups within one second), `<prefix>_<ts>_2.sql.gz`, `_3`, ... Throws if the result would not match
 * BACKUP_ID_PATTERN, so a bad prefix can never produce a name the download route would refuse.
 */
export function newBackupId(
  prefix: string,
  now: Date,
  kind: { readonly format: CompressionFormat; readonly encrypted: boolean },
  exists: (id: string) => boolean,
): string {
  const base = `${prefix}_${formatBackupTimestamp(now)}`;
  const extension = `${COMPRESSION_FORMATS[kind.format].extension}${kind.encrypted ? ENCRYPTED_EXTENSION : ''}`;
  for (let n = 1; n <= MAX_SUFFIX; n++) {
    const id = n === 1 ? `${base}${extension}` : `${base}_${n}${extension}`;
    if (!isBackupId(id)) throw new Error(`cannot build a valid backup id from prefix ${JSON.stringify(prefix)}`);
    if (!exists(id)) return id;
  }
  throw new Error(`more than ${MAX_SUFFIX} backups named ${base}*`);
}
