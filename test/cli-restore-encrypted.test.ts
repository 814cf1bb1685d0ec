// db-restore with age-encrypted backups against a real PostgreSQL (the harness's throwaway
// cluster). The backups are real pg_dump output, compressed, then encrypted by the stock `age`
// CLI (Debian's) to a key made by `age-keygen`: what db-restore decrypts is what age writes, not
// only what our own encryption writes. The CLI runs built (cli/dist/bin.js) as a child process.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { countedManifest, fingerprint, pgClientBin, runProcess, usePostgres, type ProcessRun } from './harness/index.js';

const CLI = fileURLToPath(new URL('../cli/dist/bin.js', import.meta.url));
const ID = 'backup_20260601T010000Z.sql.gz.age';
const ID_ZSTD = 'backup_20260602T010000Z.sql.zst.age';

const pg = usePostgres();
let work: string;
let dir: string;
let key: string;
let otherKey: string;
let recipient: string;
let source: Record<string, string>;
/** The compressed dumps, and the same encrypted by the age CLI. */
let gz: Buffer;
let zst: Buffer;
let gzAge: Buffer;
let zstAge: Buffer;

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** `data` encrypted by the stock age CLI to `to`. */
function ageEncrypt(data: Buffer, to: string): Buffer {
  return execFileSync('age', ['-r', to], { input: data, maxBuffer: 256 * 1024 * 1024 });
}

function cli(args: string[], env: Record<string, string> = {}): Promise<ProcessRun> {
  // --force: no countdown (a drill has none, and refuses it).
  return runProcess(process.execPath, [CLI, ...(args.includes('--drill') ? [] : ['--force']), ...args], {
    DB_HOST: pg.host,
    DB_PORT: String(pg.port),
    DB_USER: pg.user,
    DB_PASSWORD: pg.password,
    DB_NAME: 'app',
    STORAGE_BACKEND: 'local',
    BACKUP_LOCAL_DIR: dir,
    ...env,
  });
}

/** An encrypted backup and its sidecar as the service writes them: the hash and size are of the ciphertext. */
async function writeEncryptedBackup(id: string, stored: Buffer, contents: object | null = null): Promise<void> {
  await writeFile(join(dir, id), stored);
  const sidecar = {
    id,
    createdAt: `${id.slice(7, 11)}-${id.slice(11, 13)}-${id.slice(13, 15)}T01:00:05Z`,
    sizeBytes: stored.length,
    sha256: sha256(stored),
    pgVersion: pg.version.split(' ')[0],
    durationMs: 42,
    triggeredBy: 'api',
    pgDumpVersion: pg.version.split(' ')[0],
    uncompressedSizeBytes: 0,
    compression: id.includes('.sql.zst') ? { format: 'zstd', level: 3 } : { format: 'gzip', level: 6 },
    database: 'app',
    serviceVersion: '0.1.0',
    format: 'plain',
    contents,
    encryption: { format: 'age', recipients: [recipient] },
  };
  await writeFile(join(dir, `${id}.meta.json`), `${JSON.stringify(sidecar, null, 2)}\n`);
}

/** The target with content of its own: "unchanged" is observable. */
async function seedTarget(): Promise<Record<string, string>> {
  await pg.dropDatabase('app');
  await pg.createDatabase('app');
  await pg.query(`CREATE TABLE previous (id int PRIMARY KEY, note text); INSERT INTO previous VALUES (1, 'before the restore')`, [], 'app');
  return fingerprint(pg, 'app');
}

async function leftovers(): Promise<string[]> {
  const { rows } = await pg.query<{ datname: string }>('SELECT datname FROM pg_database ORDER BY datname', [], 'postgres');
  return rows.map((r) => r.datname).filter((d) => /__(restore|old|drill)_/.test(d));
}

function flipByteAt(data: Buffer, at: number): Buffer {
  const copy = Buffer.from(data);
  copy.writeUInt8(copy.readUInt8(at) ^ 0x01, at);
  return copy;
}

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build`);
  work = await mkdtemp(join(tmpdir(), 'cli-restore-encrypted-'));
  dir = join(work, 'backups');
  await mkdir(dir);
  key = join(work, 'key.txt');
  otherKey = join(work, 'other.txt');
  execFileSync('age-keygen', ['-o', key], { stdio: 'ignore' });
  execFileSync('age-keygen', ['-o', otherKey], { stdio: 'ignore' });
  recipient = execFileSync('age-keygen', ['-y', key]).toString().trim();

  await pg.createDatabase('src');
  // Enough rows for the dump to span several 64 KiB age chunks, compressed.
  await pg.query(
    `CREATE TABLE customers (id bigserial PRIMARY KEY, name text NOT NULL, note text);
     CREATE TABLE orders (id int PRIMARY KEY, customer_id bigint REFERENCES customers(id), total numeric(12,2));
     INSERT INTO customers (name, note) SELECT 'customer ' || g, md5(g::text) || md5((g * 7)::text) FROM generate_series(1, 20000) g;
     INSERT INTO orders SELECT g, 1 + g % 20000, g * 0.25 FROM generate_series(1, 5000) g;`,
    [],
    'src',
  );
  source = await fingerprint(pg, 'src');
  // --no-owner --no-privileges as the service runs it.
  const sql = execFileSync(pgClientBin('pg_dump'), ['--no-owner', '--no-privileges'], { env: { PATH: process.env.PATH ?? '', ...pg.pgEnv('src') }, maxBuffer: 256 * 1024 * 1024 });
  gz = gzipSync(sql);
  zst = execFileSync('zstd', ['-c', '-q', '--check'], { input: sql, maxBuffer: 256 * 1024 * 1024 });
  gzAge = ageEncrypt(gz, recipient);
  zstAge = ageEncrypt(zst, recipient);
  expect(gzAge.length).toBeGreaterThan(3 * 64 * 1024);

  // The contents manifest of the gzip one, encrypted to the same recipient as the service does it.
  const manifest = Buffer.from(JSON.stringify(await countedManifest(pg, 'src', sql.toString('utf8'))));
  const manifestAge = ageEncrypt(manifest, recipient);
  await writeFile(join(dir, `${ID}.contents.json.age`), manifestAge);
  const counted = JSON.parse(manifest.toString('utf8')) as { tables: { rows: number }[]; largeObjects: number };
  await writeEncryptedBackup(ID, gzAge, { sha256: sha256(manifestAge), tables: counted.tables.length, rows: counted.tables.reduce((n, t) => n + t.rows, 0), largeObjects: counted.largeObjects });
  await writeEncryptedBackup(ID_ZSTD, zstAge);
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

beforeEach(async () => {
  for (const name of await leftovers()) await pg.dropDatabase(name);
});

describe('db-restore of age-encrypted backups', () => {
  it('restores files the stock age CLI encrypted (gzip and zstd inside; by name, and sniffed from a name that says nothing)', async () => {
    const files: [string, Buffer][] = [
      ['dump.sql.gz.age', gzAge],
      ['dump.sql.zst.age', zstAge],
      // As `curl -o download` saves it: the age intro says encrypted, the decrypted bytes say zstd.
      ['download', zstAge],
    ];
    for (const [name, bytes] of files) {
      await seedTarget();
      const path = join(work, name);
      await writeFile(path, bytes);
      const res = await cli(['--file', path, '--identity', key]);
      expect(res.code, `${name}: ${res.stderr}`).toBe(0);
      expect(res.stdout).toContain('encrypted age; decrypted while it streams');
      expect(await fingerprint(pg, 'app'), name).toEqual(source);
    }
    expect(await leftovers()).toEqual([]);
  });

  it('restores an encrypted backup by id and as latest, swap and --in-place, and drills it with its encrypted manifest', async () => {
    for (const args of [[ID], [ID_ZSTD, '--in-place'], ['latest'], [ID, '--in-place']]) {
      await seedTarget();
      const res = await cli([...args, '--identity', key]);
      expect(res.code, `${args.join(' ')}: ${res.stderr}`).toBe(0);
      expect(res.stdout).toContain(`encrypted age, to ${recipient}`);
      expect(await fingerprint(pg, 'app'), args.join(' ')).toEqual(source);
    }
    const drill = await cli(['--drill', ID, '--identity', key]);
    expect(drill.code, drill.stderr).toBe(0);
    expect(drill.stdout).toMatch(/rows of table public\.customers\s+20000\s+20000\s+ok/);
    expect(await leftovers()).toEqual([]);
  });

  it('without an identity says what is missing (exit 2) and touches nothing', async () => {
    const before = await seedTarget();
    for (const args of [[ID], [ID, '--in-place'], ['--drill', ID], ['--file', join(dir, ID)]]) {
      const res = await cli(args);
      expect(res.code, `${args.join(' ')}: ${res.stderr}`).toBe(2);
      expect(res.stderr).toContain(`backup ${ID} is encrypted (age, to ${recipient}): pass --identity FILE or set AGE_IDENTITY_FILE to an identity file`);
      expect(res.stdout).not.toContain('Restore plan');
    }
    // A file that is encrypted whatever its name, and says nothing of its recipients.
    const path = join(work, 'unnamed');
    await writeFile(path, gzAge);
    const res = await cli(['--file', path]);
    expect(res.code, res.stderr).toBe(2);
    expect(res.stderr).toContain('backup unnamed is encrypted (age): pass --identity FILE or set AGE_IDENTITY_FILE');
    expect(await fingerprint(pg, 'app')).toEqual(before);
    expect(await leftovers()).toEqual([]);
  });

  it('with the wrong identity fails as configuration (exit 2) before anything is dropped, swap, --in-place and --drill', async () => {
    const before = await seedTarget();
    // --drill ID: its manifest is opened first; --drill ID_ZSTD (no manifest): the dump's header.
    for (const args of [[ID], [ID, '--in-place'], ['--drill', ID], ['--drill', ID_ZSTD], ['--file', join(dir, ID_ZSTD)]]) {
      const res = await cli([...args, '--identity', otherKey]);
      expect(res.code, `${args.join(' ')}: ${res.stderr}`).toBe(2);
      expect(res.stderr).toMatch(/was encrypted to other keys: none of the 1 identity given opens it/);
      // Known from the header, before the plan, the countdown and --in-place's whole-file verification.
      expect(res.stdout).not.toContain('Restore plan');
      expect(res.stderr).not.toContain('verify: started');
      expect(await fingerprint(pg, 'app'), args.join(' ')).toEqual(before);
    }
    expect(await leftovers()).toEqual([]);
  });

  it('fails verification (exit 5) on damaged ciphertext and leaves the target unchanged', async () => {
    const before = await seedTarget();
    const damaged = flipByteAt(gzAge, Math.floor(gzAge.length / 2));
    // Without a sidecar only age's authentication of each chunk can tell.
    const path = join(work, 'damaged.sql.gz.age');
    await writeFile(path, damaged);
    for (const args of [['--file', path], ['--file', path, '--in-place']]) {
      const res = await cli([...args, '--identity', key]);
      expect(res.code, `${args.join(' ')}: ${res.stderr}`).toBe(5);
      expect(res.stderr).toMatch(/is damaged: an encrypted chunk fails authentication/);
      expect(await fingerprint(pg, 'app')).toEqual(before);
    }
    // In the directory, its sidecar's checksum (of the ciphertext as written) says so too.
    const id = 'backup_20260603T010000Z.sql.gz.age';
    await writeEncryptedBackup(id, gzAge);
    await writeFile(join(dir, id), damaged);
    for (const mode of [[], ['--in-place']]) {
      const res = await cli([id, ...mode, '--identity', key]);
      expect(res.code, res.stderr).toBe(5);
      expect(res.stderr).toContain('SHA-256 is');
      expect(res.stderr).toMatch(/fails authentication/);
      expect(await fingerprint(pg, 'app')).toEqual(before);
    }
    await rm(join(dir, id));
    await rm(join(dir, `${id}.meta.json`));
    expect(await leftovers()).toEqual([]);
  });

  it('takes AGE_IDENTITY_FILE with several identities (the right one second); a bad identity file names the line, never its content', async () => {
    const [other, right] = await Promise.all([readFile(otherKey, 'utf8'), readFile(key, 'utf8')]);
    const several = join(work, 'several.txt');
    await writeFile(several, `# two keys\n${other}\n${right}`);
    await seedTarget();
    const res = await cli([ID_ZSTD], { AGE_IDENTITY_FILE: several });
    expect(res.code, res.stderr).toBe(0);
    expect(await fingerprint(pg, 'app')).toEqual(source);

    const secretLine = right.split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-'))!;
    const cut = `${secretLine.slice(0, -6)}QQQQQQ`;
    const bad = join(work, 'bad.txt');
    await writeFile(bad, `# created: today\n${secretLine}\n${cut}\n`);
    const before = await seedTarget();
    for (const failing of [cli([ID], { AGE_IDENTITY_FILE: bad }), cli([ID, '--identity', bad])]) {
      const failed = await failing;
      expect(failed.code, failed.stderr).toBe(2);
      expect(failed.stderr).toMatch(/bad\.txt line 3 is not a valid age identity/);
      expect(failed.stderr).not.toContain(cut.slice(15, 40));
      expect(failed.stderr).not.toContain(secretLine.slice(15, 40));
    }
    expect(await fingerprint(pg, 'app')).toEqual(before);
  });
});
