import { readFileSync } from 'node:fs';

/** The service version, from the server package's package.json (shipped beside dist/). */
export const SERVICE_VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
