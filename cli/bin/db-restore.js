#!/usr/bin/env node
// The `db-restore` command in a clone (`npx db-restore`); see server/bin/db-backup-service.js for
// why a committed file loads the compiled one. The image links dist/bin.js directly.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/bin.js', import.meta.url);
if (!existsSync(entry)) {
  console.error('db-restore is not built yet: run `npm run build` in the repository first.');
  process.exit(1);
}
await import(entry.href);
