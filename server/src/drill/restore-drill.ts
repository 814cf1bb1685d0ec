// PLACEHOLDER until branch wt-restore lands restore/src/drill.ts: its interface, as agreed in the
// design, read off the package at run time. Replaced by a plain import at the merge.
import type { Readable } from 'node:stream';
import type { ContentsManifest, DrillMismatch, PgTlsSettings } from '@db-backup-service/contract';
import * as restore from '@db-backup-service/restore';
import type { PgClient } from '@db-backup-service/restore';

export interface DrillServer { host: string; port: number; user: string; password: string; tls: PgTlsSettings }
export interface DrillOptions {
  server: DrillServer;
  database: string;
  psql: PgClient;
  dump: Readable;
  expected: { sha256: string | null; sizeBytes: number | null };
  manifest: ContentsManifest | null;
  query: string | null;
  signal: AbortSignal;
  warn: (message: string) => void;
}
export interface DrillOutcome {
  status: 'passed' | 'failed';
  tablesChecked: number;
  rowsChecked: number;
  detail: string | null;
  mismatches: DrillMismatch[];
  query: { sql: string; result: boolean | null } | null;
  serverVersion: string | null;
  durationMs: number;
  scratchDatabase: string;
}

interface RestoreDrillApi {
  runDrill(opts: DrillOptions): Promise<DrillOutcome>;
  dropLeftoverDrillDatabases(server: DrillServer, database: string, warn: (m: string) => void): Promise<string[]>;
}

function api(): RestoreDrillApi {
  const found = restore as unknown as Partial<RestoreDrillApi>;
  if (typeof found.runDrill !== 'function' || typeof found.dropLeftoverDrillDatabases !== 'function') {
    throw new Error('this build of @db-backup-service/restore has no runDrill');
  }
  return found as RestoreDrillApi;
}

export const runDrill: RestoreDrillApi['runDrill'] = (opts) => api().runDrill(opts);
export const dropLeftoverDrillDatabases: RestoreDrillApi['dropLeftoverDrillDatabases'] = (server, database, warn) =>
  api().dropLeftoverDrillDatabases(server, database, warn);
