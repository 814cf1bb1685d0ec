import { createReadStream } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { formatOfMagic } from '@db-backup-service/restore';
import { basename, resolve } from 'node:path';
import { COMPRESSION_FORMATS, parseSidecar, sidecarName, type CompressionFormat } from '@db-backup-service/sdk';
import type { BackupSource, ResolvedBackup } from './backup-source.js';
import { CliError, ExitCode } from './exit-codes.js';
import { readLocalManifest } from './local-manifest.js';

/**
 * The compression a --file's name says: `.sql.gz` (or `.gz`) gzip, `.sql.zst` (or `.zst`) zstd, as
 * a backup id's extension says it; null for any other name. A name that says a format decides, as
 * it does for ids, and the file's first bytes must then agree (peekDumpHead): a misnamed file is
 * refused rather than guessed at.
 */
export function formatOfFileName(file: string): CompressionFormat | null {
  const name = basename(file);
  for (const [format, { extension }] of Object.entries(COMPRESSION_FORMATS) as [CompressionFormat, { extension: string }][]) {
    if (name.endsWith(extension) || name.endsWith(extension.replace(/^\.sql/, ''))) return format;
  }
  return null;
}

/**
 * The format of a --file: its name's, else (a name such as `backup` or `latest.dump`, as `curl -o`
 * may have saved it) the one its first bytes begin; neither is a usage error.
 */
async function formatOfFile(file: string): Promise<CompressionFormat> {
  const named = formatOfFileName(file);
  if (named !== null) return named;
  const handle = await open(file, 'r');
  let start: Buffer;
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(4), 0, 4, 0);
    start = buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
  const found = formatOfMagic(start);
  if (found !== null) return found;
  throw new CliError(ExitCode.USAGE, `--file ${file} is neither a gzip nor a zstd file (its name ends in neither .gz nor .zst, and its first bytes are neither format's); db-restore reads the .sql.gz and .sql.zst dumps the service writes. Nothing was changed in the database.`, {
    databaseState: 'untouched',
  });
}

/**
 * `--file PATH`: a .sql.gz or .sql.zst on local disk (e.g. one downloaded with curl -OJ). When
 * `<PATH>.meta.json` sits beside it, its checksum is enforced; without one only the integrity of
 * the compressed stream (gzip's CRC; zstd's single frame and content checksum) can be checked.
 */
export function fileSource(path: string, warn: (message: string) => void): BackupSource {
  const file = resolve(path);
  const description = `file ${file}`;
  return {
    description,
    list: () => Promise.reject(new Error('unreachable: --file has nothing to list')),

    async resolve(): Promise<ResolvedBackup> {
      let size: number;
      let format: CompressionFormat;
      try {
        const s = await stat(file);
        if (!s.isFile()) throw new CliError(ExitCode.NOT_FOUND, `${file} is not a file`);
        size = s.size;
        format = await formatOfFile(file);
      } catch (err) {
        if (err instanceof CliError) throw err;
        throw new CliError(ExitCode.NOT_FOUND, `cannot read --file ${file} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`, { cause: err });
      }
      let text: string | null = null;
      try {
        text = await readFile(sidecarName(file), 'utf8');
      } catch {
        warn(`no ${basename(file)}.meta.json beside the file: only its ${format} integrity can be verified, not its checksum`);
      }
      if (text !== null) {
        const parsed = parseSidecar(text, null);
        if (!parsed.ok) {
          throw new CliError(ExitCode.VERIFICATION_FAILED, `${file}.meta.json is ${parsed.problem}; remove it to restore without a checksum check. Nothing was changed in the database.`, {
            databaseState: 'untouched',
          });
        }
        const s = parsed.sidecar;
        return { id: s.id, format, createdAt: s.createdAt, sizeBytes: s.sizeBytes, sha256: s.sha256, database: s.database, pgVersion: s.pgVersion, contents: s.contents, origin: description };
      }
      return { id: basename(file), format, createdAt: null, sizeBytes: size, sha256: null, origin: description };
    },

    manifest: (backup) => readLocalManifest(file, backup),

    async open(_backup, { signal }) {
      return createReadStream(file, { signal });
    },

    async fetch() {
      return { path: file, cleanup: async () => undefined };
    },
  };
}
