import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BackupSidecarSchema, isBackupId, type Backup, type BackupSidecar } from '@db-backup-service/sdk';
import { newestFirst, type BackupSource, type LocalDump, type ResolvedBackup } from './backup-source.js';
import { CliError, ExitCode } from './exit-codes.js';

const SIDECAR_SUFFIX = '.meta.json';

/** The public fields of a sidecar: what the API lists for a backup. */
function toBackup(s: BackupSidecar): Backup {
  return {
    id: s.id,
    createdAt: s.createdAt,
    sizeBytes: s.sizeBytes,
    sha256: s.sha256,
    pgVersion: s.pgVersion,
    durationMs: s.durationMs,
    triggeredBy: s.triggeredBy,
  };
}

/** Parses a sidecar's text; the reason when it is not one. */
export function parseSidecar(text: string, expectedId: string | null): { sidecar: BackupSidecar } | { problem: string } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { problem: 'not valid JSON' };
  }
  const parsed = BackupSidecarSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { problem: `not a backup sidecar (${issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid'})` };
  }
  if (expectedId !== null && parsed.data.id !== expectedId) return { problem: `it describes ${parsed.data.id}` };
  return { sidecar: parsed.data };
}

/**
 * Backups in BACKUP_LOCAL_DIR, read directly (the service need not run). Like the service, only
 * dumps with a sidecar count: a dump without one was never completed (invariant 1).
 */
export function localSource(dir: string, namePrefix: string, warn: (message: string) => void): BackupSource {
  const description = `local directory ${dir}`;

  const readSidecar = async (id: string): Promise<BackupSidecar | null> => {
    let text: string;
    try {
      text = await readFile(join(dir, `${id}${SIDECAR_SUFFIX}`), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new CliError(ExitCode.USAGE, `cannot read ${join(dir, `${id}${SIDECAR_SUFFIX}`)}: ${(err as Error).message}`, { cause: err });
    }
    const result = parseSidecar(text, id);
    if ('problem' in result) {
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

  const source: BackupSource = {
    description,

    async list() {
      let names: string[];
      try {
        names = await readdir(dir);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
        throw new CliError(ExitCode.USAGE, `BACKUP_LOCAL_DIR ${dir} cannot be read (${code}). Set it to the directory the service writes backups to (inside the container, its mount point).`, { cause: err });
      }
      const backups: Backup[] = [];
      for (const name of names) {
        if (!name.endsWith(SIDECAR_SUFFIX)) continue;
        const id = name.slice(0, -SIDECAR_SUFFIX.length);
        // The service's own names only: nothing else in the directory is a backup of ours.
        if (!isBackupId(id) || !id.startsWith(`${namePrefix}_`)) continue;
        const sidecar = await readSidecar(id);
        if (sidecar === null) continue;
        if (!(await dumpExists(id))) {
          warn(`ignoring ${id}: its sidecar exists but the dump is missing`);
          continue;
        }
        backups.push(toBackup(sidecar));
      }
      return backups.sort(newestFirst);
    },

    async resolve(idOrLatest) {
      let sidecar: BackupSidecar | null;
      if (idOrLatest === 'latest') {
        const newest = (await source.list({}))[0];
        if (!newest) throw new CliError(ExitCode.NOT_FOUND, `no backups in ${dir} (with prefix "${namePrefix}")`);
        sidecar = await readSidecar(newest.id);
      } else {
        // Checked before touching the file system: an id never names a path (invariant 7).
        if (!isBackupId(idOrLatest)) {
          throw new CliError(ExitCode.USAGE, `"${idOrLatest.slice(0, 120)}" is not a backup id (<prefix>_<yyyyMMddTHHmmssZ>.sql.gz) or "latest". To restore a file, use --file PATH.`);
        }
        sidecar = await readSidecar(idOrLatest);
        if (sidecar === null) {
          const hint = (await dumpExists(idOrLatest)) ? ' (the dump exists without a sidecar: it was never completed and verified)' : '';
          throw new CliError(ExitCode.NOT_FOUND, `backup ${idOrLatest} not found in ${dir}${hint}. Run db-restore without arguments to list backups.`);
        }
      }
      if (sidecar === null || !(await dumpExists(sidecar.id))) {
        throw new CliError(ExitCode.NOT_FOUND, `backup ${idOrLatest} not found in ${dir}`);
      }
      return {
        id: sidecar.id,
        createdAt: sidecar.createdAt,
        sizeBytes: sidecar.sizeBytes,
        sha256: sidecar.sha256,
        database: sidecar.database,
        pgVersion: sidecar.pgVersion,
        origin: description,
      } satisfies ResolvedBackup;
    },

    async fetch(backup): Promise<LocalDump> {
      return { path: join(dir, backup.id), cleanup: async () => undefined };
    },
  };
  return source;
}
