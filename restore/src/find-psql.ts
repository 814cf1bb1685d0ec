import type { DumpHead } from './dump-preamble.js';
import { RestoreError } from './errors.js';
import { describeClients, findPgClients, PgClientsError, type PgClient } from './pg-clients.js';
import { psqlUnderstandsRestrict, RESTRICT_RELEASES } from './pg-version.js';
import { withoutSecrets } from './psql.js';

export interface PsqlChoice {
  readonly psql: PgClient;
  /** Every psql found, oldest first (for messages). */
  readonly found: readonly PgClient[];
}

/**
 * Finds psql the way the service finds pg_dump (PG_BIN_DIR, else every `<PG_CLIENTS_DIR>/<major>/bin`,
 * else PATH) and takes the newest: psql restores into older servers, while an older psql may not
 * know what a newer pg_dump wrote (`\restrict`, see checkPsqlRunsDump).
 */
export async function findPsql(opts: {
  pgBinDir: string | null;
  clientsDir: string | null;
  /** Tests: stands in for /usr/lib/postgresql. */
  defaultClientsDir?: string;
  path?: string | undefined;
  env: NodeJS.ProcessEnv;
}): Promise<PsqlChoice> {
  try {
    const found = await findPgClients({ tool: 'psql', binDir: opts.pgBinDir, clientsDir: opts.clientsDir, path: opts.path ?? '', env: withoutSecrets(opts.env), ...(opts.defaultClientsDir === undefined ? {} : { defaultClientsDir: opts.defaultClientsDir }) });
    const psql = found.at(-1);
    if (psql === undefined) throw new PgClientsError('psql not found');
    return { psql, found };
  } catch (error) {
    if (error instanceof PgClientsError) throw new RestoreError('usage', error.message, { cause: error });
    throw error;
  }
}

/** Refuses, before the target is touched, a dump that opens with `\restrict` when psql cannot run that. */
export function checkPsqlRunsDump(choice: PsqlChoice, head: DumpHead): void {
  if (!head.restrict || psqlUnderstandsRestrict(choice.psql.version)) return;
  const by = head.pgDumpVersion === null ? 'its pg_dump' : `pg_dump ${head.pgDumpVersion.text}`;
  throw new RestoreError(
    'usage',
    `this backup opens with \\restrict (written by ${by}), which psql ${choice.psql.version.text} cannot run (psql found: ${describeClients(choice.found)}). ` +
      `Install a psql from ${RESTRICT_RELEASES} (e.g. postgresql-client-${Math.max(17, Math.floor(head.pgDumpVersion?.major ?? 17))}) or point PG_BIN_DIR at one.`,
    { databaseState: 'untouched' },
  );
}
