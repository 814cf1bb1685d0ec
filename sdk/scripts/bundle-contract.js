// The SDK ships the contract it is built on (zod schemas, ts-rest routes) inside its own package, so
// its one packed tarball installs with only its public dependencies (@ts-rest/core, zod): the build
// copies contract/src to src/generated/contract (not committed, like src/generated/openapi.ts),
// which the SDK imports by relative paths and tsc compiles with the rest. Not exported: private.
import { cpSync, rmSync } from 'node:fs';

const from = new URL('../../contract/src/', import.meta.url);
const to = new URL('../src/generated/contract/', import.meta.url);
rmSync(to, { recursive: true, force: true });
cpSync(from, to, { recursive: true, filter: (path) => !path.endsWith('.test.ts') });
