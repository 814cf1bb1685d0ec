import { createReadStream } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { AgeError, AGE_INTRO, decryptionFailure, decryptStart, ENCRYPTED_PEEK_BYTES, formatOfMagic, isAgeEncrypted, isEncryptedId, plainNameOf } from '@db-backup-service/restore';
import { COMPRESSION_FORMATS, parseSidecar, sidecarName, type BackupSidecar, type CompressionFormat } from '@db-backup-service/sdk';
import type { BackupSource, ResolvedBackup } from './backup-source.js';
import { CliError, ExitCode } from './exit-codes.js';
import { missingIdentity, type Identities } from './identities.js';
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

/** The first `bytes` of a file (fewer when it is shorter). */
async function readStartOf(file: string, bytes: number): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(bytes), 0, bytes, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

function neitherFormat(file: string, what: string): CliError {
  return new CliError(
    ExitCode.USAGE,
    `--file ${file} is neither a gzip nor a zstd file (its name ends in neither .gz nor .zst, and ${what} neither format's); db-restore reads the .sql.gz and .sql.zst dumps the service writes, and their .age. Nothing was changed in the database.`,
    { databaseState: 'untouched' },
  );
}

/**
 * The format of a plain --file: its name's, else (a name such as `backup` or `latest.dump`, as
 * `curl -o` may have saved it) the one its first bytes begin; neither is a usage error.
 */
function formatOfFile(file: string, start: Buffer): CompressionFormat {
  const named = formatOfFileName(file);
  if (named !== null) return named;
  const found = formatOfMagic(start);
  if (found !== null) return found;
  throw neitherFormat(file, 'its first bytes are');
}

/**
 * The compression inside an encrypted --file: its name's without `.age`, else the one its first
 * decrypted bytes begin (which needs an identity: without one, the missing-identity error).
 */
async function formatOfEncryptedFile(file: string, id: string, encryption: ResolvedBackup['encryption'], identities: Identities): Promise<CompressionFormat> {
  const named = formatOfFileName(plainNameOf(file));
  if (named !== null) return named;
  if (identities.identities.length === 0) throw missingIdentity({ id, encryption });
  const stored = await readStartOf(file, ENCRYPTED_PEEK_BYTES);
  let plain: Buffer;
  try {
    plain = await decryptStart(stored, stored.length < ENCRYPTED_PEEK_BYTES, { identities: identities.identities, where: `--file ${file}` });
  } catch (err) {
    if (err instanceof AgeError) throw decryptionFailure(err);
    throw err;
  }
  const found = formatOfMagic(plain);
  if (found !== null) return found;
  throw neitherFormat(file, 'its first bytes, decrypted, are');
}

/**
 * `--file PATH`: a .sql.gz or .sql.zst on local disk (e.g. one downloaded with curl -OJ), or its
 * age-encrypted .age (by the service, or by the `age` CLI): a name ending in .age, or a file that
 * begins as an age file does, is decrypted with `identities`. When `<PATH>.meta.json` sits beside
 * it, its checksum (of the stored bytes) is enforced; without one only the integrity of the
 * compressed stream (gzip's CRC; zstd's single frame and content checksum) and, when encrypted,
 * age's authentication of every chunk can be checked.
 */
export function fileSource(path: string, warn: (message: string) => void, identities: Identities): BackupSource {
  const file = resolve(path);
  const description = `file ${file}`;
  return {
    description,
    list: () => Promise.reject(new Error('unreachable: --file has nothing to list')),

    async resolve(): Promise<ResolvedBackup> {
      let size: number;
      let start: Buffer;
      try {
        const s = await stat(file);
        if (!s.isFile()) throw new CliError(ExitCode.NOT_FOUND, `${file} is not a file`);
        size = s.size;
        start = await readStartOf(file, AGE_INTRO.length);
      } catch (err) {
        if (err instanceof CliError) throw err;
        throw new CliError(ExitCode.NOT_FOUND, `cannot read --file ${file} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`, { cause: err });
      }
      let text: string | null = null;
      try {
        text = await readFile(sidecarName(file), 'utf8');
      } catch {
        // Said below, once the format is known.
      }
      let sidecar: BackupSidecar | null = null;
      if (text !== null) {
        const parsed = parseSidecar(text, null);
        if (!parsed.ok) {
          throw new CliError(ExitCode.VERIFICATION_FAILED, `${file}.meta.json is ${parsed.problem}; remove it to restore without a checksum check. Nothing was changed in the database.`, {
            databaseState: 'untouched',
          });
        }
        sidecar = parsed.sidecar;
      }
      const id = sidecar?.id ?? basename(file);
      const encrypted = isEncryptedId(file) || isAgeEncrypted(start);
      const encryption = encrypted ? { recipients: sidecar?.encryption?.recipients ?? [] } : null;
      const format = encrypted ? await formatOfEncryptedFile(file, id, encryption, identities) : formatOfFile(file, start);
      if (sidecar === null) {
        warn(`no ${basename(file)}.meta.json beside the file: only its ${encrypted ? `age authentication and ${format}` : format} integrity can be verified, not its checksum`);
        return { id, format, encryption, createdAt: null, sizeBytes: size, sha256: null, origin: description };
      }
      const s = sidecar;
      return { id: s.id, format, encryption, createdAt: s.createdAt, sizeBytes: s.sizeBytes, sha256: s.sha256, database: s.database, pgVersion: s.pgVersion, contents: s.contents, origin: description };
    },

    manifest: (backup, decrypt) => readLocalManifest(file, backup, decrypt),

    async open(_backup, { signal }) {
      return createReadStream(file, { signal });
    },

    async fetch() {
      return { path: file, cleanup: async () => undefined };
    },
  };
}
