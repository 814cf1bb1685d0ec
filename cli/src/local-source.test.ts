import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ExitCode } from './exit-codes.js';
import { localSource } from './local-source.js';

function sidecar(id: string, createdAt: string, extra: Record<string, unknown> = {}) {
  return {
    id,
    createdAt,
    sizeBytes: 3,
    sha256: 'a'.repeat(64),
    pgVersion: '15.18',
    durationMs: 10,
    triggeredBy: 'scheduler',
    pgDumpVersion: '15.18',
    uncompressedSizeBytes: 10,
    compression: { format: 'gzip', level: 6 },
    database: 'app',
    serviceVersion: '0.1.0',
    format: 'plain',
    ...extra,
  };
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'local-source-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function put(id: string, createdAt: string, opts: { dump?: boolean; meta?: unknown } = {}): Promise<void> {
  if (opts.dump !== false) await writeFile(join(dir, id), 'gz!');
  if (opts.meta !== null) await writeFile(join(dir, `${id}.meta.json`), JSON.stringify(opts.meta ?? sidecar(id, createdAt)));
}

describe('localSource', () => {
  it('lists only complete backups of our prefix, newest first', async () => {
    await put('backup_20260510T010000Z.sql.gz', '2026-05-10T01:00:05Z');
    await put('backup_20260512T010000Z.sql.gz', '2026-05-12T01:00:05Z');
    await put('backup_20260512T010000Z_1.sql.gz', '2026-05-12T01:00:05Z');
    await put('backup_20260513T010000Z.sql.gz', '2026-05-13T01:00:05Z', { meta: null }); // no sidecar: incomplete
    await put('backup_20260514T010000Z.sql.gz', '2026-05-14T01:00:05Z', { dump: false }); // sidecar without dump
    await put('other_20260515T010000Z.sql.gz', '2026-05-15T01:00:05Z'); // another prefix
    await put('backup_20260516T010000Z.sql.gz', '2026-05-16T01:00:05Z', { meta: { id: 'broken' } });
    const warnings: string[] = [];
    const list = await localSource(dir, { namePrefix: 'backup', database: 'app' }, (m) => warnings.push(m)).list({});
    expect(list.map((b) => b.id)).toEqual(['backup_20260512T010000Z_1.sql.gz', 'backup_20260512T010000Z.sql.gz', 'backup_20260510T010000Z.sql.gz']);
    expect(Object.keys(list[0] ?? {}).sort()).toEqual(['createdAt', 'drill', 'durationMs', 'encryption', 'id', 'pgVersion', 'pinned', 'sha256', 'sizeBytes', 'triggeredBy']);
    expect(warnings).toHaveLength(2);
  });

  it("reads the pins the listing shows (<id>.pin.json, the service's record); an unreadable or invalid one is not pinned, with a warning, and the list still comes", async () => {
    const ids = ['backup_20260510T010000Z.sql.gz', 'backup_20260511T010000Z.sql.gz', 'backup_20260512T010000Z.sql.gz', 'backup_20260513T010000Z.sql.gz', 'backup_20260514T010000Z.sql.gz', 'backup_20260515T010000Z.sql.gz'] as const;
    for (const id of ids) await put(id, `${id.slice(7, 11)}-${id.slice(11, 13)}-${id.slice(13, 15)}T01:00:05Z`);
    const record = (id: string, reason: string | null) => JSON.stringify({ format: 1, backupId: id, at: '2026-05-16T09:30:00.000Z', reason });
    await writeFile(join(dir, `${ids[0]}.pin.json`), record(ids[0], 'before the 2.0 migration'));
    await writeFile(join(dir, `${ids[1]}.pin.json`), record(ids[1], null));
    await writeFile(join(dir, `${ids[2]}.pin.json`), '{"format": 1, "backupId"'); // cut short
    await writeFile(join(dir, `${ids[3]}.pin.json`), JSON.stringify({ format: 2, at: 'yesterday' }));
    await mkdir(join(dir, `${ids[4]}.pin.json`)); // cannot be read as a file
    // ids[5]: no pin. A pin beside no backup is no listed backup's.
    await writeFile(join(dir, 'backup_20260509T010000Z.sql.gz.pin.json'), record('backup_20260509T010000Z.sql.gz', 'orphan'));
    const warnings: string[] = [];
    const list = await localSource(dir, { namePrefix: 'backup', database: 'app' }, (m) => warnings.push(m)).list({});
    const since = async (id: string) => ({ at: (await stat(join(dir, `${id}.pin.json`))).mtime.toISOString(), reason: null });
    expect(list.map((b) => [b.id, b.pinned])).toEqual([
      [ids[5], null],
      [ids[4], await since(ids[4])],
      [ids[3], await since(ids[3])],
      [ids[2], await since(ids[2])],
      [ids[1], { at: '2026-05-16T09:30:00.000Z', reason: null }],
      [ids[0], { at: '2026-05-16T09:30:00.000Z', reason: 'before the 2.0 migration' }],
    ]);
    expect([...warnings].sort()).toEqual([
      `${join(dir, `${ids[2]}.pin.json`)} is not valid JSON: ${ids[2]} still counts as pinned (retention keeps it while the file exists)`,
      `${join(dir, `${ids[3]}.pin.json`)} is not a pin record: ${ids[3]} still counts as pinned (retention keeps it while the file exists)`,
      `${join(dir, `${ids[4]}.pin.json`)} cannot be read (EISDIR): ${ids[4]} still counts as pinned (retention keeps it while the file exists)`,
    ]);
  });

  it('resolves latest and ids; a missing one is exit 4, a non-id exit 2', async () => {
    await put('backup_20260510T010000Z.sql.gz', '2026-05-10T01:00:05Z');
    await put('backup_20260511T010000Z.sql.gz', '2026-05-11T01:00:05Z');
    await put('backup_20260512T010000Z.sql.gz', '2026-05-12T01:00:05Z', { meta: null });
    const source = localSource(dir, { namePrefix: 'backup', database: 'app' }, () => undefined);
    expect(await source.resolve('latest', {})).toMatchObject({ id: 'backup_20260511T010000Z.sql.gz', sha256: 'a'.repeat(64), sizeBytes: 3 });
    expect(await source.resolve('backup_20260510T010000Z.sql.gz', {})).toMatchObject({ id: 'backup_20260510T010000Z.sql.gz' });
    await expect(source.resolve('backup_20260512T010000Z.sql.gz', {})).rejects.toMatchObject({ exitCode: ExitCode.NOT_FOUND, message: expect.stringMatching(/without a sidecar/) });
    await expect(source.resolve('../etc/passwd', {})).rejects.toMatchObject({ exitCode: ExitCode.USAGE });
  });

  it('says so when the directory cannot be read (exit 2)', async () => {
    await expect(localSource(join(dir, 'missing'), { namePrefix: 'backup', database: 'app' }, () => undefined).list({})).rejects.toMatchObject({ exitCode: ExitCode.USAGE, message: expect.stringMatching(/ENOENT/) });
  });

  it("lists the reference service's backups and only this database's; latest never picks another database's", async () => {
    const reference = { id: 'backup_20260509T010000Z.sql.gz', createdAt: '2026-05-09T01:00:05Z', sizeBytes: 3, sha256: 'b'.repeat(64), pgVersion: '17.2', durationMs: 7, triggeredBy: 'api' };
    await put(reference.id, reference.createdAt, { meta: reference });
    await put('backup_20260510T010000Z.sql.gz', '2026-05-10T01:00:05Z');
    await put('backup_20260511T010000Z.sql.gz', '2026-05-11T01:00:05Z', { meta: sidecar('backup_20260511T010000Z.sql.gz', '2026-05-11T01:00:05Z', { database: 'billing' }) });
    const warnings: string[] = [];
    const source = localSource(dir, { namePrefix: 'backup', database: 'app' }, (m) => warnings.push(m));
    expect((await source.list({})).map((b) => b.id)).toEqual(['backup_20260510T010000Z.sql.gz', reference.id]);
    expect(warnings).toEqual([expect.stringMatching(/1 backup in .* belong to another database than app: not listed/)]);
    expect(await source.resolve('latest', {})).toMatchObject({ id: 'backup_20260510T010000Z.sql.gz' });
    expect(await source.resolve(reference.id, {})).toMatchObject({ id: reference.id, sha256: 'b'.repeat(64) });
    await expect(source.resolve('backup_20260511T010000Z.sql.gz', {})).rejects.toMatchObject({ exitCode: ExitCode.NOT_FOUND, message: expect.stringMatching(/of database billing, not app/) });
    // Without DB_NAME it cannot tell whose the newest is: it refuses to choose.
    await expect(localSource(dir, { namePrefix: 'backup', database: null }, () => undefined).resolve('latest', {})).rejects.toMatchObject({
      exitCode: ExitCode.USAGE, message: expect.stringMatching(/several databases \(app, billing\).*set DB_NAME/),
    });
  });
});
