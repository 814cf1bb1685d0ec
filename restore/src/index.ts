// What the service and db-restore share about PostgreSQL client tools and restoring a plain dump.
export { majorOfVersionNum, parseToolVersion, parseVersionText, psqlUnderstandsRestrict, RESTRICT_RELEASES, type PgVersion } from './pg-version.js';
export {
  chooseClientFor,
  DEFAULT_CLIENTS_DIR,
  describeClients,
  findPgClients,
  PgClientsError,
  type ClientTool,
  type FindClientsOptions,
  type PgClient,
} from './pg-clients.js';
export { PreambleAdapter, readDumpHead, readGzipDumpHead, type DumpHead, type PreambleAdapterOptions } from './dump-preamble.js';
export { countCatalogObjects, DumpContentsCounter, type CatalogObjects } from './dump-contents.js';
