// Issue 8, part 2: disk full on the local backend. The backup directory is a small tmpfs mounted
// for this test (root only: CI runs as root). Three ways to run out of space, each followed by
// space coming back: a filler file eats the free space (then is deleted), the database outgrows
// the filesystem (then it is remounted bigger), and the dump fits while its sidecar does not.
// Every failure must be a failed job saying "no space left ... (ENOSPC)", leave no partial file,
// keep the older backups intact (SHA-256 still matches), and the next backup must succeed.
//
// Where mount is not permitted (not root, no CAP_SYS_ADMIN), the test is skipped and says so in
// its summary line: a full disk cannot be faked faithfully without a real filesystem (RLIMIT_FSIZE
// gives EFBIG and SIGXFSZ, not ENOSPC), and ENOSPC handling is unit-tested in the storage tests.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, rmdir, statfs, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { contentsName, type Backup, type Job } from '@db-backup-service/contract';
import { filesNotOwnerOnly, startRig, verifyBackup, type Rig } from './support/rig.js';
import { STACK_TRACE } from './support/secrets.js';
import { printSummary } from './support/summary.js';

const run = promisify(execFile);
const PAGE = 4096;
const ENOSPC_MESSAGE = /no space left on .*\(ENOSPC\)/;

/** Mounts a tmpfs of `size` at dir; false when this machine does not let us. */
async function mountTmpfs(dir: string, size: string): Promise<boolean> {
  if (process.getuid?.() !== 0) return false;
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir]);
    return true;
  } catch {
    return false;
  }
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('disk full (local backend on a small tmpfs)', () => {
  let dir: string;
  let mounted = false;
  let rig: Rig;
  const figures = { enospcFailures: 0, spaceReturned: 0, backupsVerified: 0, sidecarStageHit: false };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'faults-diskfull-'));
    mounted = await mountTmpfs(dir, '2m');
    if (!mounted) return;
    // A small database: a ~70 KB gzip dump; several fit into 2 MB.
    rig = await startRig({ backend: 'local', bigRows: 2_000, dir });
  });
  afterAll(async () => {
    await rig?.tearDown();
    if (mounted) await run('umount', [dir]).catch(() => run('umount', ['-l', dir]));
    await rmdir(dir).catch(() => rm(dir, { recursive: true, force: true }));
  });

  const freeBytes = async () => {
    const s = await statfs(dir);
    return s.bavail * s.bsize;
  };
  /** Storage holds exactly the listed backups: dump, contents manifest and sidecar, no temp files, nothing orphaned. */
  const assertOnlyListed = async (listed: readonly Backup[]) => {
    const expected = listed.flatMap((b) => [b.id, contentsName(b.id), `${b.id}.meta.json`]).sort();
    expect((await readdir(dir)).filter((f) => f !== 'filler').sort()).toEqual(expected);
  };
  /** Older backups are intact: the bytes on disk still have the listed SHA-256, and download. */
  const assertIntact = async (listed: readonly Backup[]) => {
    for (const b of listed) {
      expect(sha256(await readFile(join(dir, b.id))), b.id).toBe(b.sha256);
      await verifyBackup(rig.A, b);
      figures.backupsVerified++;
    }
  };
  const expectEnospc = (job: Job) => {
    expect(job.status).toBe('failed');
    expect(job.errorMessage).toMatch(ENOSPC_MESSAGE);
    expect(job.errorMessage).not.toMatch(STACK_TRACE);
    rig.watch.scan(`errorMessage of job ${job.jobId}`, job.errorMessage ?? '');
    figures.enospcFailures++;
    console.log(`[faults] disk-full: job failed with: ${job.errorMessage}`);
  };

  it('fails a backup cleanly when a filler file took the space, and succeeds once it is deleted', async (ctx) => {
    if (!mounted) {
      printSummary('disk-full', { skipped: 'mount not permitted (needs root / CAP_SYS_ADMIN)', secretsFound: 0 });
      ctx.skip();
    }
    for (let i = 0; i < 2; i++) expect((await rig.A.backup()).status).toBe('succeeded');
    const older = await rig.A.json<Backup[]>('/api/v1/backups');
    expect(older).toHaveLength(2);

    // Leave ~20 KB: less than one dump (~70 KB), so the dump itself hits ENOSPC mid-stream.
    await writeFile(join(dir, 'filler'), Buffer.alloc(Math.max(0, (await freeBytes()) - 20 * 1024)));
    expectEnospc(await rig.A.backup());
    await assertOnlyListed(await rig.A.json<Backup[]>('/api/v1/backups'));
    await assertIntact(older);

    await unlink(join(dir, 'filler'));
    figures.spaceReturned++;
    expect((await rig.A.backup()).status).toBe('succeeded');
    await assertOnlyListed(await rig.A.json<Backup[]>('/api/v1/backups'));
  });

  it('fails a dump larger than the filesystem, and succeeds after a remount with more space', async (ctx) => {
    if (!mounted) ctx.skip();
    const older = await rig.A.json<Backup[]>('/api/v1/backups');
    // ~6 MB of hex text: about 3.5 MB gzip-1, larger than the whole 2 MB filesystem.
    await rig.pg.query(`CREATE TABLE grown AS SELECT g, md5(g::text || 'a') || md5(g::text || 'b') AS h FROM generate_series(1, 90000) g`);
    expectEnospc(await rig.A.backup());
    await assertOnlyListed(await rig.A.json<Backup[]>('/api/v1/backups'));
    await assertIntact(older);

    await run('mount', ['-o', 'remount,size=16m', dir]);
    figures.spaceReturned++;
    const job = await rig.A.backup();
    expect(job.status).toBe('succeeded');
    const listed = await rig.A.json<Backup[]>('/api/v1/backups');
    expect(listed[0]!.id).toBe(job.backupId);
    expect(listed[0]!.sizeBytes).toBeGreaterThan(2 * 1024 * 1024);
    await assertOnlyListed(listed);
    await assertIntact(listed);
    await rig.pg.query('DROP TABLE grown');
  });

  it('fails cleanly when the dump fits but its sidecar does not', async (ctx) => {
    if (!mounted) ctx.skip();
    // A fresh dump of the (small again) database, to learn its size in pages.
    expect((await rig.A.backup()).status).toBe('succeeded');
    const listed = await rig.A.json<Backup[]>('/api/v1/backups');
    const dumpPages = Math.ceil(listed[0]!.sizeBytes / PAGE);
    // Leave room for exactly the dump's pages (dumps of an unchanged database differ by a few
    // bytes at most: the \restrict key): the sidecar's first page is the one that does not fit.
    await writeFile(join(dir, 'filler'), Buffer.alloc(Math.max(0, (await freeBytes()) - dumpPages * PAGE)));
    const job = await rig.A.backup();
    expectEnospc(job);
    figures.sidecarStageHit = /sidecar/.test(job.errorMessage ?? '');
    await assertOnlyListed(await rig.A.json<Backup[]>('/api/v1/backups'));
    await unlink(join(dir, 'filler'));
    figures.spaceReturned++;
    expect((await rig.A.backup()).status).toBe('succeeded');

    const final = await rig.A.json<Backup[]>('/api/v1/backups');
    await assertOnlyListed(final);
    await assertIntact(final);
    const modes = await filesNotOwnerOnly(dir);
    rig.svc.logs.forEach((line, i) => rig.watch.scan(`service log line ${i + 1}`, line));
    printSummary('disk-full', {
      filesystem: 'tmpfs 2m, remounted 16m',
      enospcFailures: figures.enospcFailures,
      sidecarStageHit: figures.sidecarStageHit,
      spaceReturned: figures.spaceReturned,
      backupsListed: final.length,
      backupsVerified: figures.backupsVerified,
      notOwnerOnly: modes.length,
      textsScanned: rig.watch.textsScanned,
      secretsFound: rig.watch.hits.length,
    });
    expect(modes).toEqual([]);
    expect(rig.watch.hits, rig.watch.describeHits()).toEqual([]);
  });
});
