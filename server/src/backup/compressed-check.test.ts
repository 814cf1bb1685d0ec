import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants, gzipSync, zstdCompressSync } from 'node:zlib';
import type { CompressionFormat } from '@db-backup-service/contract';
import { describe, expect, it } from 'vitest';
import { BackupError } from './backup-error.js';
import { CompressedStreamCheck } from './compressed-check.js';

const text = Buffer.from('COPY public.t (id, note) FROM stdin;\n'.repeat(20_000));

const COMPRESS: Record<CompressionFormat, (input: Buffer) => Buffer> = {
  gzip: (input) => gzipSync(input),
  zstd: (input) => zstdCompressSync(input, { params: { [constants.ZSTD_c_checksumFlag]: 1 } }),
};

/** Streams `compressed` through a CompressedStreamCheck in 10 KB pieces; resolves with what passed through. */
async function check(format: CompressionFormat, compressed: Buffer, expected: number, onFailure?: (error: BackupError) => void): Promise<Buffer> {
  const pieces = Array.from({ length: Math.ceil(compressed.length / 10_000) }, (_, i) => compressed.subarray(i * 10_000, (i + 1) * 10_000));
  const out: Buffer[] = [];
  await pipeline(Readable.from(pieces), new CompressedStreamCheck(format, () => expected, onFailure), async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) out.push(chunk);
  });
  return Buffer.concat(out);
}

for (const format of ['gzip', 'zstd'] as const) {
  describe(`CompressedStreamCheck: ${format}`, () => {
    const compress = COMPRESS[format];

    it('passes a valid stream through unchanged when it decompresses to the expected size', async () => {
      const compressed = compress(text);
      expect((await check(format, compressed, text.length)).equals(compressed)).toBe(true);
    });

    it('fails with VERIFY_FAILED when the stream decompresses to a different size', async () => {
      const failures: BackupError[] = [];
      const error = await check(format, compress(text), text.length + 1, (e) => failures.push(e)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BackupError);
      expect(error).toMatchObject({ code: 'VERIFY_FAILED', message: expect.stringContaining(`decompresses to ${text.length} bytes`) });
      expect(failures).toEqual([error]);
    });

    const damages = {
      'a flipped byte': (c: Buffer) => {
        const copy = Buffer.from(c);
        copy[copy.length >> 1]! ^= 0xff;
        return copy;
      },
      'a cut-off end': (c: Buffer) => c.subarray(0, c.length - 20),
      ...(format === 'zstd'
        ? {
            'a second frame': (c: Buffer) => Buffer.concat([c, compress(Buffer.from('SELECT 1;\n'))]),
            'trailing bytes': (c: Buffer) => Buffer.concat([c, Buffer.from('x')]),
          }
        : {}),
    };
    for (const [damage, apply] of Object.entries(damages)) {
      it(`fails with VERIFY_FAILED, "not valid ${format}", on ${damage}`, async () => {
        const failures: BackupError[] = [];
        const error = await check(format, apply(compress(text)), text.length, (e) => failures.push(e)).catch((e: unknown) => e);
        expect(error).toMatchObject({ code: 'VERIFY_FAILED', message: expect.stringContaining(`the compressed stream is not valid ${format}: `) });
        expect(failures).toEqual([error]);
      });
    }
  });
}
