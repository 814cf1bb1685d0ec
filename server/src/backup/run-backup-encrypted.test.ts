import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { AGE_INTRO } from '@db-backup-service/restore';
import { BackupSidecarSchema, ContentsManifestSchema, contentsName, sidecarName } from '@db-backup-service/contract';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fillVaried, fingerprint, restoreWithStockTools, startPostgres, startS3 } from '../../../test/harness/index.js';
import type { PostgresCluster, S3Harness } from '../../../test/harness/index.js';
import { loadConfig } from '../config/config.js';
import type { Config } from '../config/config.js';
import { silentLogger } from '../logger.js';
import { createStorage } from '../storage/create-storage.js';
import type { Storage } from '../storage/storage.js';
import { BackupError } from './backup-error.js';
import { discoverPgDumps } from './pg-tools.js';
import type { PgDumpClients } from './pg-tools.js';
import { runBackup } from './run-backup.js';
import type { RunBackupOptions } from './run-backup.js';

// Encrypted backups (issue 15) on both real backends, read back with the stock age CLI only:
// nothing of this service is trusted to prove what it stored.

const logger = silentLogger();
let cluster: PostgresCluster;
let s3: S3Harness;
let pgDumps: PgDumpClients;
let work: string;
/** Two key pairs from the stock age-keygen. */
let keys: { file: string; recipient: string }[];

function keygen(file: string): { file: string; recipient: string } {
  execFileSync('age-keygen', ['-o', file], { stdio: 'ignore' });
  const recipient = execFileSync('age-keygen', ['-y', file]).toString().trim();
  return { file, recipient };
}

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'run-backup-age-'));
  keys = [keygen(path.join(work, 'ops.key')), keygen(path.join(work, 'escrow.key'))];
  [cluster, s3, pgDumps] = await Promise.all([
    startPostgres(),
    startS3(),
    discoverPgDumps({ pgBinDir: null, pgClientsDir: null, runtime: { path: process.env.PATH ?? '', childEnv: {} } }),
  ]);
  await cluster.createDatabase('varied');
  await fillVaried(cluster, 'varied');
});

afterAll(async () => {
  await Promise.all([cluster?.destroy(), s3?.destroy()]);
  if (work) await rm(work, { recursive: true, force: true });
});

function configFor(env: Record<string, string>): Config {
  return loadConfig({
    DB_HOST: cluster.host,
    DB_PORT: String(cluster.port),
    DB_NAME: 'varied',
    DB_USER: cluster.user,
    DB_PASSWORD: cluster.password,
    STORAGE_BACKEND: 'local',
    BACKUP_LOCAL_DIR: work,
    BACKUP_NAME_PREFIX: 'enc',
    BACKUP_COMPRESSION_LEVEL: '1',
    API_TOKEN: randomBytes(24).toString('hex'),
    ...env,
  });
}

/** A backend as the service configures it (its environment), and every object it holds with its bytes. */
interface TestBackend {
  readonly env: Record<string, string>;
  readonly storage: Storage;
  objects(): Promise<Map<string, Buffer>>;
}

let counter = 0;
const BACKENDS: { name: string; create(): Promise<TestBackend> }[] = [
  {
    name: 'local',
    async create() {
      const dir = await mkdtemp(path.join(work, 'local-'));
      const env = { STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: dir };
      return {
        env,
        storage: await createStorage(configFor(env).storage),
        // Every file, temporary ones included.
        async objects() {
          const names = await readdir(dir);
          return new Map(await Promise.all(names.map(async (name) => [name, await readFile(path.join(dir, name))] as const)));
        },
      };
    },
  },
  {
    name: 's3',
    async create() {
      const prefix = `age-${++counter}`;
      const env = {
        STORAGE_BACKEND: 's3', S3_BUCKET: s3.bucket, S3_PREFIX: prefix, S3_ENDPOINT: s3.endpoint, AWS_DEFAULT_REGION: s3.region,
        AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      };
      const storage = await createStorage(configFor(env).storage);
      return {
        env,
        storage,
        async objects() {
          const names = (await s3.listKeys(`${prefix}/`)).map((key) => key.slice(prefix.length + 1));
          return new Map(await Promise.all(names.map(async (name) => [name, await storage.getSmall(name)] as const)));
        },
      };
    },
  },
];

function backup(config: Config, storage: Storage, opts: Partial<RunBackupOptions> = {}) {
  return runBackup({ config, storage, pgDumps, logger, existingIds: () => new Set() }, { triggeredBy: 'api', signal: new AbortController().signal, ...opts });
}

async function download(storage: Storage, id: string): Promise<string> {
  const file = path.join(await mkdtemp(path.join(work, 'dl-')), id);
  await pipeline(await storage.get(id), createWriteStream(file));
  return file;
}

/** What `age -d -i KEY` makes of `bytes`. */
function ageDecrypt(bytes: Buffer, keyFile: string): Buffer {
  return execFileSync('age', ['-d', '-i', keyFile], { input: bytes, maxBuffer: 512 * 1024 * 1024 });
}

/**
 * Every stored object of an encrypting service: sidecars are JSON without data (plaintext by
 * design: sizes, versions, hashes), everything else begins with the age header, and no object
 * holds a line of the dump.
 */
function expectOnlyCiphertext(objects: Map<string, Buffer>): void {
  expect(objects.size).toBeGreaterThan(0);
  for (const [name, bytes] of objects) {
    if (name.endsWith('.meta.json')) {
      expect(() => BackupSidecarSchema.parse(JSON.parse(bytes.toString('utf8'))), name).not.toThrow();
    } else {
      expect(bytes.subarray(0, AGE_INTRO.length).toString('latin1'), `${name} begins with the age header`).toBe(AGE_INTRO);
    }
    for (const plain of ['PostgreSQL database dump', 'COPY ', 'CREATE TABLE', 'public.big']) {
      expect(bytes.includes(plain), `${name} holds "${plain}"`).toBe(false);
    }
  }
}

for (const backend of BACKENDS) {
  describe(`${backend.name}: encrypted backups`, () => {
    it.each(['gzip', 'zstd'] as const)('%s: .age object and manifest that the stock age CLI decrypts and gunzip/zstd | psql restores identically', async (format) => {
      const { env, storage, objects } = await backend.create();
      const config = configFor({ ...env, BACKUP_COMPRESSION: format, BACKUP_ENCRYPTION_RECIPIENTS: `${keys[0]!.recipient},${keys[1]!.recipient}` });
      const sidecar = await backup(config, storage);

      expect(sidecar.id).toMatch(format === 'gzip' ? /^enc_\d{8}T\d{6}Z\.sql\.gz\.age$/ : /^enc_\d{8}T\d{6}Z\.sql\.zst\.age$/);
      expect(sidecar.encryption).toEqual({ format: 'age', recipients: [keys[0]!.recipient, keys[1]!.recipient] });
      expect(sidecar.compression.format).toBe(format);
      const stored = (await objects()).get(sidecar.id)!;
      expect(stored.length).toBe(sidecar.sizeBytes);
      expect(createHash('sha256').update(stored).digest('hex')).toBe(sidecar.sha256);

      // Either recipient's identity alone opens it, to the compressed dump of the whole database.
      for (const key of keys) {
        const compressed = ageDecrypt(stored, key.file);
        expect(compressed.subarray(0, 4).toString('hex')).toMatch(format === 'gzip' ? /^1f8b/ : /^28b52ffd/);
      }

      // The manifest names every table: encrypted to the same recipients, vouched for by its hash.
      const manifestName = contentsName(sidecar.id);
      expect(manifestName).toBe(`${sidecar.id}.contents.json.age`);
      const manifestBytes = (await objects()).get(manifestName)!;
      expect(createHash('sha256').update(manifestBytes).digest('hex')).toBe(sidecar.contents?.sha256);
      const manifest = ContentsManifestSchema.parse(JSON.parse(ageDecrypt(manifestBytes, keys[1]!.file).toString('utf8')));
      expect(manifest.tables.find((t) => t.name === 'big')?.rows).toBe(200_000);

      // The README's stock recipe: age -d -i key.txt backup.sql.gz.age | gunzip | psql
      const restored = `age_${backend.name}_${format}`;
      await restoreWithStockTools(await download(storage, sidecar.id), cluster, restored, keys[0]!.file);
      expect(await fingerprint(cluster, restored)).toEqual(await fingerprint(cluster, 'varied'));

      expectOnlyCiphertext(await objects());
      expect((await objects()).has(sidecarName(sidecar.id))).toBe(true);
    });

    it('fails closed: a failure inside the encryption stage fails the backup and stores nothing at all', async () => {
      const { env, storage, objects } = await backend.create();
      const config = configFor({ ...env, BACKUP_ENCRYPTION_RECIPIENTS: keys[0]!.recipient });
      const error = await backup(config, storage, { __test__failEncryptionAfterBytes: 3 * 1024 * 1024 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BackupError);
      expect((error as Error).message).toMatch(/injected failure inside the encryption stage/);
      expect([...(await objects()).keys()]).toEqual([]);

      // A backup after it succeeds, and then every object there is ciphertext (or a sidecar).
      await backup(config, storage);
      expectOnlyCiphertext(await objects());
    });

    it('key rotation: new recipients apply to new backups, an old backup keeps its recipients and its key', async () => {
      const { env, storage, objects } = await backend.create();
      const old = await backup(configFor({ ...env, BACKUP_ENCRYPTION_RECIPIENTS: keys[0]!.recipient }), storage);
      const next = await backup(configFor({ ...env, BACKUP_ENCRYPTION_RECIPIENTS: keys[1]!.recipient }), storage, { now: () => new Date(Date.now() + 2000) });
      expect(old.encryption?.recipients).toEqual([keys[0]!.recipient]);
      expect(next.encryption?.recipients).toEqual([keys[1]!.recipient]);
      const stored = await objects();
      expect(ageDecrypt(stored.get(old.id)!, keys[0]!.file).length).toBeGreaterThan(0);
      const oldFile = await download(storage, old.id);
      const wrongKey = spawnSync('age', ['-d', '-i', keys[1]!.file, '-o', '/dev/null', oldFile], { encoding: 'utf8' });
      expect(wrongKey.status).not.toBe(0);
      expect(wrongKey.stderr).toMatch(/no identity matched/);
      expect(ageDecrypt(stored.get(next.id)!, keys[1]!.file).length).toBeGreaterThan(0);
    });
  });
}
