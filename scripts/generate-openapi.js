// Writes openapi.json from the contract (npm run openapi). With --check, exits 1 when the
// committed file differs from a fresh generation instead of writing it.
import { readFileSync, writeFileSync } from 'node:fs';
import { buildOpenApiDocument, SERVICE_VERSION } from '@db-backup-service/server';

const root = new URL('../', import.meta.url);
const target = new URL('openapi.json', root);
const fresh = `${JSON.stringify(buildOpenApiDocument(SERVICE_VERSION), null, 2)}\n`;

if (process.argv.includes('--check')) {
  let committed = '';
  try {
    committed = readFileSync(target, 'utf8');
  } catch {
    // a missing file is stale too
  }
  if (committed !== fresh) {
    console.error('openapi.json is stale: run `npm run openapi` and commit the result.');
    process.exit(1);
  }
  console.log('openapi.json is up to date.');
} else {
  writeFileSync(target, fresh);
  console.log(`wrote ${target.pathname}`);
}
