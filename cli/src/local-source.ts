import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  backupIdOfSidecar,
  compareNewestFirst,
  compressionOfId,
  isBackupId,
  isOfDatabase,
  parseSidecar,
  pinName,
  pinOfRecord,
  PinRecordSchema,
  sidecarName,
  toBackup,
  UNKNOWN,
  type BackupSidecar,
  type Pin,
} from '@db-backup-service/sdk';
import type { BackupSource, LocalDump, ResolvedBackup } from './backup-source.js';
import { readLocalManifest } from './local-manifest.js';
import { CliError, ExitCode } from './exit-codes.js';
import { encryptionOf } from './identities.js';

/** Whose backups db-restore may pick: the service's name prefix and, when DB_NAME is set, its database. */
export interface LocalOwner {
  readonly namePrefix: string;
  /** DB_NAME as the service has it; null when unset (then `latest` refuses to choose between databases). */
  readonly database: string | null;
}

/**
 * Backups in BACKUP_LOCAL_DIR, read directly (the service need not run). Like the service, only
 * dumps with a sidecar count (a dump without one was never completed, invariant 1), and only this
 * service's: its name prefix and a sidecar naming its database (invariant 11).
 */
export function localSource(dir: string, owner: LocalOwner, warn: (message: string) => void): BackupSource {
  const description = `local directory ${dir}`;
  const { namePrefix, database } = owner;

  const readSidecar = async (id: string): Promise<BackupSidecar | null> => {
    const path = join(dir, sidecarName(id));
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new CliError(ExitCode.USAGE, `cannot read ${path}: ${(err as Error).message}`, { cause: err });
    }
    const result = parseSidecar(text, id);
    if (!result.ok) {
      warn(`ignoring ${id}: its sidecar is ${result.problem}`);
      return null;
    }
    return result.sidecar;
  };

  const dumpExists = async (id: string): Promise<boolean> => {
    try {
      return (await stat(join(dir, id))).isFile();
    } catch {
      return false;
    }
  };

  /**
   * `<id>.pin.json`, as the service reads it. A pin protects by existing: one that cannot be read
   * or is no pin record (written by hand, cut short) still counts, as pinned since the file was
   * written, with a warning; it must not cost the listing.
   */
  const readPin = async (id: string): Promise<Pin | null> => {
    const path = join(dir, pinName(id));
    let why: string;
    try {
      const parsed = PinRecordSchema.safeParse(JSON.parse(await readFile(path, 'utf8')));
      if (parsed.success) return pinOfRecord(parsed.data);
      why = 'is not a pin record';
    } catch (err) {
      // Unpinned between the listing and this read: simply not pinned.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      why = err instanceof SyntaxError ? 'is not valid JSON' : `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
    }
    const written = await stat(path).catch(() => null);
    if (written === null) return null;
    warn(`${path} ${why}: ${id} still counts as pinned (retention keeps it while the file exists)`);
    return { at: written.mtime.toISOString(), reason: null };
  };

  /** Our complete backups, newest first; another database's are counted and left out. */
  const listOwn = async (): Promise<{ backups: BackupSidecar[]; names: ReadonlySet<string> }> => {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
      throw new CliError(ExitCode.USAGE, `BACKUP_LOCAL_DIR ${dir} cannot be read (${code}). Set it to the directory the service writes backups to (inside the container, its mount point).`, { cause: err });
    }
    const own: BackupSidecar[] = [];
    let foreign = 0;
    for (const name of names) {
      const id = backupIdOfSidecar(name);
      // The service's own names only: nothing else in the directory is a backup of ours.
      if (id === null || !id.startsWith(`${namePrefix}_`)) continue;
      const sidecar = await readSidecar(id);
      if (sidecar === null) continue;
      if (database !== null && !isOfDatabase(sidecar, database)) {
        foreign++;
        continue;
      }
      if (!(await dumpExists(id))) {
        warn(`ignoring ${id}: its sidecar exists but the dump is missing`);
        continue;
      }
      own.push(sidecar);
    }
    if (foreign > 0) warn(`${foreign} backup${foreign === 1 ? '' : 's'} in ${dir} under prefix "${namePrefix}" belong to another database than ${database ?? ''}: not listed`);
    return { backups: own.sort(compareNewestFirst), names: new Set(names) };
  };

  const source: BackupSource = {
    description,

    async list() {
      const { backups, names } = await listOwn();
      // Only pins the listing shows: most backups have none, and a read per backup would be wasted.
      return Promise.all(backups.map(async (sidecar) => toBackup(sidecar, { pinned: names.has(pinName(sidecar.id)) ? await readPin(sidecar.id) : null })));
    },

    async resolve(idOrLatest) {
      let sidecar: BackupSidecar | null;
      if (idOrLatest === 'latest') {
        const own = (await listOwn()).backups;
        const newest = own[0];
        if (!newest) throw new CliError(ExitCode.NOT_FOUND, `no backups in ${dir} (with prefix "${namePrefix}"${database === null ? '' : ` of database ${database}`})`);
        const databases = [...new Set(own.map((b) => b.database).filter((d) => d !== UNKNOWN))].sort();
        if (database === null && databases.length > 1) {
          throw new CliError(ExitCode.USAGE, `${dir} holds backups of several databases (${databases.join(', ')}) under prefix "${namePrefix}": set DB_NAME to the database the service backs up, or name a backup id.`);
        }
        sidecar = newest;
      } else {
        // Checked before touching the file system: an id never names a path (invariant 7).
        if (!isBackupId(idOrLatest)) {
          throw new CliError(ExitCode.USAGE, `"${idOrLatest.slice(0, 120)}" is not a backup id (<prefix>_<yyyyMMddTHHmmssZ>.sql.gz or .sql.zst, encrypted: .sql.gz.age or .sql.zst.age) or "latest". To restore a file, use --file PATH.`);
        }
        sidecar = await readSidecar(idOrLatest);
        if (sidecar === null) {
          const hint = (await dumpExists(idOrLatest)) ? ' (the dump exists without a sidecar: it was never completed and verified)' : '';
          throw new CliError(ExitCode.NOT_FOUND, `backup ${idOrLatest} not found in ${dir}${hint}. Run db-restore without arguments to list backups.`);
        }
        if (database !== null && !isOfDatabase(sidecar, database)) {
          throw new CliError(ExitCode.NOT_FOUND, `backup ${idOrLatest} in ${dir} is of database ${sidecar.database}, not ${database} (DB_NAME): not restoring another database's backup. Restore it with --file if that is really meant.`);
        }
      }
      if (!(await dumpExists(sidecar.id))) {
        throw new CliError(ExitCode.NOT_FOUND, `backup ${idOrLatest} not found in ${dir}`);
      }
      return {
        id: sidecar.id,
        format: compressionOfId(sidecar.id),
        encryption: encryptionOf(sidecar.id, sidecar.encryption),
        createdAt: sidecar.createdAt,
        sizeBytes: sidecar.sizeBytes,
        sha256: sidecar.sha256,
        database: sidecar.database,
        pgVersion: sidecar.pgVersion,
        contents: sidecar.contents,
        origin: description,
      } satisfies ResolvedBackup;
    },

    manifest: (backup, decrypt) => readLocalManifest(join(dir, backup.id), backup, decrypt),

    async open(backup, { signal }) {
      return createReadStream(join(dir, backup.id), { signal });
    },

    async fetch(backup): Promise<LocalDump> {
      return { path: join(dir, backup.id), cleanup: async () => undefined };
    },
  };
  return source;
}
