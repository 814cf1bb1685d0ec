import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { beforeAll, describe, expect, it } from 'vitest';
import { AgeError, encryptBuffer } from './age.js';
import { createDumpDecoder } from './dump-decoder.js';
import { peekDumpHead } from './dump-peek.js';
import { RestoreError } from './errors.js';

const HEAD = Buffer.from('--\n-- PostgreSQL database dump\n--\n\n-- Dumped from database version 16.14\n-- Dumped by pg_dump version 17.12\n\nSET statement_timeout = 0;\n');

let identity: string;
let other: string;
let recipient: string;

beforeAll(async () => {
  identity = await generateX25519Identity();
  other = await generateX25519Identity();
  recipient = await identityToRecipient(identity);
});

/** A source in chunks of 16 KiB, as a file or a download delivers it. */
function chunked(data: Buffer): Readable {
  return Readable.from(Array.from({ length: Math.ceil(data.length / 16384) }, (_, i) => data.subarray(i * 16384, (i + 1) * 16384)));
}

function flipByte(bytes: Buffer, at: number): void {
  bytes.writeUInt8(bytes.readUInt8(at) ^ 0x01, at);
}

async function decode(stored: Buffer, identities: string[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    chunked(stored),
    createDumpDecoder('gzip', { identities, where: 'backup x' }),
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        out.push(chunk);
        callback();
      },
    }),
  );
  return Buffer.concat(out);
}

describe('createDumpDecoder', () => {
  it('decrypts, then decompresses, an encrypted dump of several age chunks', async () => {
    const sql = Buffer.concat([HEAD, randomBytes(300_000)]);
    const stored = await encryptBuffer(gzipSync(sql), [recipient]);
    expect(await decode(stored, [other, identity])).toEqual(sql);
  });

  it('fails with the AgeError itself, not as corrupt gzip: wrong identity, flipped byte', async () => {
    const stored = await encryptBuffer(gzipSync(Buffer.concat([HEAD, randomBytes(200_000)])), [recipient]);
    const wrong = await decode(stored, [other]).catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(AgeError);
    expect((wrong as AgeError).kind).toBe('no-matching-identity');
    const flipped = Buffer.from(stored);
    flipByte(flipped, flipped.length - 1000);
    const damaged = await decode(flipped, [identity]).catch((e: unknown) => e);
    expect(damaged).toBeInstanceOf(AgeError);
    expect((damaged as AgeError).kind).toBe('damaged');
  });
});

describe('peekDumpHead of an encrypted dump', () => {
  it('reads the head through the decryption and replays the ciphertext as stored', async () => {
    for (const size of [1_000, 400_000]) {
      const stored = await encryptBuffer(gzipSync(Buffer.concat([HEAD, randomBytes(size)])), [recipient]);
      const peeked = await peekDumpHead(chunked(stored), { format: 'gzip', label: 'b', decrypt: { identities: [identity], where: 'backup b' } });
      expect(peeked.head.pgDumpVersion?.major).toBe(17);
      expect(await buffer(peeked.dump)).toEqual(stored);
    }
  });

  it('refuses a wrong identity as configuration (usage), damaged ciphertext as verification, before anything is read further', async () => {
    const stored = await encryptBuffer(gzipSync(Buffer.concat([HEAD, randomBytes(400_000)])), [recipient]);
    const wrong = await peekDumpHead(chunked(stored), { format: 'gzip', label: 'b', decrypt: { identities: [other], where: 'backup b' } }).catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(RestoreError);
    expect(wrong).toMatchObject({ kind: 'usage', databaseState: 'untouched' });
    expect((wrong as Error).message).toMatch(/backup b was encrypted to other keys: none of the 1 identity given opens it/);
    expect((wrong as Error).message).not.toContain(other);

    const flipped = Buffer.from(stored);
    flipByte(flipped, stored.indexOf('\n--- ') + 100); // inside the first payload chunk
    const damaged = await peekDumpHead(chunked(flipped), { format: 'gzip', label: 'b', decrypt: { identities: [identity], where: 'backup b' } }).catch((e: unknown) => e);
    expect(damaged).toMatchObject({ kind: 'verification' });
    expect((damaged as Error).message).toMatch(/backup b is damaged: an encrypted chunk fails authentication/);
  });

  it('names an age file peeked at as plain for what it is', async () => {
    const stored = await encryptBuffer(gzipSync(HEAD), [recipient]);
    const err = await peekDumpHead(chunked(stored), { format: 'gzip', label: 'b', decrypt: null }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/it is age-encrypted/);
  });
});
