import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { formatMismatch, peekDumpHead } from './dump-peek.js';

// The head of a plain dump by pg_dump 17.12 of a PostgreSQL 16 server, as written.
const HEAD = Buffer.from(
  '--\n-- PostgreSQL database dump\n--\n\n\\restrict 3Qm1rVn0Ab8oG0cXlWq2yI5uH7tN9eK4sD6fJ1pL3zR8vB2wC5xM0aT7gY9hU4i\n\n-- Dumped from database version 16.14\n-- Dumped by pg_dump version 17.12 (Debian 17.12-0+deb13u1)\n\nSET statement_timeout = 0;\n',
);

/** `data` through the zstd CLI, as `pg_dump | zstd` writes it (content checksum on). */
function zstd(data: Buffer): Buffer {
  return execFileSync('zstd', ['-c', '-q', '--check'], { input: data, maxBuffer: 256 * 1024 * 1024 });
}

/** A source in chunks of 16 KiB, as a file or a download delivers it. */
function chunked(data: Buffer): Readable {
  return Readable.from(Array.from({ length: Math.ceil(data.length / 16384) }, (_, i) => data.subarray(i * 16384, (i + 1) * 16384)));
}

describe('formatMismatch', () => {
  it('accepts each format by its magic bytes and names the other one, or neither', () => {
    expect(formatMismatch(zstd(HEAD), 'zstd')).toBeNull();
    expect(formatMismatch(gzipSync(HEAD), 'gzip')).toBeNull();
    expect(formatMismatch(gzipSync(HEAD), 'zstd')).toBe('it is a gzip file (it starts with 1f 8b), but its name says zstd (.sql.zst)');
    expect(formatMismatch(zstd(HEAD), 'gzip')).toBe('it is a zstd file (it starts with 28 b5 2f fd), but its name says gzip (.sql.gz)');
    expect(formatMismatch(HEAD, 'zstd')).toBe('it is not a zstd file: it starts with 2d 2d 0a 2d, not 28 b5 2f fd');
    expect(formatMismatch(Buffer.alloc(0), 'gzip')).toBe('it is empty, but its name says gzip (.sql.gz)');
  });
});

describe('peekDumpHead', () => {
  it('reads the head of a zstd dump from its first bytes and replays the whole stream', async () => {
    // Random rows after the head: the start of the stream is all that is read for the head.
    const dump = Buffer.concat([HEAD, randomBytes(400_000)]);
    const compressed = zstd(dump);
    expect(compressed.length).toBeGreaterThan(64 * 1024);
    const peeked = await peekDumpHead(chunked(compressed), { format: 'zstd', label: 'b.sql.zst', decrypt: null });
    expect([peeked.head.pgDumpVersion?.text, peeked.head.serverVersion?.text, peeked.head.restrict]).toEqual(['17.12', '16.14', true]);
    expect((await buffer(peeked.dump)).equals(compressed)).toBe(true);
  });

  it('reads the head of a zstd dump whose first 64 KiB inflate to far more than the head (a repetitive dump)', async () => {
    // 32 MiB in a few KB: inflating the peeked start whole would need 32 MiB for a 1 KB head.
    const compressed = zstd(Buffer.concat([HEAD, Buffer.alloc(32 * 1024 * 1024, 'x')]));
    expect(compressed.length).toBeLessThan(64 * 1024);
    const peeked = await peekDumpHead(chunked(compressed), { format: 'zstd', label: 'b.sql.zst', decrypt: null });
    expect(peeked.head.pgDumpVersion?.text).toBe('17.12');
    peeked.dump.destroy();
  });

  it('refuses (verification, target untouched) a dump whose first bytes are not of the format its name says, and destroys the source', async () => {
    const source = chunked(gzipSync(HEAD));
    const err = await peekDumpHead(source, { format: 'zstd', label: 'b.sql.zst', decrypt: null }).catch((e: unknown) => e);
    expect(err).toMatchObject({
      kind: 'verification',
      databaseState: 'untouched',
      message: 'verification of b.sql.zst failed: it is a gzip file (it starts with 1f 8b), but its name says zstd (.sql.zst)',
    });
    expect(source.destroyed).toBe(true);
  });
});
