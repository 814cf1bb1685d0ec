import { accessSync, constants, readdirSync } from 'node:fs';
import path from 'node:path';

/**
 * The newest `<clientsDir>/<major>/bin` holding a PostgreSQL server (initdb and postgres), or null.
 * Synchronous: the configuration asks it once at start to choose RESTORE_DRILL_TARGET's default.
 * The directory's name only orders the candidates; the drill asks `postgres --version` itself.
 */
export function findLocalServer(clientsDir: string): string | null {
  let majors: string[];
  try {
    majors = readdirSync(clientsDir).filter((e) => /^\d+(\.\d+)?$/.test(e));
  } catch {
    return null;
  }
  majors.sort((a, b) => Number(b) - Number(a));
  for (const major of majors) {
    const binDir = path.join(clientsDir, major, 'bin');
    if (isExecutable(path.join(binDir, 'initdb')) && isExecutable(path.join(binDir, 'postgres'))) return binDir;
  }
  return null;
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
