import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ExitCode } from './exit-codes.js';
import type { DumpExpectations } from '@db-backup-service/restore';
import type { CompressionFormat } from '@db-backup-service/sdk';
import { verifyDump } from './verify.js';

const DUMP = [
  '--',
  '-- PostgreSQL database dump',
  '--',
  ...Array.from({ length: 2000 }, (_, i) => `INSERT INTO t VALUES (${i}, '${'x'.repeat(i % 50)}');`),
  '--',
  '-- PostgreSQL database dump complete',
  '--',
  '',
  '\\unrestrict abc',
  '',
].join('\n');

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'verify-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function verifyBytes(bytes: Buffer, expected: DumpExpectations, format: CompressionFormat = 'gzip') {
  const name = format === 'zstd' ? 'dump.sql.zst' : 'dump.sql.gz';
  const path = join(dir, name);
  await writeFile(path, bytes);
  const fh = await open(path);
  try {
    return await verifyDump(fh, expected, { format, decrypt: null, label: name });
  } finally {
    await fh.close();
  }
}

describe('verifyDump', () => {
  const gz = gzipSync(Buffer.from(DUMP));

  it('accepts an intact dump matching its sidecar', async () => {
    await expect(verifyBytes(gz, { sha256: sha(gz), sizeBytes: gz.length })).resolves.toEqual({
      sha256: sha(gz),
      sizeBytes: gz.length,
      uncompressedBytes: Buffer.byteLength(DUMP),
    });
  });

  it('fails (exit 5) on a flipped byte, naming the checksum and the gzip error', async () => {
    const bad = Buffer.from(gz);
    bad[Math.floor(bad.length / 2)]! ^= 0xff;
    const err = await verifyBytes(bad, { sha256: sha(gz), sizeBytes: gz.length }).catch((e: unknown) => e);
    expect(err).toMatchObject({ exitCode: ExitCode.VERIFICATION_FAILED, databaseState: 'untouched' });
    expect((err as Error).message).toMatch(/SHA-256 is [0-9a-f]{64}, the sidecar says/);
    expect((err as Error).message).toMatch(/not a valid gzip file/);
  });

  it('fails on a truncated gzip even without a sidecar', async () => {
    const err = await verifyBytes(gz.subarray(0, gz.length - 100), { sha256: null, sizeBytes: null }).catch((e: unknown) => e);
    expect(err).toMatchObject({ exitCode: ExitCode.VERIFICATION_FAILED });
    expect((err as Error).message).toMatch(/unexpected end of file/);
  });

  it('catches a CRC mismatch that leaves the deflate stream valid', async () => {
    const bad = Buffer.from(gz);
    bad[bad.length - 8]! ^= 0x01; // CRC-32 in the gzip trailer
    await expect(verifyBytes(bad, { sha256: null, sizeBytes: null })).rejects.toMatchObject({ exitCode: ExitCode.VERIFICATION_FAILED });
  });

  it('fails on a valid gzip of an incomplete dump (no completion trailer)', async () => {
    const cut = gzipSync(Buffer.from(DUMP.slice(0, DUMP.length / 2)));
    await expect(verifyBytes(cut, { sha256: sha(cut), sizeBytes: cut.length })).rejects.toThrow(/pg_dump output is incomplete: no completion trailer/);
  });

  it('checks the trailer as the service does: a dump opened with \\restrict must close with the same \\unrestrict (L5)', async () => {
    const key = 'ijC6hCnpTEufVYEF2bqRPdtPI2XesUN7rRb189kp5Be9zWX1zOrLNUf5g6vktm4';
    const restricted = DUMP.replace('-- PostgreSQL database dump\n', `-- PostgreSQL database dump\n--\n\n\\restrict ${key}\n`);
    const whole = gzipSync(Buffer.from(restricted.replace('\\unrestrict abc', `\\unrestrict ${key}`)));
    await expect(verifyBytes(whole, { sha256: null, sizeBytes: null })).resolves.toMatchObject({ sha256: sha(whole) });
    // Cut after the completion comment, before \unrestrict: psql would leave the session restricted.
    const cut = gzipSync(Buffer.from(restricted.slice(0, restricted.indexOf('\\unrestrict'))));
    await expect(verifyBytes(cut, { sha256: sha(cut), sizeBytes: cut.length })).rejects.toThrow(/matching \\unrestrict line is missing/);
  });
});

describe('verifyDump of a zstd dump (made by the zstd CLI, content checksum on)', () => {
  const zst = execFileSync('zstd', ['-c', '-q', '--check'], { input: Buffer.from(DUMP) });
  /** The sidecar of `bytes` itself: only the zstd checks can find what is wrong with them. */
  const own = (bytes: Buffer): DumpExpectations => ({ sha256: sha(bytes), sizeBytes: bytes.length });

  it('accepts an intact dump matching its sidecar', async () => {
    await expect(verifyBytes(zst, own(zst), 'zstd')).resolves.toEqual({ sha256: sha(zst), sizeBytes: zst.length, uncompressedBytes: Buffer.byteLength(DUMP) });
  });

  it('refuses (exit 5) a flipped byte, a truncated frame, a second frame, trailing bytes, whatever the sidecar says', async () => {
    const flipped = Buffer.from(zst);
    flipped[Math.floor(flipped.length / 2)]! ^= 0x55;
    const cases: [string, Buffer, RegExp][] = [
      ['flipped byte', flipped, /not a valid zstd file \(.+\)/],
      ['truncated', zst.subarray(0, zst.length - 10), /not a valid zstd file \(the zstd frame is truncated at byte \d+/],
      // `zstd -dc` would print both frames; Node's decoder reads only the first: the frame check finds it.
      ['second frame', Buffer.concat([zst, zst]), new RegExp(`not a valid zstd file \\(a second zstd frame at byte ${zst.length}`)],
      ['trailing bytes', Buffer.concat([zst, Buffer.from('\n\n\n\n')]), /not a valid zstd file \(trailing bytes after the zstd frame/],
    ];
    for (const [what, bytes, message] of cases) {
      const err = await verifyBytes(bytes, own(bytes), 'zstd').catch((e: unknown) => e);
      expect(err, what).toMatchObject({ exitCode: ExitCode.VERIFICATION_FAILED, databaseState: 'untouched' });
      expect((err as Error).message, what).toMatch(message);
    }
  });

  it('names a gzip file or an empty one given as zstd, rather than the decoder complaint', async () => {
    const gz = gzipSync(Buffer.from(DUMP));
    await expect(verifyBytes(gz, own(gz), 'zstd')).rejects.toThrow('verification of dump.sql.zst failed: it is a gzip file (it starts with 1f 8b), but its name says zstd (.sql.zst)');
    await expect(verifyBytes(zst, own(zst), 'gzip')).rejects.toThrow('it is a zstd file (it starts with 28 b5 2f fd), but its name says gzip (.sql.gz)');
    await expect(verifyBytes(Buffer.alloc(0), { sha256: null, sizeBytes: null }, 'zstd')).rejects.toThrow('it is empty, but its name says zstd (.sql.zst)');
  });
});
