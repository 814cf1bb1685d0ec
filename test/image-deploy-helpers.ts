import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Shared by the compose and Kubernetes example tests. */
export const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));

/**
 * Every variable name in the README's configuration table (the single source of truth), including
 * the `<NAME>_FILE` forms listed there.
 */
export function documentedVariables(): Set<string> {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const section = readme.split(/^## Configuration\s*$/m)[1]?.split(/^## /m)[0] ?? '';
  const names = new Set<string>();
  for (const line of section.split('\n')) {
    if (!line.startsWith('| `')) continue;
    const firstCell = line.split('|')[1] ?? '';
    for (const m of firstCell.matchAll(/`([A-Z][A-Z0-9_]*)`/g)) names.add(m[1] as string);
  }
  return names;
}

/** Secrets that the service also accepts as `<NAME>_FILE`; a deployment must set one of the two. */
export const SECRET_VARIABLES = ['DB_PASSWORD', 'API_TOKEN', 'AWS_SECRET_ACCESS_KEY'] as const;

/** Variables every deployment sets, by storage backend (a secret counts when either form is set). */
export const REQUIRED_VARIABLES = {
  common: ['DB_HOST', 'DB_NAME', 'DB_USER', 'DB_PASSWORD', 'API_TOKEN', 'STORAGE_BACKEND'],
  local: ['BACKUP_LOCAL_DIR'],
  s3: ['S3_BUCKET', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'],
} as const;

/** True when `name` (or, for a secret, `<name>_FILE`) is set in env. */
export function hasVariable(env: Record<string, unknown>, name: string): boolean {
  return env[name] !== undefined || ((SECRET_VARIABLES as readonly string[]).includes(name) && env[`${name}_FILE`] !== undefined);
}

/** "90s", "1m30s", "60" (seconds), or a number of seconds -> seconds. */
export function durationSeconds(value: unknown): number {
  if (typeof value === 'number') return value;
  const text = String(value).trim();
  if (/^\d+$/.test(text)) return Number(text);
  const parts = [...text.matchAll(/(\d+)(h|m|s)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) throw new Error(`not a duration: ${text}`);
  return parts.reduce((sum, p) => sum + Number(p[1]) * ({ h: 3600, m: 60, s: 1 } as const)[p[2] as 'h' | 'm' | 's'], 0);
}
