import { accessSync, constants, existsSync, readdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { CliError, ExitCode } from './exit-codes.js';

export interface PsqlLocation {
  readonly path: string;
  /** How it was found, for the plan ("PG_BIN_DIR", "/usr/lib/postgresql/17/bin", "PATH"). */
  readonly via: string;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds psql the way the service finds pg_dump: PG_BIN_DIR, else the newest
 * `<pgRoot>/<major>/bin`, else PATH. The newest major matters: a dump from pg_dump N may use
 * syntax (e.g. `\restrict`) that an older psql rejects.
 */
export function findPsql(opts: { pgBinDir: string | null; pgRoot?: string; path?: string | undefined }): PsqlLocation {
  if (opts.pgBinDir !== null) {
    const candidate = join(opts.pgBinDir, 'psql');
    if (!isExecutable(candidate)) {
      throw new CliError(ExitCode.USAGE, `PG_BIN_DIR is ${opts.pgBinDir}, but there is no executable psql in it. Point PG_BIN_DIR at the bin directory of the PostgreSQL client tools, or unset it.`);
    }
    return { path: candidate, via: 'PG_BIN_DIR' };
  }
  const root = opts.pgRoot ?? '/usr/lib/postgresql';
  if (existsSync(root)) {
    const majors = readdirSync(root)
      .filter((d) => /^\d+(?:\.\d+)?$/.test(d) && isExecutable(join(root, d, 'bin', 'psql')))
      .sort((a, b) => Number(b) - Number(a));
    if (majors[0] !== undefined) return { path: join(root, majors[0], 'bin', 'psql'), via: join(root, majors[0], 'bin') };
  }
  for (const dir of (opts.path ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, 'psql');
    if (isExecutable(candidate)) return { path: candidate, via: 'PATH' };
  }
  throw new CliError(ExitCode.USAGE, `psql not found (looked in PG_BIN_DIR, ${root}/*/bin and PATH). Install the PostgreSQL client (e.g. apt-get install postgresql-client) or set PG_BIN_DIR.`);
}
