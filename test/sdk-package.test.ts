// Proof that the published SDK works on its own: `npm pack` the sdk alone (it bundles the contract it
// is built on), install that one tarball into a fresh project outside the repo (its public
// dependencies come from the registry or npm's cache), and use the package there, from plain ESM and
// from TypeScript, against a running service.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Backup } from '@db-backup-service/contract';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, fillVaried, freePort, startPostgres, startService, type PostgresCluster, type ServiceProcess } from './harness/index.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const TOKEN = randomBytes(32).toString('hex');

interface Packed {
  name: string;
  filename: string;
  files: { path: string }[];
}

let work: string;
let project: string;
let cluster: PostgresCluster | undefined;
let svc: ServiceProcess | undefined;
let packed: Packed[];

/** Runs a command to its end; rejects with its output when it exits non-zero. */
function run(file: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<{ stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(file, args, { cwd: opts.cwd, env: opts.env ?? toolEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.once('error', fail);
    child.once('close', (code, signal) => {
      if (code === 0) done({ stdout, stderr });
      else fail(new Error(`${file} ${args.join(' ')} exited ${code ?? signal}\n${stdout}\n${stderr}`));
    });
  });
}

/**
 * npm and tsc as a user outside the repo would run them: this Node first on PATH (so engines
 * match), and none of the npm_* variables an enclosing `npm test` sets (workspace, prefix, ...).
 */
function toolEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && !k.startsWith('VITEST')) env[k] = v;
  env.PATH = [dirname(process.execPath), process.env.PATH ?? '/usr/bin:/bin'].join(delimiter);
  return { ...env, ...extra };
}

const npm = (args: string[], cwd: string) => run('npm', args, { cwd });

beforeAll(async () => {
  // `npm test` builds first; a bare vitest run on a fresh clone builds what packing needs.
  if (!existsSync(join(REPO, 'sdk/dist/index.js'))) await npm(['run', 'build', '--workspace', 'sdk'], REPO);
  work = await mkdtemp(join(tmpdir(), 'sdk-package-'));
  expect(relative(REPO, work).startsWith('..')).toBe(true);
  project = join(work, 'project');

  const packing = (async () => {
    // The commands of the SDK's README: pack in the repository, then a project from `npm init -y`.
    const out = await npm(['pack', '--json', '--workspace', 'sdk', '--pack-destination', work], REPO);
    packed = JSON.parse(out.stdout) as Packed[];
    await mkdir(project);
    await npm(['init', '-y'], project);
    await npm(['pkg', 'set', 'type=module'], project);
    // The SDK's own dependencies (@ts-rest/core, zod) come from the npm cache or registry.
    await npm(['install', '--prefer-offline', '--no-audit', '--no-fund', ...packed.map((p) => join(work, p.filename))], project);
  })();
  const serving = (async () => {
    cluster = await startPostgres({ database: 'app' });
    await fillVaried(cluster, 'app', { bigRows: 1_000 });
    const dir = join(work, 'backups');
    await mkdir(dir);
    const env = {
      DB_HOST: cluster.host, DB_PORT: String(cluster.port), DB_NAME: 'app', DB_USER: cluster.user, DB_PASSWORD: cluster.password,
      API_TOKEN: TOKEN, STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: dir,
      BACKUP_CRON: '0 0 1 1 *', // no scheduled backup racing the test's own
    };
    for (let attempt = 1; !svc; attempt++) {
      try {
        svc = await startService({ ...env, HTTP_PORT: String(await freePort()) }, { waitFor: 'healthy' });
      } catch (err) {
        // freePort() releases the port before the service binds it: another process may take it.
        if (attempt >= 3 || !/EADDRINUSE|address already in use/i.test((err as Error).message)) throw err;
      }
    }
  })();
  // Both settle before either error is reported, so a failure never leaves the other half running.
  const [packResult, serveResult] = await Promise.allSettled([packing, serving]);
  for (const r of [packResult, serveResult]) if (r.status === 'rejected') throw r.reason;
});

afterAll(async () => {
  await svc?.stop('SIGTERM', 30_000).catch(() => svc?.kill());
  await cluster?.destroy();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('the packed @db-backup-service/sdk', () => {
  it('is one tarball holding the built entry points, types, README and the bundled contract, and no tests', () => {
    expect(packed.map((p) => p.name)).toEqual(['@db-backup-service/sdk']);
    const files = packed[0]!.files.map((f) => f.path);
    expect(files).toEqual(
      expect.arrayContaining(['package.json', 'README.md', 'dist/index.js', 'dist/index.d.ts', 'dist/generated/openapi.d.ts', 'dist/generated/contract/index.js', 'dist/generated/contract/index.d.ts']),
    );
    expect(files.filter((f) => /\.test\.|test-helper/.test(f))).toEqual([]);
    expect(files.filter((f) => !/^(dist|src)\/|^(package\.json|README\.md|LICENSE)$/.test(f))).toEqual([]);
  });

  it('installed from the tarball: every path its package.json names exists, and its source maps resolve', async () => {
    const root = join(project, 'node_modules/@db-backup-service/sdk');
    const manifest = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as {
      main: string;
      types: string;
      exports: Record<string, string | Record<string, string>>;
      dependencies: Record<string, string>;
    };
    const named = [manifest.main, manifest.types, ...Object.values(manifest.exports).flatMap((e) => (typeof e === 'string' ? [e] : Object.values(e)))];
    for (const path of named) expect(existsSync(join(root, path)), path).toBe(true);
    // The "types" condition must come first in an exports entry, or TypeScript never sees it.
    expect(Object.keys(manifest.exports['.'] as Record<string, string>)[0]).toBe('types');
    // Only public packages: nothing of this repository is installed beside the SDK.
    expect(Object.keys(manifest.dependencies).sort()).toEqual(['@ts-rest/core', 'zod']);
    expect(await readdir(join(project, 'node_modules/@db-backup-service'))).toEqual(['sdk']);

    const maps = (await readdir(join(root, 'dist'), { recursive: true })).filter((f) => f.endsWith('.js.map'));
    expect(maps.length).toBeGreaterThan(0);
    for (const map of maps) {
      const { sources, sourcesContent } = JSON.parse(await readFile(join(root, 'dist', map), 'utf8')) as { sources: string[]; sourcesContent?: string[] };
      if (sourcesContent) continue;
      for (const source of sources) expect(existsSync(resolve(root, 'dist', dirname(map), source)), `${map} -> ${source}`).toBe(true);
    }
  });

  it('works from a plain ESM script in the fresh project against the running service', async () => {
    const script = join(project, 'smoke.mjs');
    await writeFile(
      script,
      `import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { BackupServiceError, createClient, isBackupId } from '@db-backup-service/sdk';

const [baseUrl, out] = process.argv.slice(2);
const client = createClient({ baseUrl, token: process.env.SMOKE_API_TOKEN });
const result = { resolvedFrom: import.meta.resolve('@db-backup-service/sdk') };
result.health = (await client.health()).status;
result.listedBefore = (await client.listBackups()).length;
result.latestBefore = await client.latestBackup();
const started = await client.triggerBackup();
result.triggerKind = started.kind;
const jobId = started.kind === 'started' ? started.job.jobId : started.jobId;
const job = await client.waitForJob(jobId, { intervalMs: 100, timeoutMs: 60_000 });
result.job = { status: job.status, backupId: job.backupId, isBackupId: isBackupId(job.backupId ?? '') };
result.listed = await client.listBackups();
result.file = await client.downloadToFile('latest', out);
result.fileSha256 = createHash('sha256').update(await readFile(out)).digest('hex');
try {
  await createClient({ baseUrl, token: 'not-the-token-0123456789abcdef' }).listBackups();
} catch (err) {
  result.error = { isBackupServiceError: err instanceof BackupServiceError, code: err.code, status: err.status, message: err.message };
}
console.log(JSON.stringify(result));
`,
    );
    const out = join(work, 'downloaded.sql.gz');
    const { stdout } = await run(process.execPath, [script, svc!.baseUrl, out], { cwd: project, env: toolEnv({ SMOKE_API_TOKEN: TOKEN }) });
    const result = JSON.parse(stdout) as Record<string, unknown> & { listed: Backup[]; job: { backupId: string }; file: { sha256: string } };

    // Loaded from the project's node_modules, not from the workspace.
    expect(fileURLToPath(result.resolvedFrom as string)).toBe(join(project, 'node_modules/@db-backup-service/sdk/dist/index.js'));
    expect(result).toMatchObject({ health: 'UP', listedBefore: 0, latestBefore: null, triggerKind: 'started', job: { status: 'succeeded', isBackupId: true } });
    expect(result.listed).toEqual(await api(svc!.baseUrl, TOKEN).json<Backup[]>('/api/v1/backups'));
    expect(result.listed.map((b) => b.id)).toEqual([result.job.backupId]);
    const backup = result.listed[0]!;
    expect(result.file).toEqual({ id: backup.id, path: out, sizeBytes: backup.sizeBytes, sha256: backup.sha256, resumes: 0 });
    expect(result.fileSha256).toBe(backup.sha256);
    expect(createHash('sha256').update(await readFile(out)).digest('hex')).toBe(backup.sha256);
    expect(result.error).toMatchObject({ isBackupServiceError: true, code: 'UNAUTHORIZED', status: 401 });
    expect(stdout).not.toContain(TOKEN);
    expect(stdout).not.toContain('not-the-token-0123456789abcdef');
  });

  it('gives a TypeScript consumer its types (not any) through the package exports', async () => {
    await writeFile(
      join(project, 'consumer.ts'),
      `import { BackupServiceError, createClient, type Backup, type BackupServiceErrorCode, type TriggerResult, type operations } from '@db-backup-service/sdk';

const client = createClient({ baseUrl: 'http://127.0.0.1:1', token: 'x' });
export async function use(): Promise<string> {
  const started: TriggerResult = await client.triggerBackup();
  const jobId: string = started.kind === 'started' ? started.job.jobId : started.jobId;
  const list: Backup[] = await client.listBackups();
  const code: BackupServiceErrorCode = new BackupServiceError('NOT_FOUND', 'x').code;
  // @ts-expect-error a Backup has no such field: the types are real, not any
  list[0]?.nonexistent;
  // @ts-expect-error not an error code
  const wrong: BackupServiceErrorCode = 'NOPE';
  type Listed = operations['listBackups']['responses'][200]['content']['application/json'];
  const raw: Listed = list;
  return [jobId, code, wrong, raw.length].join();
}
`,
    );
    const tsc = join(REPO, 'node_modules/typescript/bin/tsc');
    await run(
      process.execPath,
      [tsc, '--noEmit', '--strict', '--skipLibCheck', '--target', 'ES2023', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--types', 'node', '--typeRoots', join(REPO, 'node_modules/@types'), 'consumer.ts'],
      { cwd: project },
    );
  });

  it("compiles the README's quick start with the README's tsconfig.json in the `npm init -y` project", async () => {
    const readme = await readFile(join(REPO, 'sdk/README.md'), 'utf8');
    const block = (lang: string, after: string): string => {
      const match = new RegExp(`\`\`\`${lang}\n([\\s\\S]*?)\`\`\``).exec(readme.slice(readme.indexOf(after)));
      if (!match) throw new Error(`no ${lang} block after "${after}" in sdk/README.md`);
      return match[1]!;
    };
    const dir = join(project, 'readme');
    await mkdir(dir);
    await writeFile(join(dir, 'tsconfig.json'), block('json', 'tsconfig.json'));
    await writeFile(join(dir, 'index.ts'), block('ts', '## Quick start'));
    // typescript and @types/node of this repository stand in for the README's `npm install --save-dev`.
    await run(process.execPath, [join(REPO, 'node_modules/typescript/bin/tsc'), '-p', dir, '--noEmit', '--typeRoots', join(REPO, 'node_modules/@types')], { cwd: project });
  });
});
