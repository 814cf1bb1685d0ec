import { createCipheriv, createDecipheriv, hkdfSync } from 'node:crypto';
import { Readable, Transform, Writable } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Decrypter, Encrypter } from 'age-encryption';
import type { Recipient } from 'age-encryption';

/**
 * age (age-encryption.org/v1) for backups: encryption to public keys while a dump streams, and
 * decryption while a restore streams.
 *
 * The header (recipient stanzas, header MAC) is the `age-encryption` package's, by age's author:
 * the format code that has to be right stays in one well-kept place. The payload cipher is
 * node:crypto's ChaCha20-Poly1305 instead of the package's JavaScript one: measured here at 2.1 GB/s
 * against 146 MB/s on 64 KiB chunks, the difference between ~0.05 s and ~0.75 s of CPU per 110 MB
 * backup (specs/011-age-encryption/design.md). The payload is age's STREAM: a 16-byte nonce, then
 * 64 KiB chunks, each sealed with the key HKDF-SHA256(file key, nonce, "payload") under the nonce
 * (11-byte big-endian chunk counter, 1 byte: 1 on the last chunk) with a 16-byte tag; the last
 * chunk is empty only when the whole plaintext is.
 */

/** The first line of every age file (its "intro"). */
export const AGE_INTRO = 'age-encryption.org/v1\n';

const CHUNK_BYTES = 64 * 1024;
const TAG_BYTES = 16;
const NONCE_BYTES = 16;
const SEALED_CHUNK_BYTES = CHUNK_BYTES + TAG_BYTES;
// A header holds one stanza per recipient; a post-quantum stanza is ~1.6 KB. Beyond this it is not a header.
const MAX_HEADER_BYTES = 1024 * 1024;
const MAC_LINE = Buffer.from('\n--- ');

/** What went wrong with age input: recipients or identities (configuration), or an encrypted file. */
export type AgeErrorKind = 'recipients' | 'identities' | 'no-matching-identity' | 'not-age' | 'damaged';

export class AgeError extends Error {
  override readonly name = 'AgeError';
  constructor(
    readonly kind: AgeErrorKind,
    message: string,
    opts?: { cause?: unknown },
  ) {
    super(message, opts);
  }
}

/** True when `head` (a file's first bytes, at least 22 of them) begins as an age file does. */
export function isAgeEncrypted(head: Uint8Array): boolean {
  return Buffer.from(head.buffer, head.byteOffset, head.byteLength).subarray(0, AGE_INTRO.length).toString('latin1') === AGE_INTRO;
}

/** One line of a recipients or identities text: its 1-based number and its trimmed content. */
interface Line {
  readonly number: number;
  readonly text: string;
}

/** age's recipients-file and identity-file syntax: one per line, `#` comments and blank lines ignored. */
function meaningfulLines(text: string): Line[] {
  return text
    .split(/\r?\n/)
    .map((raw, index) => ({ number: index + 1, text: raw.trim() }))
    .filter((line) => line.text !== '' && !line.text.startsWith('#'));
}

/**
 * Parses age recipients (public keys): a recipients file (`# comments`, blank lines), or the value
 * of an environment variable, where commas separate them as well as newlines. `where` names the
 * source in messages (`BACKUP_ENCRYPTION_RECIPIENTS`, a file path). Returns the recipients, or
 * every problem, each naming its line; recipients are public, so a message may quote them.
 */
export function parseRecipients(text: string, where: string, opts: { commas: boolean }): { recipients: string[]; problems: string[] } {
  const lines = meaningfulLines(text).flatMap((line) =>
    opts.commas ? line.text.split(',').map((part) => ({ number: line.number, text: part.trim() })).filter((part) => part.text !== '') : [line],
  );
  const recipients: string[] = [];
  const problems: string[] = [];
  for (const line of lines) {
    const problem = recipientProblem(line.text);
    if (problem === null) recipients.push(line.text);
    else problems.push(`${where} line ${line.number}: ${quote(line.text)} ${problem}`);
  }
  if (problems.length === 0 && recipients.length === 0) problems.push(`${where} holds no recipient (one age1… public key per line; lines starting with # are comments)`);
  return { recipients: [...new Set(recipients)], problems };
}

function recipientProblem(recipient: string): string | null {
  if (/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-|sk-ssh-|sk-ecdsa-)/.test(recipient)) {
    return 'is an SSH public key: the age library this service uses encrypts only to age recipients (age1…); make one with `age-keygen`';
  }
  if (recipient.startsWith('age1') && /^age1[a-z0-9]+1/.test(recipient) && !/^age1(pq|tag|tagpq)1/.test(recipient)) {
    return 'is an age plugin recipient, which needs the plugin program: use a native age1… recipient';
  }
  try {
    new Encrypter().addRecipient(recipient);
    return null;
  } catch {
    return recipient.startsWith('age1')
      ? 'is not a valid age recipient (a mistyped or cut key: its checksum or length is wrong)'
      : 'is not an age recipient (they begin with age1…; `age-keygen` prints one as "Public key")';
  }
}

function quote(text: string): string {
  return JSON.stringify(text.length > 24 ? `${text.slice(0, 20)}…` : text);
}

/**
 * Parses an age identity file (`AGE-SECRET-KEY-1…` or `AGE-SECRET-KEY-PQ-1…` lines, `#` comments,
 * blank lines). `where` names the file in messages. Identities are secret: a message names the
 * line, never its content. Throws AgeError('identities') with every problem.
 */
export function parseIdentities(text: string, where: string): string[] {
  if (text.startsWith(AGE_INTRO) || text.startsWith('-----BEGIN AGE ENCRYPTED FILE-----')) {
    throw new AgeError('identities', `${where} is itself encrypted (a passphrase-protected identity file), which is not supported: decrypt it first with \`age -d\` into a file of its own, keep that file private, and use it instead`);
  }
  const identities: string[] = [];
  const problems: string[] = [];
  for (const line of meaningfulLines(text)) {
    const problem = identityProblem(line.text);
    if (problem === null) identities.push(line.text);
    else problems.push(`${where} line ${line.number} ${problem}`);
  }
  if (problems.length === 0 && identities.length === 0) problems.push(`${where} holds no identity (AGE-SECRET-KEY-1… lines, as age-keygen writes)`);
  if (problems.length > 0) throw new AgeError('identities', problems.join('; '));
  return identities;
}

function identityProblem(identity: string): string | null {
  if (identity.startsWith('-----BEGIN') || identity.startsWith('ssh-')) return 'is an SSH key, which is not supported: use an age identity (age-keygen)';
  if (identity.startsWith('AGE-PLUGIN-')) return 'is an age plugin identity, which needs the plugin program: use a native age identity';
  if (!identity.startsWith('AGE-SECRET-KEY-')) return 'is not an age identity (they begin with AGE-SECRET-KEY-1…)';
  try {
    new Decrypter().addIdentity(identity);
    return null;
  } catch {
    return 'is not a valid age identity (a mistyped or cut key: its checksum or length is wrong)';
  }
}

/** The stanza types of an age header (`X25519`, `mlkem768x25519`, …), for a message. */
function stanzaTypes(header: Buffer): string[] {
  const types = header
    .toString('latin1')
    .split('\n')
    .filter((line) => line.startsWith('-> '))
    .map((line) => line.slice(3).split(' ')[0] ?? '');
  return [...new Set(types)];
}

/** Seals or opens one STREAM chunk: the nonce is the chunk's counter and whether it is the last. */
function chunkNonce(counter: number, last: boolean): Buffer {
  const nonce = Buffer.alloc(12);
  // 11 bytes of counter; 2^53 chunks of 64 KiB is far beyond any dump.
  nonce.writeUIntBE(Math.floor(counter / 2 ** 32), 3, 4);
  nonce.writeUInt32BE(counter >>> 0, 7);
  nonce[11] = last ? 1 : 0;
  return nonce;
}

function payloadKey(fileKey: Uint8Array, nonce: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', fileKey, nonce, 'payload', 32));
}

/**
 * Chunks of a byte stream, kept as the caller's buffers (no copy until a chunk is sealed): it
 * hands out a chunk of `size` bytes only once more bytes have arrived, because whether a chunk is
 * the last is part of its nonce.
 */
class ChunkQueue {
  #pieces: Buffer[] = [];
  #bytes = 0;

  constructor(private readonly size: number) {}

  push(piece: Buffer): void {
    if (piece.length === 0) return;
    this.#pieces.push(piece);
    this.#bytes += piece.length;
  }

  /** The next chunk when more bytes than a chunk are queued (so it is not the last), else null. */
  takeFull(): Buffer[] | null {
    return this.#bytes > this.size ? this.#take(this.size) : null;
  }

  /** Everything left: the last chunk (at most `size` bytes once takeFull returned null). */
  takeRest(): Buffer[] {
    return this.#take(this.#bytes);
  }

  #take(bytes: number): Buffer[] {
    const out: Buffer[] = [];
    let need = bytes;
    while (need > 0) {
      const piece = this.#pieces[0] as Buffer;
      if (piece.length <= need) {
        out.push(piece);
        this.#pieces.shift();
        need -= piece.length;
      } else {
        out.push(piece.subarray(0, need));
        this.#pieces[0] = piece.subarray(need);
        need = 0;
      }
    }
    this.#bytes -= bytes;
    return out;
  }
}

/** Learns the file key the Encrypter draws for a file; it adds no stanza of its own. */
class FileKeyCapture implements Recipient {
  fileKey: Uint8Array | null = null;
  wrapFileKey(fileKey: Uint8Array): [] {
    this.fileKey = fileKey;
    return [];
  }
}

/**
 * A fresh age header for `recipients` (up to and including its MAC line), with the payload nonce
 * and file key that go with it. The package encrypts an empty file for it; its empty last chunk
 * is dropped and the payload is sealed here instead, under the same nonce and file key.
 */
async function newHeader(recipients: readonly string[]): Promise<{ header: Buffer; nonce: Buffer; fileKey: Uint8Array }> {
  const encrypter = new Encrypter();
  for (const recipient of recipients) encrypter.addRecipient(recipient);
  const capture = new FileKeyCapture();
  encrypter.addRecipient(capture);
  const empty = Buffer.from(await encrypter.encrypt(new Uint8Array(0)));
  const headerEnd = empty.length - NONCE_BYTES - TAG_BYTES;
  const header = empty.subarray(0, headerEnd);
  if (capture.fileKey === null || !isAgeEncrypted(header) || header.lastIndexOf(MAC_LINE) < 0 || header[header.length - 1] !== 0x0a) {
    throw new AgeError('damaged', 'the age library produced a header of an unexpected shape');
  }
  return { header, nonce: empty.subarray(headerEnd, headerEnd + NONCE_BYTES), fileKey: capture.fileKey };
}

/**
 * Encrypts a stream to age recipients: header, nonce, then the STREAM chunks. Any failure errors
 * the stream, so nothing after it (hash, storage) ever sees a byte that is not ciphertext.
 */
export class AgeEncryptStream extends Transform {
  readonly #recipients: readonly string[];
  #key: Buffer | null = null;
  #counter = 0;
  readonly #queue = new ChunkQueue(CHUNK_BYTES);

  constructor(recipients: readonly string[]) {
    super();
    if (recipients.length === 0) throw new AgeError('recipients', 'age encryption needs at least one recipient');
    this.#recipients = recipients;
  }

  override _construct(callback: (error?: Error | null) => void): void {
    newHeader(this.#recipients).then(
      ({ header, nonce, fileKey }) => {
        this.#key = payloadKey(fileKey, nonce);
        this.push(Buffer.concat([header, nonce]));
        callback();
      },
      (error: unknown) => callback(new AgeError('recipients', `age encryption could not start: ${error instanceof Error ? error.message : String(error)}`, { cause: error })),
    );
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#queue.push(chunk);
    try {
      // The cipher's own output buffers go on as they are, tags included: a copy into one buffer
      // per chunk doubled the garbage a backup makes, and the GC work it caused (bench/README.md).
      const out: Buffer[] = [];
      for (let pieces = this.#queue.takeFull(); pieces !== null; pieces = this.#queue.takeFull()) this.#seal(pieces, false, out);
      for (const piece of out) this.push(piece);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      const out: Buffer[] = [];
      this.#seal(this.#queue.takeRest(), true, out);
      for (const piece of out) this.push(piece);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  /** Seals one STREAM chunk of `pieces`, appending its ciphertext and tag to `out`. */
  #seal(pieces: readonly Buffer[], last: boolean, out: Buffer[]): void {
    const cipher = createCipheriv('chacha20-poly1305', this.#key as Buffer, chunkNonce(this.#counter++, last), { authTagLength: TAG_BYTES });
    for (const piece of pieces) out.push(cipher.update(piece));
    // final() is empty for a stream cipher; the tag is 16 bytes.
    cipher.final();
    out.push(cipher.getAuthTag());
  }
}

/**
 * Decrypts an age stream with the given identities: reads the header, finds the file key with
 * the package's Decrypter (which checks the header MAC), then opens the STREAM chunks, each
 * authenticated before a byte of it is passed on. A wrong identity fails at the header, before any
 * plaintext; a cut or changed file fails at the chunk where it differs.
 */
export class AgeDecryptStream extends Transform {
  readonly #identities: readonly string[];
  readonly #where: string;
  #head: Buffer[] = [];
  #headBytes = 0;
  #key: Buffer | null = null;
  #counter = 0;
  readonly #queue = new ChunkQueue(SEALED_CHUNK_BYTES);

  /** `where` names the file in messages (`backup x`, a path). */
  constructor(identities: readonly string[], where: string) {
    super();
    this.#identities = identities;
    this.#where = where;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.#key !== null) {
      this.#open(chunk, callback);
      return;
    }
    this.#head.push(chunk);
    this.#headBytes += chunk.length;
    const head = this.#head.length === 1 ? chunk : Buffer.concat(this.#head);
    this.#head = [head];
    if (head.length >= AGE_INTRO.length && !isAgeEncrypted(head)) {
      callback(new AgeError('not-age', `${this.#where} is not age-encrypted (it does not begin with "age-encryption.org/v1")`));
      return;
    }
    const macLine = head.indexOf(MAC_LINE);
    const headerEnd = macLine < 0 ? -1 : head.indexOf(0x0a, macLine + MAC_LINE.length);
    if (headerEnd < 0 || head.length < headerEnd + 1 + NONCE_BYTES) {
      if (this.#headBytes > MAX_HEADER_BYTES) callback(new AgeError('damaged', `${this.#where}: its age header does not end within ${MAX_HEADER_BYTES} bytes`));
      else callback();
      return;
    }
    const header = head.subarray(0, headerEnd + 1);
    const nonce = head.subarray(headerEnd + 1, headerEnd + 1 + NONCE_BYTES);
    this.#head = [];
    fileKeyOf(header, this.#identities, this.#where).then(
      (fileKey) => {
        this.#key = payloadKey(fileKey, nonce);
        this.#open(head.subarray(headerEnd + 1 + NONCE_BYTES), callback);
      },
      (error: unknown) => callback(error as Error),
    );
  }

  override _flush(callback: TransformCallback): void {
    if (this.#key === null) {
      callback(new AgeError('damaged', `${this.#where} ends inside its age header (${this.#headBytes} bytes): it is cut short`));
      return;
    }
    const rest = this.#queue.takeRest();
    const bytes = rest.reduce((sum, piece) => sum + piece.length, 0);
    if (bytes < TAG_BYTES) {
      callback(new AgeError('damaged', `${this.#where} is cut short: its last encrypted chunk is missing`));
      return;
    }
    try {
      const plain = this.#unseal(rest, true);
      if (plain.length === 0 && this.#counter > 1) throw new AgeError('damaged', `${this.#where} is damaged: its last encrypted chunk is empty`);
      this.push(plain);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  #open(chunk: Buffer, callback: TransformCallback): void {
    this.#queue.push(chunk);
    try {
      // One buffer on per input chunk, not one per 64 KiB age chunk: the decompressor behind takes fewer, larger writes.
      const out: Buffer[] = [];
      for (let pieces = this.#queue.takeFull(); pieces !== null; pieces = this.#queue.takeFull()) out.push(this.#unseal(pieces, false));
      if (out.length > 0) this.push(out.length === 1 ? out[0] : Buffer.concat(out));
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  #unseal(pieces: readonly Buffer[], last: boolean): Buffer {
    const sealed = pieces.length === 1 ? (pieces[0] as Buffer) : Buffer.concat(pieces);
    const counter = this.#counter++;
    const decipher = createDecipheriv('chacha20-poly1305', this.#key as Buffer, chunkNonce(counter, last), { authTagLength: TAG_BYTES });
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    const plain = decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES));
    try {
      decipher.final();
    } catch (error) {
      const where = `at byte ${counter * SEALED_CHUNK_BYTES} of its payload`;
      throw new AgeError(
        'damaged',
        last
          ? `${this.#where} is damaged or cut short: its ${counter === 0 ? 'only' : 'last'} encrypted chunk fails authentication (${where})`
          : `${this.#where} is damaged: an encrypted chunk fails authentication (${where})`,
        { cause: error },
      );
    }
    return plain;
  }
}

/** The file key of an age header, from the first identity that opens one of its stanzas. */
async function fileKeyOf(header: Buffer, identities: readonly string[], where: string): Promise<Uint8Array> {
  const decrypter = new Decrypter();
  for (const identity of identities) decrypter.addIdentity(identity);
  try {
    return await decrypter.decryptHeader(header);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (/no identity matched/.test(message)) {
      const types = stanzaTypes(header);
      throw new AgeError(
        'no-matching-identity',
        `${where} was encrypted to other keys: none of the ${identities.length} identit${identities.length === 1 ? 'y' : 'ies'} given opens it (its header has ${types.length === 0 ? 'no' : types.join(', ')} recipient stanzas); pass the identity of one of the recipients its sidecar lists`,
      );
    }
    throw new AgeError('damaged', `${where}: its age header cannot be read (${message})`, { cause: error });
  }
}

/** Encrypts a small buffer (a contents manifest) to `recipients`, with the same code as a dump. */
export async function encryptBuffer(bytes: Buffer, recipients: readonly string[]): Promise<Buffer> {
  return collect(Readable.from([bytes]), new AgeEncryptStream(recipients));
}

/** Decrypts a small age file (a contents manifest) with `identities`. */
export async function decryptBuffer(bytes: Buffer, identities: readonly string[], where: string): Promise<Buffer> {
  return collect(Readable.from([bytes]), new AgeDecryptStream(identities, where));
}

async function collect(source: Readable, transform: Transform): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    source,
    transform,
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        out.push(chunk);
        callback();
      },
    }),
  );
  return Buffer.concat(out);
}
