#!/usr/bin/env node
// The `db-backup-service` command (`npx db-backup-service`, the image's CMD). npm links a package's
// bin only if the file exists when it installs (`npm ci` runs before `npm run build`), so the
// command is this committed file, which loads the compiled entry point.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/bin.js', import.meta.url);
if (!existsSync(entry)) {
  console.error('db-backup-service is not built yet: run `npm run build` in the repository first.');
  process.exit(1);
}
await import(entry.href);
