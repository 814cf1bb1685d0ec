import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Decrypter, Encrypter, generateHybridIdentity, generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterAll, describe, expect, it } from 'vitest';
import { AgeDecryptStream, AgeEncryptStream, AgeError, decryptBuffer, encryptBuffer, isAgeEncrypted, parseIdentities, parseRecipients } from './age.js';

const dir = mkdtempSync(join(tmpdir(), 'age-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A key pair from the stock age-keygen (its file has `# created:` and `# public key:` comments). */
function keygen(name: string): { file: string; recipient: string; text: string } {
  const file = join(dir, name);
  execFileSync('age-keygen', ['-o', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  const text = readFileSync(file, 'utf8');
  const recipient = /# public key: (age1\S+)/.exec(text)?.[1];
  if (recipient === undefined) throw new Error(`age-keygen wrote no public key: ${text}`);
  return { file, recipient, text };
}

const alice = keygen('alice.txt');
const bob = keygen('bob.txt');

function chunksOf(data: Buffer, size: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0; at < data.length; at += size) chunks.push(data.subarray(at, at + size));
  return chunks;
}

/** Runs `data` through `stage` in chunks of `chunkSize` (cut anywhere, as a pipe delivers them). */
async function run(stage: Transform, data: Buffer, chunkSize: number): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from(chunksOf(data, chunkSize)), stage, async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) out.push(chunk);
  });
  return Buffer.concat(out);
}

async function encrypt(data: Buffer, recipients: string[], chunkSize = 10_000): Promise<Buffer> {
  return run(new AgeEncryptStream(recipients), data, chunkSize);
}

function identitiesOf(...keys: { text: string }[]): string[] {
  return keys.flatMap((key) => parseIdentities(key.text, 'key.txt'));
}

// Around the 64 KiB chunk size: the last chunk full, one byte over, one under; empty; several chunks.
const SIZES = [0, 1, 65_535, 65_536, 65_537, 131_072, 300_001];

describe('age encryption, proven against the stock age CLI', () => {
  it.each(SIZES)('a %i-byte stream we encrypt decrypts with `age -d` to the same bytes, and with our stream', async (size) => {
    const plain = randomBytes(size);
    const sealed = await encrypt(plain, [alice.recipient]);
    expect(isAgeEncrypted(sealed)).toBe(true);
    expect(execFileSync('age', ['-d', '-i', alice.file], { input: sealed, maxBuffer: 64 * 1024 * 1024 }).equals(plain)).toBe(true);
    expect((await run(new AgeDecryptStream(identitiesOf(alice), 'test'), sealed, 7_777)).equals(plain)).toBe(true);
  });

  it.each(SIZES)('a %i-byte file the age CLI encrypts decrypts with our stream (chunks cut anywhere)', async (size) => {
    const plain = randomBytes(size);
    const sealed = execFileSync('age', ['-r', alice.recipient], { input: plain, maxBuffer: 64 * 1024 * 1024 });
    for (const chunkSize of [1_000, 65_552, 1 << 20]) {
      expect((await run(new AgeDecryptStream(identitiesOf(alice), 'test'), sealed, chunkSize)).equals(plain)).toBe(true);
    }
  });

  it('the package decrypts what we encrypt (its own JavaScript STREAM), and we decrypt what it encrypts', async () => {
    const plain = randomBytes(200_000);
    const decrypter = new Decrypter();
    decrypter.addIdentity((identitiesOf(alice))[0] as string);
    expect(Buffer.from(await decrypter.decrypt(await encrypt(plain, [alice.recipient]))).equals(plain)).toBe(true);
    const encrypter = new Encrypter();
    encrypter.addRecipient(alice.recipient);
    const theirs = Buffer.from(await encrypter.encrypt(plain));
    expect((await decryptBuffer(theirs, identitiesOf(alice), 'test')).equals(plain)).toBe(true);
  });

  it('several recipients: each one alone decrypts; a file key is fresh per file', async () => {
    const plain = randomBytes(70_000);
    const sealed = await encrypt(plain, [alice.recipient, bob.recipient]);
    expect(execFileSync('age', ['-d', '-i', alice.file], { input: sealed }).equals(plain)).toBe(true);
    expect(execFileSync('age', ['-d', '-i', bob.file], { input: sealed }).equals(plain)).toBe(true);
    const again = await encrypt(plain, [alice.recipient, bob.recipient]);
    expect(again.subarray(again.length - 1000).equals(sealed.subarray(sealed.length - 1000))).toBe(false);
  });

  it('post-quantum hybrid recipients (age1pq1…) round-trip through the package and our stream', async () => {
    const identity = await generateHybridIdentity();
    const recipient = await identityToRecipient(identity);
    expect(parseRecipients(recipient, 'X', { commas: true }).problems).toEqual([]);
    const plain = randomBytes(100_000);
    expect((await decryptBuffer(await encryptBuffer(plain, [recipient]), [identity], 'test')).equals(plain)).toBe(true);
  });
});

describe('age decryption fails closed', () => {
  it('a wrong identity fails at the header, before any plaintext, naming what is wrong', async () => {
    const sealed = await encrypt(randomBytes(200_000), [alice.recipient]);
    const out: Buffer[] = [];
    const stage = new AgeDecryptStream(identitiesOf(bob), 'backup x');
    const done = pipeline(Readable.from([sealed]), stage, async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) out.push(chunk);
    });
    await expect(done).rejects.toMatchObject({ kind: 'no-matching-identity', message: expect.stringMatching(/^backup x was encrypted to other keys: none of the 1 identity given opens it \(its header has X25519 recipient stanzas\)/) });
    expect(out).toEqual([]);
  });

  it('several identities in one file: the one that matches is used', async () => {
    const plain = randomBytes(1000);
    const both = parseIdentities(`${bob.text}\n${alice.text}`, 'keys.txt');
    expect(both).toHaveLength(2);
    expect((await decryptBuffer(await encrypt(plain, [alice.recipient]), both, 'test')).equals(plain)).toBe(true);
  });

  const sealedOf = async () => encrypt(randomBytes(200_000), [alice.recipient]);

  it.each([
    ['cut at a chunk boundary', (s: Buffer) => s.subarray(0, s.length - (200_000 - 3 * 65_536 + 16)), /damaged or cut short: its last encrypted chunk/],
    ['cut by one byte', (s: Buffer) => s.subarray(0, s.length - 1), /damaged or cut short/],
    ['cut inside the header', (s: Buffer) => s.subarray(0, 40), /ends inside its age header/],
    ['a flipped payload byte', (s: Buffer) => Buffer.concat([s.subarray(0, 1000), Buffer.from([s[1000]! ^ 1]), s.subarray(1001)]), /fails authentication/],
    ['a flipped header byte (the MAC)', (s: Buffer) => { const c = Buffer.from(s); const at = s.indexOf('\n--- ') + 8; c[at] = c[at]! ^ 1; return c; }, /header/],
    ['bytes appended', (s: Buffer) => Buffer.concat([s, Buffer.from('more')]), /damaged/],
    ['not age at all', () => Buffer.from('\x1f\x8b\x08\x00 this is gzip, not age ...'), /is not age-encrypted/],
  ])('%s: the stream errors', async (_name, damage, message) => {
    const damaged = damage(await sealedOf());
    await expect(run(new AgeDecryptStream(identitiesOf(alice), 'backup x'), damaged, 4096)).rejects.toThrow(message);
  });

  it('a failing recipient stops the encrypting stream before it writes a byte', async () => {
    const stage = new AgeEncryptStream(['age1notreallyarecipient']);
    await expect(run(stage, randomBytes(1000), 100)).rejects.toBeInstanceOf(AgeError);
  });
});

describe('parseRecipients', () => {
  it('reads age recipients files: comments, blank lines, CRLF, duplicates once', () => {
    const text = `# backups\r\n\r\n${alice.recipient}\r\n  ${bob.recipient}  \n# old key\n${alice.recipient}\n`;
    expect(parseRecipients(text, 'recipients.txt', { commas: false })).toEqual({ recipients: [alice.recipient, bob.recipient], problems: [] });
  });

  it('an environment value takes commas as well as newlines', () => {
    expect(parseRecipients(`${alice.recipient}, ${bob.recipient}`, 'V', { commas: true }).recipients).toEqual([alice.recipient, bob.recipient]);
  });

  it('names the line of every recipient that does not parse, and why', () => {
    const cut = alice.recipient.slice(0, -3);
    const { problems } = parseRecipients(
      [`${alice.recipient}`, 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk user@host', '# fine', cut, 'AGE-SECRET-KEY-1ABC', 'age1yubikey1qwerty'].join('\n'),
      'recipients.txt',
      { commas: false },
    );
    expect(problems).toEqual([
      expect.stringMatching(/^recipients.txt line 2: "ssh-ed25519 AAAAC3Nz…" is an SSH public key/),
      expect.stringMatching(/^recipients.txt line 4: ".+…" is not a valid age recipient/),
      expect.stringMatching(/^recipients.txt line 5: "AGE-SECRET-KEY-1ABC" is not an age recipient/),
      expect.stringMatching(/^recipients.txt line 6: "age1yubikey1qwerty" is an age plugin recipient/),
    ]);
  });

  it('a text with only comments is a problem, not "no encryption"', () => {
    expect(parseRecipients('# nothing yet\n', 'recipients.txt', { commas: false }).problems).toEqual([expect.stringMatching(/holds no recipient/)]);
  });
});

describe('parseIdentities', () => {
  it("reads age-keygen's files and several identities", async () => {
    const generated = await generateX25519Identity();
    expect(parseIdentities(`${alice.text}\n# another\n${generated}\n`, 'keys.txt')).toEqual([alice.text.split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-')), generated]);
  });

  it('names the bad line without its content (identities are secret)', async () => {
    const secretish = 'AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ';
    let error: unknown = null;
    try {
      parseIdentities(`${alice.text}\n${secretish}\nhello\n`, 'keys.txt');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(AgeError);
    expect((error as AgeError).message).toMatch(/keys.txt line 5 is not a valid age identity.*keys.txt line 6 is not an age identity/);
    expect((error as AgeError).message).not.toContain('QQQQ');
  });

  it('a passphrase-protected identity file is refused with what to do', async () => {
    const file = join(dir, 'protected.age');
    writeFileSync(file, 'age-encryption.org/v1\n-> scrypt abc 18\n');
    expect(() => parseIdentities(readFileSync(file, 'utf8'), file)).toThrow(/passphrase-protected identity file.*age -d/);
  });

  it('an empty file is a problem', async () => {
    expect(() => parseIdentities('# nothing\n', 'keys.txt')).toThrow(/holds no identity/);
  });
});
