import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BackupServiceError, compressionOfId, createClient, isBackupId, type BackupServiceClient } from '@db-backup-service/sdk';
import type { BackupSource, LocalDump, ResolvedBackup } from './backup-source.js';
import { resumableDownload } from './resumable-download.js';
import { CliError, ExitCode } from './exit-codes.js';
import { encryptionOf } from './identities.js';

/**
 * Backups in S3, read through the running service's REST API with the SDK: db-restore carries no
 * S3 credentials, so the service must be up and able to reach its storage.
 */
export function serviceSource(serviceUrl: string, apiToken: string, opts: { fetch?: typeof globalThis.fetch; warn: (m: string) => void }): BackupSource {
  const client = createClient({ baseUrl: serviceUrl, token: apiToken, ...(opts.fetch ? { fetch: opts.fetch } : {}) });
  const description = `db-backup-service at ${client.baseUrl}`;
  const howToFix =
    `db-restore reads S3 backups through the running service. Check that it runs and is healthy (curl ${client.baseUrl}/health), ` +
    'or point --service-url / DB_RESTORE_SERVICE_URL at it.';

  /** Turns an SDK error into the operator's message and exit code. */
  const explain = async (err: unknown): Promise<unknown> => {
    if (!(err instanceof BackupServiceError)) return err;
    switch (err.code) {
      case 'UNREACHABLE':
      case 'TIMEOUT':
        return new CliError(ExitCode.SERVICE_UNREACHABLE, `${err.message}. ${howToFix}`, { cause: err, databaseState: 'untouched' });
      case 'UNAUTHORIZED':
        return new CliError(ExitCode.USAGE, `${description} refused the API token (401). Set API_TOKEN (or API_TOKEN_FILE) to the service's token.`, { cause: err, databaseState: 'untouched' });
      case 'NOT_FOUND':
        return new CliError(ExitCode.NOT_FOUND, err.message, { cause: err, databaseState: 'untouched' });
      case 'CHECKSUM_MISMATCH':
        return new CliError(ExitCode.VERIFICATION_FAILED, `${err.message}. Nothing was changed in the database.`, { cause: err, databaseState: 'untouched' });
      case 'SERVICE_UNAVAILABLE':
      case 'HTTP_ERROR':
      case 'CONNECTION_LOST': {
        const health = await client.health().catch(() => null);
        const down = health
          ? Object.entries(health.components)
              .filter(([, c]) => c.status === 'DOWN')
              .map(([name]) => `${name} DOWN`)
          : [];
        const state = down.length > 0 ? ` The service reports: ${down.join(', ')} (its log says why).` : '';
        return new CliError(ExitCode.SERVICE_UNREACHABLE, `${err.message}.${state} ${howToFix}`, { cause: err, databaseState: 'untouched' });
      }
      default:
        return new CliError(ExitCode.UNEXPECTED, err.message, { cause: err, databaseState: 'untouched' });
    }
  };

  const call = async <T>(fn: (c: BackupServiceClient) => Promise<T>): Promise<T> => {
    try {
      return await fn(client);
    } catch (err) {
      throw await explain(err);
    }
  };

  const source: BackupSource = {
    description,

    list: ({ signal }) => call((c) => c.listBackups(signal ? { signal } : {})),

    async resolve(idOrLatest, { signal }) {
      const callOpts = signal ? { signal } : {};
      if (idOrLatest === 'latest') {
        const latest = await call((c) => c.latestBackup(callOpts));
        if (latest === null) throw new CliError(ExitCode.NOT_FOUND, `${description} has no successful backup yet`);
        return { id: latest.id, format: compressionOfId(latest.id), encryption: encryptionOf(latest.id, latest.encryption), createdAt: latest.createdAt, sizeBytes: latest.sizeBytes, sha256: latest.sha256, pgVersion: latest.pgVersion, origin: description };
      }
      if (!isBackupId(idOrLatest)) {
        throw new CliError(ExitCode.USAGE, `"${idOrLatest.slice(0, 120)}" is not a backup id (<prefix>_<yyyyMMddTHHmmssZ>.sql.gz or .sql.zst, encrypted: .sql.gz.age or .sql.zst.age) or "latest". To restore a file, use --file PATH.`);
      }
      // There is no metadata route per id: the listing is the sidecars' view.
      const found = (await call((c) => c.listBackups(callOpts))).find((b) => b.id === idOrLatest);
      if (!found) throw new CliError(ExitCode.NOT_FOUND, `backup ${idOrLatest} not found at ${description}. Run db-restore without arguments to list backups.`);
      return { id: found.id, format: compressionOfId(found.id), encryption: encryptionOf(found.id, found.encryption), createdAt: found.createdAt, sizeBytes: found.sizeBytes, sha256: found.sha256, pgVersion: found.pgVersion, origin: description };
    },

    async manifest() {
      // The API serves dumps, not their manifests: a drill through the service counts the stream itself.
      return { manifest: null, problem: null, note: `${description} serves no contents manifest to db-restore` };
    },

    async open(backup, { signal }) {
      // Straight into the restore: the checksum is checked on the way, before its COMMIT.
      const first = await call((c) => c.download(backup.id, { signal }));
      return resumableDownload(client, first, {
        signal,
        onRetry: (r) => opts.warn(`download interrupted (${r.error.message}); resuming at byte ${r.resumeFrom} (attempt ${r.attempt})`),
      });
    },

    async fetch(backup: ResolvedBackup, { signal, progress }): Promise<LocalDump> {
      // Private (0700) directory: the dump is a full copy of the database.
      const dir = await mkdtemp(join(tmpdir(), 'db-restore-'));
      await chmod(dir, 0o700);
      const cleanup = (): Promise<void> => rm(dir, { recursive: true, force: true });
      const phase = progress.phase('download', backup.sizeBytes);
      try {
        const file = await call((c) =>
          c.downloadToFile(backup.id, join(dir, backup.id), {
            signal,
            onProgress: (p) => phase.update(p.receivedBytes),
            onRetry: (r) => opts.warn(`download interrupted (${r.error.message}); resuming at byte ${r.resumeFrom} (attempt ${r.attempt})`),
          }),
        );
        phase.done();
        return { path: file.path, cleanup };
      } catch (err) {
        phase.done(false);
        await cleanup();
        throw err;
      }
    },
  };
  return source;
}
