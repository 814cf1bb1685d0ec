import { describe, expect, it } from 'vitest';
import { backupIdOfSidecar, compareNewestFirst, isOfDatabase, parseSidecar, sidecarName, toBackup } from './sidecar.js';

/** Exactly the fields the reference service writes (spec/reference-service.txt, "Backup metadata"). */
const REFERENCE = {
  id: 'backup_20260510T010000Z.sql.gz',
  createdAt: '2026-05-10T01:01:14Z',
  sizeBytes: 8421376,
  sha256: 'fa3c'.padEnd(64, '0'),
  pgVersion: '17.2',
  durationMs: 74123,
  triggeredBy: 'scheduler',
};

describe('parseSidecar', () => {
  it("accepts the reference service's sidecar and fills the documented defaults", () => {
    const parsed = parseSidecar(JSON.stringify(REFERENCE), REFERENCE.id);
    expect(parsed).toEqual({
      ok: true,
      sidecar: {
        ...REFERENCE,
        pgDumpVersion: 'unknown',
        uncompressedSizeBytes: null,
        compression: { format: 'gzip', level: null },
        database: 'unknown',
        serviceVersion: 'unknown',
        format: 'plain',
        contents: null,
        encryption: null,
      },
    });
    if (parsed.ok) expect(toBackup(parsed.sidecar)).toEqual({ ...REFERENCE, encryption: null, drill: null, pinned: null });
    expect(parseSidecar(JSON.stringify({ ...REFERENCE, triggeredBy: 'api', createdAt: '2026-05-10T01:01:14.123456789Z' }), null).ok).toBe(true);
  });

  it('says why a text is not a sidecar: not JSON, a missing field, another id', () => {
    expect(parseSidecar('{"id":', null)).toEqual({ ok: false, problem: 'not valid JSON' });
    const { sha256: _, ...withoutSha } = REFERENCE;
    expect(parseSidecar(JSON.stringify(withoutSha), null)).toMatchObject({ ok: false, problem: expect.stringMatching(/^not a backup sidecar \(sha256: Required\)/) });
    expect(parseSidecar(JSON.stringify(REFERENCE), 'backup_20260511T010000Z.sql.gz')).toMatchObject({ ok: false, problem: expect.stringMatching(/describes backup_20260510T010000Z/) });
    expect(parseSidecar('[]', null).ok).toBe(false);
  });

  it('refuses a sidecar whose id and encryption disagree (a restore would take the wrong path)', () => {
    const encryption = { format: 'age', recipients: ['age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p'] };
    const encryptedId = `${REFERENCE.id}.age`;
    expect(parseSidecar(JSON.stringify({ ...REFERENCE, id: encryptedId, encryption }), encryptedId)).toMatchObject({ ok: true, sidecar: { id: encryptedId, encryption } });
    expect(parseSidecar(JSON.stringify({ ...REFERENCE, id: encryptedId }), encryptedId)).toEqual({ ok: false, problem: 'its id ends in .age, but it records no encryption' });
    expect(parseSidecar(JSON.stringify({ ...REFERENCE, encryption }), REFERENCE.id)).toEqual({ ok: false, problem: 'it records encryption, but its id does not end in .age' });
  });
});

describe('ownership and order', () => {
  it('a sidecar of our database, or of an unknown one (the reference), is ours; another database is not', () => {
    expect(isOfDatabase({ database: 'app' }, 'app')).toBe(true);
    expect(isOfDatabase({ database: 'unknown' }, 'app')).toBe(true);
    expect(isOfDatabase({ database: 'billing' }, 'app')).toBe(false);
  });

  it('orders newest first, same-second backups by their _<n> suffix', () => {
    const at = '2026-05-10T01:00:05.000Z';
    const ids = ['backup_20260510T010000Z.sql.gz', 'backup_20260510T010000Z_3.sql.gz', 'backup_20260510T010000Z_2.sql.gz'];
    const sorted = [...ids.map((id) => ({ id, createdAt: at })), { id: 'backup_20260511T010000Z.sql.gz', createdAt: '2026-05-11T01:00:05Z' }].sort(compareNewestFirst);
    expect(sorted.map((b) => b.id)).toEqual(['backup_20260511T010000Z.sql.gz', 'backup_20260510T010000Z_3.sql.gz', 'backup_20260510T010000Z_2.sql.gz', 'backup_20260510T010000Z.sql.gz']);
  });
});

describe('sidecar names', () => {
  it('round-trips an id', () => {
    const id = 'backup_20260510T010000Z_2.sql.gz';
    expect(sidecarName(id)).toBe('backup_20260510T010000Z_2.sql.gz.meta.json');
    expect(backupIdOfSidecar(sidecarName(id))).toBe(id);
  });

  it('rejects names that are not a sidecar of a valid id', () => {
    for (const name of ['backup_20260510T010000Z.sql.gz', 'x.meta.json', '.tmp-backup_20260510T010000Z.sql.gz.meta.json', 'backup_2026.sql.gz.meta.json']) {
      expect(backupIdOfSidecar(name)).toBeNull();
    }
  });
});
