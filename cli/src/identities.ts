import { readFileSync } from 'node:fs';
import { AgeError, isEncryptedId, parseIdentities, peekDumpHead, RestoreError, type DumpDecryption } from '@db-backup-service/restore';
import type { BackupSource, ResolvedBackup } from './backup-source.js';
import { asCliError, CliError, ExitCode } from './exit-codes.js';

/** The age identities db-restore was given, and the files they came from (for messages). */
export interface Identities {
  readonly identities: readonly string[];
  readonly files: readonly string[];
}

/**
 * `--identity FILE` (repeatable), else AGE_IDENTITY_FILE (one path): age identity files, each
 * with one or more `AGE-SECRET-KEY-1…` lines. Read when given, whatever the backup, so a wrong
 * path fails before anything is touched. Identities are secret: a message names the file and the
 * line, never its content (parseIdentities).
 */
export function loadIdentities(flags: readonly string[], env: NodeJS.ProcessEnv): Identities {
  const fromEnv = env.AGE_IDENTITY_FILE?.trim();
  const files = flags.length > 0 ? flags : fromEnv ? [fromEnv] : [];
  const where = (file: string): string => (flags.length > 0 ? `--identity ${file}` : `AGE_IDENTITY_FILE ${file}`);
  const identities: string[] = [];
  const problems: string[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      problems.push(`${where(file)} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'unreadable'}): point it at an age identity file (age-keygen -o key.txt writes one)`);
      continue;
    }
    try {
      identities.push(...parseIdentities(text, where(file)));
    } catch (err) {
      if (!(err instanceof AgeError)) throw err;
      problems.push(err.message);
    }
  }
  if (problems.length > 0) throw new CliError(ExitCode.USAGE, `${problems.join('; ')}. Nothing was changed in the database.`, { databaseState: 'untouched' });
  return { identities: [...new Set(identities)], files };
}

/** A backup's encryption as db-restore keeps it: the id decides (.age), the sidecar or listing names the recipients. */
export function encryptionOf(id: string, recorded: { readonly recipients: readonly string[] } | null | undefined): ResolvedBackup['encryption'] {
  if (!isEncryptedId(id)) return null;
  return { recipients: recorded?.recipients ?? [] };
}

/**
 * How to read `backup`: null when it is not encrypted; else its identities, or (none given) the
 * configuration error that says what is missing, before anything is touched.
 */
export function decryptionFor(backup: ResolvedBackup, given: Identities): DumpDecryption | null {
  if (backup.encryption === null) return null;
  if (given.identities.length === 0) throw missingIdentity(backup);
  return { identities: given.identities, where: `backup ${backup.id}` };
}

/** An encrypted backup and no identity: the message names the flag, the variable and the recipients when known. */
export function missingIdentity(backup: Pick<ResolvedBackup, 'id' | 'encryption'>): CliError {
  const recipients = backup.encryption?.recipients ?? [];
  const to = recipients.length === 0 ? '' : `, to ${recipients.join(', ')}`;
  const whose = recipients.length === 0 ? 'one of the keys it was encrypted to' : `the key of one of its recipients`;
  return new CliError(
    ExitCode.USAGE,
    `backup ${backup.id} is encrypted (age${to}): pass --identity FILE or set AGE_IDENTITY_FILE to an identity file holding ${whose}. Nothing was changed in the database.`,
    { databaseState: 'untouched' },
  );
}

/**
 * Opens the encrypted backup's age header (and its first chunk) with the identities and drops the
 * stream again: a wrong identity, or a file that is not age, is reported before the plan, the
 * countdown, a download to TMPDIR (--in-place through the service) or a whole-file verification.
 */
export async function checkIdentityOpens(source: BackupSource, backup: ResolvedBackup, decrypt: DumpDecryption, signal: AbortSignal): Promise<void> {
  const stream = await source.open(backup, { signal });
  try {
    await peekDumpHead(stream, { format: backup.format, label: backup.id, decrypt });
  } catch (err) {
    if (err instanceof RestoreError) {
      const failure = asCliError(err) as CliError;
      throw new CliError(failure.exitCode, `${failure.message}. Nothing was changed in the database.`, { cause: err, databaseState: 'untouched' });
    }
    throw err;
  } finally {
    stream.destroy();
  }
}
