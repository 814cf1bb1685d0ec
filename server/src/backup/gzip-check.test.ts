import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { BackupError } from './backup-error.js';
import { GzipCheck } from './gzip-check.js';

const text = Buffer.from('COPY public.t (id, note) FROM stdin;\n'.repeat(20_000));

/** Streams `gz` through a GzipCheck in 10 KB pieces; resolves with what passed through. */
async function check(gz: Buffer, expected: number, onFailure?: (error: BackupError) => void): Promise<Buffer> {
  const pieces = Array.from({ length: Math.ceil(gz.length / 10_000) }, (_, i) => gz.subarray(i * 10_000, (i + 1) * 10_000));
  const out: Buffer[] = [];
  await pipeline(Readable.from(pieces), new GzipCheck(() => expected, onFailure), async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) out.push(chunk);
  });
  return Buffer.concat(out);
}

describe('GzipCheck', () => {
  it('passes a valid stream through unchanged when it inflates to the expected size', async () => {
    const gz = gzipSync(text);
    expect((await check(gz, text.length)).equals(gz)).toBe(true);
  });

  it('fails with VERIFY_FAILED when the stream inflates to a different size', async () => {
    const failures: BackupError[] = [];
    const error = await check(gzipSync(text), text.length + 1, (e) => failures.push(e)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackupError);
    expect(error).toMatchObject({ code: 'VERIFY_FAILED', message: expect.stringContaining(`inflates to ${text.length} bytes`) });
    expect(failures).toEqual([error]);
  });

  for (const damage of ['a flipped byte', 'a cut-off end'] as const) {
    it(`fails with VERIFY_FAILED on ${damage}`, async () => {
      const gz = Buffer.from(gzipSync(text));
      if (damage === 'a flipped byte') gz[gz.length >> 1]! ^= 0xff;
      const damaged = damage === 'a flipped byte' ? gz : gz.subarray(0, gz.length - 20);
      const error = await check(damaged, text.length).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'VERIFY_FAILED', message: expect.stringMatching(/not valid gzip|inflates to/) });
    });
  }
});
