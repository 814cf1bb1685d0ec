import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { constants, gunzipSync, zstdCompressSync } from 'node:zlib';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { BackupSidecarSchema, ContentsManifestSchema, contentsName, sidecarName } from '@db-backup-service/contract';
import { countCatalogObjects } from '@db-backup-service/restore';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fillRich, fillVaried, fingerprint, freePort, pollUntil, restoreWithStockTools, startPostgres, startS3 } from '../../../test/harness/index.js';
import type { PostgresCluster, S3Harness } from '../../../test/harness/index.js';
import { loadConfig } from '../config/config.js';
import type { Config } from '../config/config.js';
import { silentLogger } from '../logger.js';
import { LocalStorage } from '../storage/local-storage.js';
import { S3Storage } from '../storage/s3-storage.js';
import type { S3StorageEvent } from '../storage/s3-storage.js';
import type { Storage } from '../storage/storage.js';
import { SERVICE_VERSION } from '../version.js';
import { BackupError } from './backup-error.js';
import { ADVISORY_LOCK_KEY } from '../db.js';
import { discoverPgDumps } from './pg-tools.js';
import type { PgDumpClients } from './pg-tools.js';
import { runBackup } from './run-backup.js';
import type { BackupStage, RunBackupOptions } from './run-backup.js';

// Real PostgreSQL 15 (installed), 16 and 14 (embedded builds), the real pg_dump 15 and both real
// storage backends (a directory and the fauxqs S3 emulator): nothing in the backup path is mocked.

const API_TOKEN = randomBytes(24).toString('hex');
const logger = silentLogger();

let pg15: PostgresCluster;
let pg16: PostgresCluster;
let pg14: PostgresCluster;
let s3: S3Harness;
let pgDumps: PgDumpClients;
/** The installed pg_dump (the newest found), for argv and version expectations. */
let realPgDump: PgDumpClients['clients'][number];
let work: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'run-backup-test-'));
  [pg15, pg16, pg14, s3, pgDumps] = await Promise.all([
    startPostgres(),
    startPostgres({ major: 16 }),
    startPostgres({ major: 14 }),
    startS3(),
    discoverPgDumps({ pgBinDir: null, pgClientsDir: null, runtime: { path: process.env.PATH ?? '', childEnv: {} } }),
  ]);
  realPgDump = pgDumps.clients.at(-1)!;
  await pg15.createDatabase('varied');
  await fillVaried(pg15, 'varied');
  await pg15.createDatabase('rich');
  await fillRich(pg15, 'rich');
  await pg15.createDatabase('small');
  await pg15.query('CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes SELECT g, repeat(md5(g::text), 20) FROM generate_series(1, 2000) g', [], 'small');
});

afterAll(async () => {
  await Promise.all([pg15?.destroy(), pg16?.destroy(), pg14?.destroy(), s3?.destroy()]);
  if (work) await rm(work, { recursive: true, force: true });
});

function configFor(cluster: PostgresCluster, db: string, over: { password?: string; port?: number; user?: string; env?: Record<string, string> } = {}): Config {
  return loadConfig({
    DB_HOST: cluster.host,
    DB_PORT: String(over.port ?? cluster.port),
    DB_NAME: db,
    DB_USER: over.user ?? cluster.user,
    DB_PASSWORD: over.password ?? cluster.password,
    STORAGE_BACKEND: 'local',
    BACKUP_LOCAL_DIR: work,
    BACKUP_NAME_PREFIX: 'test',
    BACKUP_COMPRESSION_LEVEL: '1',
    API_TOKEN,
    ...over.env,
  });
}

interface TestStorage {
  readonly storage: Storage;
  /** Every object or temporary file the backend holds for this test (local: including dot files). */
  leftovers(): Promise<string[]>;
  /** Overwrites a stored object behind the storage's back (bit rot, a tampering writer). */
  overwrite(name: string, data: Buffer): Promise<void>;
  readonly s3Events: S3StorageEvent[];
}

let storageCounter = 0;

const BACKENDS: { name: 'local' | 's3'; create(): Promise<TestStorage> }[] = [
  {
    name: 'local',
    async create() {
      const dir = await mkdtemp(path.join(work, 'local-'));
      return {
        storage: await LocalStorage.open(dir),
        leftovers: () => readdir(dir),
        overwrite: (name, data) => writeFile(path.join(dir, name), data),
        s3Events: [],
      };
    },
  },
  {
    name: 's3',
    async create() {
      const prefix = `run-backup-${++storageCounter}`;
      const s3Events: S3StorageEvent[] = [];
      const storage = new S3Storage({
        bucket: s3.bucket,
        prefix,
        endpoint: s3.endpoint,
        region: s3.region,
        credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, sessionToken: null },
        connectTimeoutMs: 10_000,
        requestTimeoutMs: 60_000,
        partSizeBytes: null,
        onEvent: (event) => s3Events.push(event),
      });
      return {
        storage,
        leftovers: () => s3.listKeys(`${prefix}/`),
        overwrite: async (name, data) => {
          await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `${prefix}/${name}`, Body: data }));
        },
        s3Events,
      };
    },
  },
];

function backup(config: Config, storage: Storage, opts: Partial<RunBackupOptions> & { pgDumps?: PgDumpClients } = {}) {
  const { pgDumps: override, ...rest } = opts;
  return runBackup(
    { config, storage, pgDumps: override ?? pgDumps, logger, existingIds: () => new Set() },
    { triggeredBy: 'api', signal: new AbortController().signal, ...rest },
  );
}

/**
 * Starts watching a backup at once (so an early failure is never an unhandled rejection while the
 * test waits for something else); `outcome()` is undefined until it has ended.
 */
function watch<T>(promise: Promise<T>): { readonly promise: Promise<T>; readonly outcome: () => { value: unknown } | undefined } {
  let outcome: { value: unknown } | undefined;
  promise.then(
    (value) => (outcome = { value }),
    (error: unknown) => (outcome = { value: error }),
  );
  return { promise, outcome: () => outcome };
}

/** Polls for the wrapper's marker that it has streamed part of a dump; returns the wrapper's pid. */
async function wrapperStreamed(dir: string, backupRun: ReturnType<typeof watch>): Promise<number> {
  return pollUntil(
    async () => {
      await stat(path.join(dir, 'written'));
      return Number(await readFile(path.join(dir, 'pid'), 'utf8'));
    },
    {
      timeoutMs: 30_000,
      what: 'the wrapper to stream part of the dump',
      abortIf: () => {
        const outcome = backupRun.outcome();
        if (outcome !== undefined) throw new Error(`the backup ended early: ${String((outcome.value as Error).message ?? outcome.value)}`);
      },
    },
  );
}

/** Passes the stream on without its last `bytes` bytes. */
function holdBack(bytes: number): Transform {
  let tail = Buffer.alloc(0);
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      const all = Buffer.concat([tail, chunk]);
      tail = all.subarray(Math.max(0, all.length - bytes));
      callback(null, all.subarray(0, all.length - tail.length));
    },
  });
}

/** Flips one bit of the byte at `offset` of the stream. */
function flipAt(offset: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      if (offset >= seen && offset < seen + chunk.length) {
        chunk = Buffer.from(chunk);
        chunk[offset - seen]! ^= 0x04;
      }
      seen += chunk.length;
      callback(null, chunk);
    },
  });
}

/** Passes the stream on, then `extra`. */
function appendOnEnd(extra: Buffer): Transform {
  return new Transform({
    transform: (chunk: Buffer, _encoding, callback) => callback(null, chunk),
    flush: (callback) => callback(null, extra),
  });
}

async function failureOf(promise: Promise<unknown>): Promise<BackupError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(BackupError);
  return error as BackupError;
}

async function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr.on('data', (b: Buffer) => (output += b.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

/** Fetches a stored backup to a file and restores it with stock gunzip | psql into a new database. */
async function restoreFromStorage(storage: Storage, id: string, cluster: PostgresCluster, db: string): Promise<void> {
  const file = path.join(await mkdtemp(path.join(work, 'restore-')), id);
  await pipeline(await storage.get(id), createWriteStream(file));
  await restoreWithStockTools(file, cluster, db);
}

/** A PG_BIN_DIR holding one `pg_dump` shell script; `body` may use $REAL (the real pg_dump) and $DIR. */
async function wrapperTools(body: string): Promise<{ pgDumps: PgDumpClients; dir: string }> {
  const dir = await mkdtemp(path.join(work, 'bin-'));
  const script = path.join(dir, 'pg_dump');
  await writeFile(script, `#!/bin/bash\nREAL=${JSON.stringify(realPgDump.path)}\nDIR=${JSON.stringify(dir)}\n${body}\n`);
  await chmod(script, 0o755);
  return { dir, pgDumps: { clients: [{ ...realPgDump, path: script, binDir: dir }], pinned: true } };
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

for (const backend of BACKENDS) {
  describe(`${backend.name}: runBackup`, () => {
    it('backs up a varied database that stock gunzip | psql restores identically', async () => {
      const { storage } = await backend.create();
      const config = configFor(pg15, 'varied');
      const stages: BackupStage[] = [];
      const sidecar = await backup(config, storage, { triggeredBy: 'scheduler', onStage: (s) => void stages.push(s) });
      expect(stages).toEqual(['dumped', 'stored', 'verified', 'contents']);

      expect(sidecar.id).toMatch(/^test_\d{8}T\d{6}Z\.sql\.gz$/);
      expect(BackupSidecarSchema.parse(JSON.parse((await storage.getSmall(sidecarName(sidecar.id))).toString('utf8')))).toEqual(sidecar);
      expect(sidecar).toMatchObject({
        triggeredBy: 'scheduler',
        pgVersion: pg15.version.split(' ')[0],
        pgDumpVersion: realPgDump.version.text,
        database: 'varied',
        serviceVersion: SERVICE_VERSION,
        compression: { format: 'gzip', level: 1 },
        format: 'plain',
      });
      // The sidecar describes the stored bytes, checked here independently of the pipeline.
      const chunks: Buffer[] = [];
      for await (const chunk of await storage.get(sidecar.id)) chunks.push(chunk as Buffer);
      const stored = Buffer.concat(chunks);
      expect(stored.length).toBe(sidecar.sizeBytes);
      expect(createHash('sha256').update(stored).digest('hex')).toBe(sidecar.sha256);
      expect(gunzipSync(stored).length).toBe(sidecar.uncompressedSizeBytes);
      expect(sidecar.uncompressedSizeBytes).toBeGreaterThan(5_000_000);

      const restored = `restored_${backend.name}`;
      await restoreFromStorage(storage, sidecar.id, pg15, restored);
      const [source, copy] = await Promise.all([fingerprint(pg15, 'varied'), fingerprint(pg15, restored)]);
      expect(source['table public.big']).toMatch(/^200000 /);
      expect(Object.keys(source)).toEqual(expect.arrayContaining(['sequence other.counter', 'view other.item_names', 'index big_payload_idx']));
      expect(copy).toEqual(source);

      // The advisory lock went with the backup.
      const lock = await pg15.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS ok', [ADVISORY_LOCK_KEY.toString()], 'varied');
      expect(lock.rows[0]?.ok).toBe(true);
    });

    it("writes a contents manifest of a rich database, vouched for by the sidecar, with the catalog's counts", async () => {
      const { storage } = await backend.create();
      const sidecar = await backup(configFor(pg15, 'rich'), storage);
      const bytes = await storage.getSmall(contentsName(sidecar.id));
      const manifest = ContentsManifestSchema.parse(JSON.parse(bytes.toString('utf8')));
      expect(bytes.toString('utf8')).toBe(`${JSON.stringify(manifest, null, 2)}\n`);
      expect(sidecar.contents).toEqual({
        sha256: createHash('sha256').update(bytes).digest('hex'),
        tables: manifest.tables.length,
        rows: manifest.tables.reduce((sum, t) => sum + t.rows, 0),
        largeObjects: manifest.largeObjects,
      });

      const client = new pg.Client(pg15.connectionConfig('rich'));
      await client.connect();
      try {
        const catalog = await countCatalogObjects(client);
        expect({ objects: manifest.objects, largeObjects: manifest.largeObjects }).toEqual(catalog);
        for (const t of manifest.tables) {
          const ident = (s: string) => `"${s.replaceAll('"', '""')}"`;
          const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ONLY ${ident(t.schema)}.${ident(t.name)}`);
          expect(t.rows, `${t.schema}.${t.name}`).toBe(Number(rows[0]?.n));
        }
      } finally {
        await client.end();
      }
      expect(manifest.tables).toContainEqual({ schema: 'données', name: 'tärkeä 表', rows: 50 });
      expect(manifest.largeObjects).toBe(3);
    });

    it('fails with DUMP_INCOMPLETE when the output lacks the trailer, and leaves nothing', async () => {
      const { storage, leftovers } = await backend.create();
      // Cuts the dump short but exits 0, as a pg_dump crashing without a useful status might.
      const wrapper = await wrapperTools('"$REAL" "$@" | head -c 300000\nexit 0');
      const wrapped = await discoverPgDumps({ pgBinDir: wrapper.dir, pgClientsDir: null, runtime: { path: process.env.PATH ?? '', childEnv: {} } });
      expect(wrapped.clients.map((c) => c.path)).toEqual([path.join(wrapper.dir, 'pg_dump')]);
      const error = await failureOf(backup(configFor(pg15, 'varied'), storage, { pgDumps: wrapped }));
      expect(error.code).toBe('DUMP_INCOMPLETE');
      expect(error.message).toBe('pg_dump output is incomplete: no completion trailer');
      expect(await leftovers()).toEqual([]);
    });

    it('fails when pg_dump is killed mid-dump, and leaves nothing', async () => {
      const { storage, leftovers } = await backend.create();
      // Streams part of a real dump, then keeps stdout open until it is killed.
      const wrapper = await wrapperTools('echo $$ > "$DIR/pid"\n"$REAL" "$@" | head -c 300000\ntouch "$DIR/written"\nexec sleep 60');
      const running = watch(backup(configFor(pg15, 'varied'), storage, { pgDumps: wrapper.pgDumps }));
      const pid = await wrapperStreamed(wrapper.dir, running);
      process.kill(pid, 'SIGKILL');
      const error = await failureOf(running.promise);
      expect(error.code).toBe('PG_DUMP_FAILED');
      expect(error.message).toMatch(/pg_dump was killed by signal SIGKILL/);
      expect(await leftovers()).toEqual([]);
    });

    it('backs up in zstd: a .sql.zst id, a sidecar saying zstd and its level, an object `zstd -dc | psql` restores identically', async () => {
      const { storage } = await backend.create();
      const config = configFor(pg15, 'varied', { env: { BACKUP_COMPRESSION: 'zstd', BACKUP_COMPRESSION_LEVEL: '4' } });
      const sidecar = await backup(config, storage);
      expect(sidecar.id).toMatch(/^test_\d{8}T\d{6}Z\.sql\.zst$/);
      expect(sidecar.compression).toEqual({ format: 'zstd', level: 4 });
      expect(BackupSidecarSchema.parse(JSON.parse((await storage.getSmall(sidecarName(sidecar.id))).toString('utf8')))).toEqual(sidecar);
      expect((await storage.list()).map((o) => o.name).sort()).toEqual([sidecar.id, contentsName(sidecar.id), sidecarName(sidecar.id)].sort());

      const chunks: Buffer[] = [];
      for await (const chunk of await storage.get(sidecar.id)) chunks.push(chunk as Buffer);
      const stored = Buffer.concat(chunks);
      expect(stored.length).toBe(sidecar.sizeBytes);
      expect(createHash('sha256').update(stored).digest('hex')).toBe(sidecar.sha256);
      // The zstd CLI (not our decoder) reads it: all of pg_dump's output, trailer included.
      const sql = execFileSync('zstd', ['-dcq'], { input: stored, maxBuffer: 256 * 1024 * 1024 });
      expect(sql.length).toBe(sidecar.uncompressedSizeBytes);
      expect(sql.length).toBeGreaterThan(5_000_000);
      expect(sql.subarray(-200).toString('utf8')).toContain('-- PostgreSQL database dump complete');
      // One frame, with the content checksum (zstd -lv reads files only).
      const file = path.join(await mkdtemp(path.join(work, 'zstd-')), sidecar.id);
      await writeFile(file, stored);
      expect(execFileSync('zstd', ['-lv', file]).toString()).toMatch(/# Zstandard Frames: 1\n[\s\S]*Check: XXH64/);

      const restored = `restored_zstd_${backend.name}`;
      await restoreFromStorage(storage, sidecar.id, pg15, restored);
      expect(await fingerprint(pg15, restored)).toEqual(await fingerprint(pg15, 'varied'));
    });

    // A faulty encoder (or memory) as the zstd stream leaves the compressor: the streaming check
    // must fail the backup before storage commits anything. A second frame decodes to the same
    // bytes (Node's decoder stops after the first), so only the frame check sees it.
    const ZSTD_DAMAGES = {
      'is cut short': () => holdBack(100),
      'has a flipped byte': () => flipAt(2000),
      'has a second frame appended': () => appendOnEnd(zstdCompressSync(Buffer.from('DROP TABLE notes;\n'), { params: { [constants.ZSTD_c_checksumFlag]: 1 } })),
    };
    for (const [damage, create] of Object.entries(ZSTD_DAMAGES)) {
      it(`fails a zstd backup whose compressed stream ${damage} with VERIFY_FAILED, and leaves nothing`, async () => {
        const { storage, leftovers } = await backend.create();
        const config = configFor(pg15, 'small', { env: { BACKUP_COMPRESSION: 'zstd' } });
        const error = await failureOf(backup(config, storage, { __test__damageCompressed: create }));
        expect(error.code).toBe('VERIFY_FAILED');
        expect(error.message).toContain('the compressed stream is not valid zstd: ');
        expect(await leftovers()).toEqual([]);
        expect(await storage.list()).toEqual([]);
      });
    }

    for (const damage of ['a flipped byte', 'a truncated object'] as const) {
      it(`fails verification on ${damage} and deletes the dump`, async () => {
        const { storage, leftovers, overwrite } = await backend.create();
        const error = await failureOf(
          backup(configFor(pg15, 'small'), storage, {
            // Between upload and read-back: the read-back must catch what the upload did not see.
            onStage: async (stage) => {
              if (stage !== 'stored') return;
              const [object] = await storage.list();
              const chunks: Buffer[] = [];
              for await (const chunk of await storage.get(object!.name)) chunks.push(chunk as Buffer);
              const data = Buffer.concat(chunks);
              if (damage === 'a flipped byte') data[Math.floor(data.length / 2)]! ^= 0x01;
              await overwrite(object!.name, damage === 'a flipped byte' ? data : data.subarray(0, data.length - 100));
            },
          }),
        );
        if (backend.name === 's3') {
          // On S3 the rewrite is a new object (its ETag changed): another writer's, as when two
          // services chose one id on a store that ignores If-None-Match. It is not ours to delete,
          // and no sidecar is written for it.
          expect(error.code).toBe('ID_TAKEN');
          expect((await storage.list()).map((o) => o.name)).toEqual([expect.stringMatching(/\.sql\.gz$/)]);
          return;
        }
        expect(error.code).toBe('VERIFY_FAILED');
        expect(error.message).toMatch(/^(reading backup \S+ back from storage failed|backup \S+ reads back differently)/);
        expect(await leftovers()).toEqual([]);
      });
    }

    for (const stage of ['dumped', 'stored', 'verified', 'contents'] as const) {
      it(`leaves no dump, contents manifest or sidecar when it crashes at '${stage}'`, async () => {
        const { storage, leftovers, s3Events } = await backend.create();
        const error = await failureOf(
          backup(configFor(pg15, 'small'), storage, {
            onStage: (s) => {
              if (s === stage) throw new Error(`simulated crash at ${s}`);
            },
          }),
        );
        expect(error.message).toContain(`simulated crash at ${stage}`);
        expect(await leftovers()).toEqual([]);
        expect(await storage.list()).toEqual([]);
        // fauxqs lists no multipart uploads, so an aborted upload is checked through the events.
        const created = s3Events.filter((e) => e.type === 'multipart-created').length;
        expect(s3Events.filter((e) => e.type === 'multipart-aborted').length).toBe(stage === 'dumped' ? created : 0);
      });
    }
  });
}

describe('runBackup failures', () => {
  async function localBackend(): Promise<TestStorage> {
    return BACKENDS[0]!.create();
  }

  it('reports a wrong password with PostgreSQL\'s reason and without the password', async () => {
    const { storage, leftovers } = await localBackend();
    const password = `wrong-${randomBytes(8).toString('hex')}`;
    const error = await failureOf(backup(configFor(pg15, 'small', { password }), storage));
    expect(error.code).toBe('DB_UNREACHABLE');
    expect(error.message).toMatch(/password authentication failed for user "postgres"/);
    expect(error.message).toContain(`127.0.0.1:${pg15.port}`);
    expect(error.message).not.toContain(password);
    expect(JSON.stringify(error, Object.getOwnPropertyNames(error))).not.toContain(password);
    expect(await leftovers()).toEqual([]);
  });

  it('reports a server that is down', async () => {
    const { storage, leftovers } = await localBackend();
    const port = await freePort();
    const started = Date.now();
    const error = await failureOf(backup(configFor(pg15, 'small', { port }), storage));
    expect(error.code).toBe('DB_UNREACHABLE');
    expect(error.message).toMatch(new RegExp(`cannot connect to PostgreSQL at 127\\.0\\.0\\.1:${port} .*ECONNREFUSED`));
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await leftovers()).toEqual([]);
  });

  it('reports pg_dump\'s own error (redacted stderr, exit code) and leaves nothing', async () => {
    const { storage, leftovers } = await localBackend();
    const role = `limited_${randomBytes(4).toString('hex')}`;
    const password = `pw-${randomBytes(12).toString('hex')}`;
    await pg15.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
    await pg15.query(`CREATE TABLE secret_stuff (x int); REVOKE ALL ON secret_stuff FROM PUBLIC`, [], 'small');
    try {
      // A wrapper also echoes the password to stderr: the message must not carry it.
      const wrapper = await wrapperTools('echo "connecting with $PGPASSWORD" >&2\nexec "$REAL" "$@"');
      const error = await failureOf(backup(configFor(pg15, 'small', { user: role, password }), storage, { pgDumps: wrapper.pgDumps }));
      expect(error.code).toBe('PG_DUMP_FAILED');
      expect(error.message).toMatch(/^pg_dump exited with code 1: /);
      expect(error.message).toMatch(/permission denied for table/);
      expect(error.message).toContain('connecting with [REDACTED]');
      expect(error.message).not.toContain(password);
      expect(await leftovers()).toEqual([]);
    } finally {
      await pg15.query('DROP TABLE secret_stuff', [], 'small');
      await pg15.query(`DROP ROLE ${role}`);
    }
  });

  it('refuses a server newer than every pg_dump found, naming the server and the clients', async () => {
    const { storage, leftovers } = await localBackend();
    const error = await failureOf(backup(configFor(pg16, 'postgres'), storage));
    expect(error.code).toBe('PG_VERSION_MISMATCH');
    const serverVersion = pg16.version.split(' ')[0] ?? '';
    expect(error.message).toBe(
      `no pg_dump here can dump a PostgreSQL ${serverVersion} server: pg_dump must be at least the server's major version, ` +
        `and the clients found are ${realPgDump.version.text} (${realPgDump.binDir}). ` +
        'Install the PostgreSQL 16 client (e.g. postgresql-client-16) or use the image, which has clients 13 to 18.',
    );
    expect(await leftovers()).toEqual([]);
  });

  it('backs up an older server (PostgreSQL 14) that restores identically', async () => {
    const { storage } = await localBackend();
    await pg14.createDatabase('old');
    await pg14.query(
      `CREATE TABLE t (id int PRIMARY KEY, j jsonb, s text); INSERT INTO t SELECT g, jsonb_build_object('g', g), E'a\\tb ' || g FROM generate_series(1, 5000) g`,
      [],
      'old',
    );
    const sidecar = await backup(configFor(pg14, 'old'), storage);
    expect(sidecar.pgVersion).toMatch(/^14\./);
    await restoreFromStorage(storage, sidecar.id, pg14, 'old_restored');
    const hash = 'SELECT md5(string_agg(t::text, \'|\' ORDER BY t::text)) AS h FROM t';
    const [a, b] = await Promise.all([pg14.query<{ h: string }>(hash, [], 'old'), pg14.query<{ h: string }>(hash, [], 'old_restored')]);
    expect(b.rows[0]?.h).toBe(a.rows[0]?.h);
  });

  it('fails fast when another instance holds the advisory lock, without starting pg_dump', async () => {
    const { storage, leftovers } = await localBackend();
    const other = new pg.Client(pg15.connectionConfig('small'));
    await other.connect();
    try {
      await other.query('SELECT pg_advisory_lock($1::bigint)', [ADVISORY_LOCK_KEY.toString()]);
      const wrapper = await wrapperTools('touch "$DIR/started"\nexec "$REAL" "$@"');
      const started = Date.now();
      const error = await failureOf(backup(configFor(pg15, 'small'), storage, { pgDumps: wrapper.pgDumps }));
      expect(error.code).toBe('LOCKED_BY_OTHER_INSTANCE');
      expect(error.message).toMatch(/^another db-backup-service instance is backing up database small/);
      expect(Date.now() - started).toBeLessThan(3_000);
      expect(await readdir(wrapper.dir)).toEqual(['pg_dump']);
      expect(await leftovers()).toEqual([]);
    } finally {
      await other.end();
    }
  });

  it('lets only one of two concurrent backups of a database run', async () => {
    const first = await localBackend();
    const second = await localBackend();
    let secondError: BackupError | null = null;
    const sidecar = await backup(configFor(pg15, 'small'), first.storage, {
      onStage: async (stage) => {
        // While the first holds the lock, a second instance is refused.
        if (stage === 'dumped') secondError = await failureOf(backup(configFor(pg15, 'small'), second.storage));
      },
    });
    expect(sidecar.id).toMatch(/^test_/);
    expect((secondError as BackupError | null)?.code).toBe('LOCKED_BY_OTHER_INSTANCE');
    expect(await second.leftovers()).toEqual([]);
  });

  it('never puts the password into pg_dump\'s argv', async () => {
    const { storage } = await localBackend();
    const config = configFor(pg15, 'varied');
    const password = config.db.password;
    // 1. What the child was started with and its environment, as recorded by a wrapper that then
    //    execs the real pg_dump (same pid: the exec replaces the wrapper).
    const wrapper = await wrapperTools('printf "%s\\n" "$0" "$@" > "$DIR/argv"\nenv > "$DIR/env"\necho $$ > "$DIR/pid"\nexec "$REAL" "$@"');
    // 2. The real pg_dump's /proc/<pid>/cmdline while it runs. It is held running by a lock on a
    //    table it must dump (pg_dump waits for ACCESS SHARE), so the check cannot miss it however
    //    loaded the machine is. Sampling all of /proc for a dump of ~1 s (the test before) could
    //    miss it on a loaded machine: one pass reads hundreds of cmdlines one after another.
    const holder = new pg.Client(pg15.connectionConfig('varied'));
    await holder.connect();
    let cmdline = '';
    try {
      await holder.query('BEGIN; LOCK TABLE big IN ACCESS EXCLUSIVE MODE');
      const running = backup(config, storage, { pgDumps: wrapper.pgDumps });
      running.catch(() => undefined); // awaited below; a failure must not be unhandled meanwhile
      // pg_dump is really mid-dump: waiting for our lock (the wrapper has exec'd it by then).
      await pollUntil(
        async () => {
          const waiting = await pg15.query<{ n: string }>(
            "SELECT count(*)::text AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'LOCK TABLE %big IN ACCESS SHARE MODE'",
            [],
            'varied',
          );
          return waiting.rows[0]?.n === '1' ? true : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 20, what: 'pg_dump to wait for the table lock' },
      );
      const pid = (await readFile(path.join(wrapper.dir, 'pid'), 'utf8')).trim();
      cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).replaceAll('\0', ' ').trim();
      await holder.query('COMMIT');
      await running;
    } finally {
      await holder.end();
    }
    const argv = await readFile(path.join(wrapper.dir, 'argv'), 'utf8');
    expect(argv.split('\n').filter(Boolean).slice(1)).toEqual(['--no-owner', '--no-privileges', '--format=plain', '--no-password', '--lock-wait-timeout=60000']);
    expect(argv).not.toContain(password);
    expect(cmdline).toBe([realPgDump.path, '--no-owner', '--no-privileges', '--format=plain', '--no-password', '--lock-wait-timeout=60000'].join(' '));
    expect(cmdline).not.toContain(password);
    // The password reaches pg_dump through its environment only.
    const env = (await readFile(path.join(wrapper.dir, 'env'), 'utf8')).split('\n');
    expect(env.filter((line) => line.includes(password))).toEqual([`PGPASSWORD=${password}`]);
  });

  it('aborts on the signal: kills pg_dump (and its process group), leaves nothing', async () => {
    const { storage, leftovers } = await localBackend();
    const wrapper = await wrapperTools('echo $$ > "$DIR/pid"\n"$REAL" "$@" | head -c 300000\ntouch "$DIR/written"\nexec sleep 60');
    const controller = new AbortController();
    const running = watch(backup(configFor(pg15, 'varied'), storage, { pgDumps: wrapper.pgDumps, signal: controller.signal }));
    const pid = await wrapperStreamed(wrapper.dir, running);
    controller.abort(new Error('the service is shutting down'));
    const error = await failureOf(running.promise);
    expect(error.code).toBe('ABORTED');
    expect(error.message).toBe('backup aborted: the service is shutting down');
    expect(processExists(pid)).toBe(false);
    expect(await leftovers()).toEqual([]);
  });

  it('reports a full disk as DISK_FULL and leaves nothing', async (ctx) => {
    // A real ENOSPC needs a small filesystem: a 512 KiB tmpfs (root only; skipped elsewhere).
    const dir = await mkdtemp(path.join(work, 'full-'));
    const mounted = await run('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', dir], process.env).catch(() => ({ code: 1, output: '' }));
    if (mounted.code !== 0) ctx.skip();
    try {
      const storage = await LocalStorage.open(dir);
      const error = await failureOf(backup(configFor(pg15, 'varied'), storage));
      expect(error.code).toBe('DISK_FULL');
      expect(error.message).toMatch(/no space left on .*full-.* \(ENOSPC\)/);
      expect(await readdir(dir)).toEqual([]);
    } finally {
      await run('umount', [dir], process.env);
    }
  });

  it('picks the next suffix when the id is taken in the index or in storage', async () => {
    const { storage } = await localBackend();
    const now = () => new Date('2026-05-10T01:00:00Z');
    await storage.putSmall('test_20260510T010000Z_2.sql.gz', Buffer.from('someone else'));
    const sidecar = await runBackup(
      { config: configFor(pg15, 'small'), storage, pgDumps, logger, existingIds: () => new Set(['test_20260510T010000Z.sql.gz']) },
      { triggeredBy: 'api', signal: new AbortController().signal, now },
    );
    expect(sidecar.id).toBe('test_20260510T010000Z_3.sql.gz');
    expect(sidecar.createdAt).toBe('2026-05-10T01:00:00.000Z');
  });
});
