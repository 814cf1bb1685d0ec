import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants, createZstdDecompress, gzipSync, zstdCompressSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { createDecompressor, ZstdFrameCheck } from './compression.js';

/** Varied text (a few hundred KiB): several compressed blocks, like a dump. */
const TEXT = Buffer.from(
  Array.from({ length: 20_000 }, (_, i) => `INSERT INTO t VALUES (${i}, 'row ${(i * 7919) % 10007}', ${i % 13 === 0});\n`).join(''),
);

function nodeZstd(input: Buffer, checksum = true): Buffer {
  return zstdCompressSync(input, { params: { [constants.ZSTD_c_compressionLevel]: 3, [constants.ZSTD_c_checksumFlag]: checksum ? 1 : 0 } });
}

function cliZstd(input: Buffer, ...args: string[]): Buffer {
  return execFileSync('zstd', ['-q', '-c', ...args], { input, maxBuffer: 64 * 1024 * 1024 });
}

function chunksOf(data: Buffer, size: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0; at < data.length; at += size) chunks.push(data.subarray(at, at + size));
  return chunks;
}

/** Runs `data` through `stage` in chunks of `chunkSize`; resolves to the output or rejects with its error. */
async function run(stage: Transform, data: Buffer, chunkSize = 64 * 1024): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from(chunksOf(data, chunkSize)), stage, async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) out.push(chunk);
  });
  return Buffer.concat(out);
}

/** A frame by hand (the checksum is not real: only ZstdFrameCheck, which does not verify it, reads this). */
function handFrame(blocks: Buffer[], descriptor = 0x04, headerRest = Buffer.from([0x58])): Buffer {
  return Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, descriptor]), headerRest, ...blocks, Buffer.from([1, 2, 3, 4])]);
}

function blockHeader(last: boolean, type: number, size: number): Buffer {
  const value = (last ? 1 : 0) | (type << 1) | (size << 3);
  return Buffer.from([value & 0xff, (value >> 8) & 0xff, (value >> 16) & 0xff]);
}

const SKIPPABLE = Buffer.concat([Buffer.from([0x5a, 0x2a, 0x4d, 0x18]), Buffer.from([3, 0, 0, 0]), Buffer.from('abc')]);

describe('compression: the zstd frame check and the decompressors', () => {
  it("Node's zstd decoder alone ignores a second frame and trailing bytes (nodejs/node#64741), which is why ZstdFrameCheck exists", async () => {
    const frame = nodeZstd(TEXT);
    const decode = () => createZstdDecompress();
    expect((await run(decode(), Buffer.concat([frame, nodeZstd(Buffer.from('more'))]))).equals(TEXT)).toBe(true);
    expect((await run(decode(), Buffer.concat([frame, Buffer.from('garbage')]))).equals(TEXT)).toBe(true);
    // It does report a frame cut short; ZstdFrameCheck reports that too, with the offset.
    await expect(run(decode(), frame.subarray(0, frame.length - 10))).rejects.toThrow(/unexpected end/);
  });

  it('passes real zstd output through unchanged and decompresses it, at any chunk boundary (Node and the zstd CLI)', async () => {
    const small = TEXT.subarray(0, 3000);
    for (const [name, compressed] of [
      ['node small', nodeZstd(small)],
      ['cli small', cliZstd(small, '-3')],
    ] as const) {
      // One byte at a time: every header is cut at every position.
      expect((await run(new ZstdFrameCheck(), compressed, 1)).equals(compressed), name).toBe(true);
      expect((await run(createDecompressor('zstd'), compressed, 1)).equals(small), name).toBe(true);
    }
    for (const [name, compressed] of [
      ['node', nodeZstd(TEXT)],
      ['cli -3', cliZstd(TEXT, '-3')],
      ['cli -19', cliZstd(TEXT, '-19')],
      ['cli --no-content-size', cliZstd(TEXT, '--no-content-size')],
    ] as const) {
      for (const size of [7, 13, 100, 4096, 65_537, compressed.length]) {
        expect((await run(new ZstdFrameCheck(), compressed, size)).equals(compressed), `${name} in ${size}`).toBe(true);
        expect((await run(createDecompressor('zstd'), compressed, size)).equals(TEXT), `${name} in ${size}`).toBe(true);
      }
    }
  });

  it('walks raw blocks (incompressible data) and RLE blocks (a long run of one byte), real and by hand', async () => {
    const random = randomBytes(700 * 1024);
    const run1 = Buffer.alloc(2 * 1024 * 1024, 0x61);
    const mixed = Buffer.concat([random.subarray(0, 200 * 1024), run1, random.subarray(200 * 1024)]);
    for (const input of [random, run1, mixed]) {
      for (const compressed of [nodeZstd(input), cliZstd(input)]) {
        for (const size of [1000, 64 * 1024 + 3]) {
          expect((await run(createDecompressor('zstd'), compressed, size)).equals(input)).toBe(true);
        }
      }
    }
    // By hand, so both kinds are surely there: a raw block of 5 bytes, an RLE block (1 byte of
    // content for 1000 decoded), an empty raw block, a last compressed block of 2 bytes.
    const frame = handFrame([
      blockHeader(false, 0, 5),
      Buffer.from('hello'),
      blockHeader(false, 1, 1000),
      Buffer.from('a'),
      blockHeader(false, 0, 0),
      blockHeader(true, 2, 2),
      Buffer.from([0, 0]),
    ]);
    expect((await run(new ZstdFrameCheck(), frame, 1)).equals(frame)).toBe(true);
    // Single segment with a 1-byte content size, a 4-byte dictionary id, no window descriptor.
    const single = handFrame([blockHeader(true, 0, 2), Buffer.from('hi')], 0x04 | 0x20 | 0x03, Buffer.from([7, 0, 0, 0, 2]));
    expect((await run(new ZstdFrameCheck(), single, 1)).equals(single)).toBe(true);
    // With 8 bytes of content size, and a window descriptor.
    const fcs8 = handFrame([blockHeader(true, 0, 2), Buffer.from('hi')], 0x04 | 0xc0, Buffer.from([0x58, 2, 0, 0, 0, 0, 0, 0, 0]));
    expect((await run(new ZstdFrameCheck(), fcs8, 3)).equals(fcs8)).toBe(true);
  });

  it('fails on a frame truncated anywhere, naming the offset (check alone and decompressor)', async () => {
    const compressed = nodeZstd(TEXT);
    const cuts = [1, 3, 4, 5, 7, 9, 12, 500, compressed.length >> 1, compressed.length - 4, compressed.length - 1];
    for (const cut of cuts) {
      const part = compressed.subarray(0, cut);
      await expect(run(new ZstdFrameCheck(), part, 7), `cut at ${cut}`).rejects.toThrow(`the zstd frame is truncated at byte ${cut}`);
      await expect(run(createDecompressor('zstd'), part, 7), `cut at ${cut}`).rejects.toThrow(/truncated at byte/);
    }
    await expect(run(new ZstdFrameCheck(), Buffer.alloc(0))).rejects.toThrow('the zstd stream is empty');
  });

  it('fails on a flipped byte inside a compressed block or in the checksum (the decoder checks the content)', async () => {
    // Under 128 KiB of input: one block, so the middle byte is block content, not a header.
    const input = TEXT.subarray(0, 100 * 1024);
    const compressed = nodeZstd(input);
    const flipped = Buffer.from(compressed);
    flipped[compressed.length >> 1]! ^= 0x10;
    // The headers are intact: the walk alone passes it ...
    expect((await run(new ZstdFrameCheck(), flipped)).equals(flipped)).toBe(true);
    // ... and the decoder fails it.
    await expect(run(createDecompressor('zstd'), flipped)).rejects.toThrow();
    const badChecksum = Buffer.from(compressed);
    badChecksum[compressed.length - 1]! ^= 0x01;
    await expect(run(createDecompressor('zstd'), badChecksum)).rejects.toThrow(/checksum/i);
  });

  it('fails on a second frame, a skippable frame or trailing bytes after the frame, naming the offset', async () => {
    const input = TEXT.subarray(0, 40 * 1024);
    for (const compressed of [nodeZstd(input), cliZstd(input)]) {
      const end = compressed.length;
      for (const [what, extra, message] of [
        ['second frame', nodeZstd(Buffer.from('more')), `a second zstd frame at byte ${end}`],
        ['second frame (cli)', cliZstd(Buffer.from('more')), `a second zstd frame at byte ${end}`],
        ['skippable frame', SKIPPABLE, `a skippable zstd frame at byte ${end}`],
        ['garbage', Buffer.from('garbage'), `trailing bytes after the zstd frame at byte ${end}`],
        ['one byte', Buffer.from([0]), `trailing bytes after the zstd frame at byte ${end}`],
      ] as const) {
        const data = Buffer.concat([compressed, extra]);
        for (const size of [1, 5, 4096]) {
          await expect(run(new ZstdFrameCheck(), data, size), `${what} in ${size}`).rejects.toThrow(message);
          await expect(run(createDecompressor('zstd'), data, size), `${what} in ${size}`).rejects.toThrow(message);
        }
      }
    }
  });

  it('fails on a bad magic, a reserved block type, the reserved header bit, an oversized block and a frame without a content checksum', async () => {
    const compressed = nodeZstd(TEXT);
    await expect(run(createDecompressor('zstd'), gzipSync(TEXT))).rejects.toThrow(/not a zstd frame: bad magic number 0x[0-9a-f]{8} at byte 0/);
    await expect(run(new ZstdFrameCheck(), SKIPPABLE)).rejects.toThrow('bad magic number 0x184d2a5a at byte 0');
    const reserved = handFrame([blockHeader(true, 3, 2), Buffer.from('hi')]);
    await expect(run(new ZstdFrameCheck(), reserved)).rejects.toThrow('corrupt zstd block header at byte 6: reserved block type');
    const oversized = handFrame([blockHeader(true, 0, 128 * 1024 + 1)]);
    await expect(run(new ZstdFrameCheck(), oversized)).rejects.toThrow('block size 131073 is over the 128 KiB maximum');
    const reservedBit = Buffer.from(compressed);
    reservedBit[4]! |= 0x08;
    await expect(run(new ZstdFrameCheck(), reservedBit)).rejects.toThrow('invalid zstd frame header at byte 4: the reserved bit is set');
    for (const unchecked of [nodeZstd(TEXT, false), cliZstd(TEXT, '--no-check')]) {
      await expect(run(createDecompressor('zstd'), unchecked)).rejects.toThrow('the zstd frame at byte 4 has no content checksum');
    }
  });

  it('gzip: gunzips at any chunk boundary and fails on a truncated stream', async () => {
    const input = TEXT.subarray(0, 40 * 1024);
    const compressed = gzipSync(input);
    for (const size of [1, 7, 65_536]) {
      expect((await run(createDecompressor('gzip'), compressed, size)).equals(input)).toBe(true);
    }
    await expect(run(createDecompressor('gzip'), compressed.subarray(0, compressed.length - 3))).rejects.toThrow(/unexpected end/);
  });
});
