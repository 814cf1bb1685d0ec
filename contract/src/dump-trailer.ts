// The byte-level check of a plain pg_dump's ends (invariant 2), shared by the service (while a
// backup streams) and db-restore (before it restores a file), so both accept exactly the same dumps.
// Pure string work: no Node or stream dependency, as the contract package has none.

/** The comment line pg_dump writes only after everything else of a plain dump was written. */
export const DUMP_COMPLETE_LINE = '-- PostgreSQL database dump complete';

/**
 * How much of each end of the uncompressed dump a checker keeps. The trailer is ~150 bytes (with
 * pg_dump 15.14+/16.10+/17.6+'s `\unrestrict <64 chars>` line); a few KB leave room for trailing
 * blank lines while keeping memory fixed (invariant 5). `\restrict` is in the first few lines.
 */
export const DUMP_ENDS_KEEP_BYTES = 4096;

const RESTRICT_LINE = /^\\restrict ([A-Za-z0-9]+)$/m;
const UNRESTRICT_LINE = /^\\unrestrict ([A-Za-z0-9]+)$/;

export type DumpEndingCheck = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/**
 * Checks the ends of a plain-format dump (invariant 2). `tail` must end with the completion
 * comment, followed only by blank lines, `--` lines and at most one `\unrestrict <key>` line.
 * When `head` opened the dump with `\restrict <key>`, the same key must close it: a dump cut
 * between the completion comment and `\unrestrict` would otherwise pass, and psql would leave
 * the restoring session restricted.
 */
export function checkDumpEnding(head: string, tail: string): DumpEndingCheck {
  const lines = tail.split('\n');
  let i = lines.length - 1;
  let unrestrictKey: string | null = null;
  for (; i >= 0; i--) {
    const line = lines[i] ?? '';
    if (line === '' || line === '--') continue;
    const match = UNRESTRICT_LINE.exec(line);
    if (match && unrestrictKey === null) {
      unrestrictKey = match[1] ?? null;
      continue;
    }
    break;
  }
  if (i < 0 || lines[i] !== DUMP_COMPLETE_LINE) {
    return { ok: false, reason: 'pg_dump output is incomplete: no completion trailer' };
  }
  const restrictKey = RESTRICT_LINE.exec(head)?.[1] ?? null;
  if (restrictKey !== null && restrictKey !== unrestrictKey) {
    return {
      ok: false,
      reason: 'pg_dump output is incomplete: it opened with \\restrict but the matching \\unrestrict line is missing',
    };
  }
  return { ok: true };
}
