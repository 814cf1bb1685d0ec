import { createHash } from 'node:crypto';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { describe, expect, it } from 'vitest';
import { encryptBuffer } from './age.js';
import { checkManifest } from './manifest-file.js';

const MANIFEST = { format: 1, tables: [{ schema: 'public', name: 't', rows: 3 }], largeObjects: 0, objects: { tables: 1, sequences: 0, views: 0, functions: 0, indexes: 0 } };
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('checkManifest', () => {
  it('checks an encrypted manifest by the SHA-256 of its ciphertext, then decrypts and parses it', async () => {
    const identity = await generateX25519Identity();
    const other = await generateX25519Identity();
    const stored = await encryptBuffer(Buffer.from(JSON.stringify(MANIFEST)), [await identityToRecipient(identity)]);
    const decrypt = { identities: [other, identity], where: 'x.contents.json.age' };
    expect(await checkManifest(stored, sha(stored), decrypt)).toMatchObject({ ok: true, manifest: { tables: [{ name: 't', rows: 3 }] } });

    // The plaintext's hash is not the one recorded: the stored bytes are what the sidecar vouches for.
    expect(await checkManifest(stored, sha(Buffer.from(JSON.stringify(MANIFEST))), decrypt)).toMatchObject({ ok: false, reason: 'untrusted' });
    expect(await checkManifest(stored, sha(stored), { identities: [other], where: 'x.contents.json.age' })).toMatchObject({ ok: false, reason: 'identity', problem: expect.stringMatching(/none of the 1 identity/) });
    expect(await checkManifest(stored, sha(stored), null)).toMatchObject({ ok: false, reason: 'identity' });
  });

  it('reads a plain manifest as before, with or without identities', async () => {
    const plain = Buffer.from(JSON.stringify(MANIFEST));
    expect(await checkManifest(plain, sha(plain), null)).toMatchObject({ ok: true });
    expect(await checkManifest(plain, sha(plain), { identities: [await generateX25519Identity()], where: 'x' })).toMatchObject({ ok: true });
    expect(await checkManifest(Buffer.from('{'), sha(Buffer.from('{')), null)).toMatchObject({ ok: false, reason: 'invalid' });
  });
});
