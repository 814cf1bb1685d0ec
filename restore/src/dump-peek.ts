import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createZstdDecompress } from 'node:zlib';
import { COMPRESSION_FORMATS, type CompressionFormat } from '@db-backup-service/contract';
import { AgeDecryptStream, AgeError, decryptBuffer, isAgeEncrypted } from './age.js';
import { decryptionFailure, type DumpDecryption } from './dump-decoder.js';
import { readDumpHead, readGzipDumpHead, type DumpHead } from './dump-preamble.js';
import { RestoreError } from './errors.js';

/** The compressed bytes the head is read from: the header and preamble are well under 4 KB uncompressed. */
export const PEEK_BYTES = 64 * 1024;

/** How each format's stream begins (RFC 1952; RFC 8878 section 3.1.1). */
const MAGIC: Record<CompressionFormat, Buffer> = {
  gzip: Buffer.from([0x1f, 0x8b]),
  zstd: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]),
};

function hex(bytes: Buffer): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(' ');
}

/**
 * What is wrong with a dump's first bytes for `format` (the format its name says: the id's or the
 * file's extension), or null when they begin a stream of that format. The name decides which
 * decompressor reads the dump; the magic bytes only confirm it, so a renamed file is refused in
 * words ("a zstd file named .sql.gz") rather than by a decompressor's "incorrect header check".
 */
export function formatMismatch(start: Buffer, format: CompressionFormat): string | null {
  const magic = MAGIC[format];
  if (start.subarray(0, magic.length).equals(magic)) return null;
  const named = `its name says ${format} (${COMPRESSION_FORMATS[format].extension})`;
  if (start.length === 0) return `it is empty, but ${named}`;
  if (isAgeEncrypted(start)) return `it is age-encrypted (it starts with "age-encryption.org/v1"): it can be read only with an identity of one of its recipients`;
  for (const [other, otherMagic] of Object.entries(MAGIC)) {
    if (start.subarray(0, otherMagic.length).equals(otherMagic)) return `it is a ${other} file (it starts with ${hex(otherMagic)}), but ${named}`;
  }
  return `it is not a ${format} file: it starts with ${hex(start.subarray(0, 4))}, not ${hex(magic)}`;
}

/** The format whose magic bytes `start` begins with, or null (a file named neither .gz nor .zst). */
export function formatOfMagic(start: Buffer): CompressionFormat | null {
  for (const [format, magic] of Object.entries(MAGIC) as [CompressionFormat, Buffer][]) {
    if (start.subarray(0, magic.length).equals(magic)) return format;
  }
  return null;
}

/** The first `maxBytes` a zstd stream's start inflates to (fewer when it holds fewer), without needing the rest. */
function inflateZstdStart(compressedStart: Buffer, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const zstd = createZstdDecompress();
    const out: Buffer[] = [];
    let have = 0;
    let settled = false;
    // A start cut mid-frame ends in an error after what it held was inflated: that is the head.
    const done = (): void => {
      if (settled) return;
      settled = true;
      zstd.destroy();
      resolve(Buffer.concat(out).subarray(0, maxBytes));
    };
    zstd.on('data', (chunk: Buffer) => {
      out.push(chunk);
      have += chunk.length;
      // Streaming, not zstdDecompressSync: 64 KiB of a repetitive dump inflate to far more than the head.
      if (have >= maxBytes) done();
    });
    zstd.once('error', done);
    zstd.once('end', done);
    zstd.end(compressedStart);
  });
}

/** The head of a compressed plain dump from its first compressed bytes. */
async function readCompressedDumpHead(start: Buffer, format: CompressionFormat): Promise<DumpHead> {
  if (format === 'gzip') return readGzipDumpHead(start);
  return readDumpHead(await inflateZstdStart(start, PEEK_BYTES));
}

/**
 * The stored bytes read to peek at an encrypted dump: enough for an age header (a few hundred
 * bytes for X25519 recipients, ~1.6 KB per post-quantum one), the nonce and the first 64 KiB
 * chunk, which is opened only once a byte after it has arrived (whether a chunk is the last is
 * part of its nonce): so PEEK_BYTES of compressed dump come out for headers up to ~60 KB.
 */
export const ENCRYPTED_PEEK_BYTES = 2 * PEEK_BYTES + 64 * 1024;

/**
 * The plaintext the start of an age file opens to, without the rest: the header is checked (a
 * wrong identity fails here, before anything is created) and the whole chunks it holds are
 * authenticated and opened. `ended`: the start is the whole file (then its last chunk is opened too).
 */
export async function decryptStart(start: Buffer, ended: boolean, decrypt: DumpDecryption): Promise<Buffer> {
  if (ended) return decryptBuffer(start, decrypt.identities, decrypt.where);
  const stream = new AgeDecryptStream(decrypt.identities, decrypt.where);
  stream.on('error', () => undefined);
  // Flowing: a Transform whose output is not read holds back its write callback.
  const out: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => out.push(chunk));
  try {
    await new Promise<void>((resolve, reject) => stream.write(start, (err) => (err ? reject(err) : resolve())));
    return Buffer.concat(out);
  } finally {
    stream.destroy();
  }
}

/** Reads up to `bytes` from the start of `input` (fewer when it ends first), leaving the rest unread. */
function readStart(input: Readable, bytes: number): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let have = 0;
    const finish = (err?: unknown): void => {
      input.off('readable', onReadable);
      input.off('end', onEnd);
      input.off('error', onError);
      if (err === undefined) resolve(Buffer.concat(chunks));
      else reject(err instanceof Error ? err : new Error(String(err)));
    };
    const onReadable = (): void => {
      for (let chunk: Buffer | null; have < bytes && (chunk = input.read() as Buffer | null) !== null; ) {
        chunks.push(chunk);
        have += chunk.length;
      }
      if (have >= bytes) finish();
    };
    const onEnd = (): void => finish();
    const onError = (err: unknown): void => finish(err);
    input.on('readable', onReadable);
    input.once('end', onEnd);
    input.once('error', onError);
  });
}

/**
 * What the dump's head says (pg_dump version, `\restrict`), known before anything is created, and
 * the dump again from its first byte: the peeked start is replayed in front of the rest, so a
 * stream (a download) is read once and nothing goes to a temp file. A dump whose first bytes are
 * not of `format` fails here, before anything is created (RestoreError 'verification').
 *
 * An encrypted dump (`decrypt`) is peeked at through its decryption, and replayed as stored (the
 * ciphertext: what its checksum is of). A wrong identity fails here as a RestoreError 'usage',
 * damaged ciphertext or a file that is not age as 'verification'.
 */
export async function peekDumpHead(dump: Readable, opts: { format: CompressionFormat; label: string; decrypt: DumpDecryption | null }): Promise<{ head: DumpHead; dump: Readable }> {
  const wanted = opts.decrypt === null ? PEEK_BYTES : ENCRYPTED_PEEK_BYTES;
  const stored = await readStart(dump, wanted);
  let start = stored;
  if (opts.decrypt !== null) {
    try {
      start = await decryptStart(stored, stored.length < wanted, opts.decrypt);
    } catch (err) {
      dump.destroy();
      if (err instanceof AgeError) throw decryptionFailure(err);
      throw err;
    }
  }
  const mismatch = formatMismatch(start, opts.format);
  if (mismatch !== null) {
    dump.destroy();
    throw new RestoreError('verification', `verification of ${opts.label} failed: ${mismatch}`, { databaseState: 'untouched' });
  }
  const head = await readCompressedDumpHead(start, opts.format);
  const replay = new PassThrough();
  replay.write(stored);
  // The pipeline ties both ends: the source's error reaches the reader through `replay`, and a
  // reader that destroys `replay` (a failed restore, an abort) destroys the source (a download).
  pipeline(dump, replay).catch(() => undefined);
  return { head, dump: replay };
}
