import { execFileSync } from 'node:child_process';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createDecompressor, ZstdFrameCheck } from '@db-backup-service/restore';
import { describe, expect, it } from 'vitest';
import { createCompressor } from './compressor.js';

const text = Buffer.from(Array.from({ length: 50_000 }, (_, i) => `INSERT INTO t VALUES (${i}, 'note ${i % 977}');\n`).join(''));

function zstd(level: number) {
  return createCompressor({ format: 'zstd', level, threads: 4, poolSize: 8 });
}

describe('createCompressor: zstd', () => {
  it('writes one checksummed frame even when end() comes while chunks are still queued (Node would add an empty second frame)', async () => {
    const compressor = zstd(3);
    const out: Buffer[] = [];
    // All written and ended before anything was compressed: the case that gave two frames.
    for (let at = 0; at < text.length; at += 100_000) compressor.write(text.subarray(at, at + 100_000));
    compressor.end();
    for await (const chunk of compressor) out.push(chunk as Buffer);
    const compressed = Buffer.concat(out);
    // ZstdFrameCheck refuses a second frame and a frame without a checksum.
    const checked: Buffer[] = [];
    await pipeline(Readable.from([compressed]), new ZstdFrameCheck(), async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) checked.push(chunk);
    });
    expect(Buffer.concat(checked).equals(compressed)).toBe(true);
    expect(execFileSync('zstd', ['-dcq'], { input: compressed, maxBuffer: 16 * 1024 * 1024 }).equals(text)).toBe(true);
  });

  it('batches pg_dump-sized chunks (64 KiB) into larger encoder calls and still writes exactly the input as one frame, the last partial batch included', async () => {
    const chunks: Buffer[] = [];
    for (let at = 0; at < text.length; at += 64 * 1024) chunks.push(text.subarray(at, at + 64 * 1024));
    const out: Buffer[] = [];
    await pipeline(Readable.from(chunks), zstd(3), async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) out.push(chunk);
    });
    const compressed = Buffer.concat(out);
    const checked: Buffer[] = [];
    await pipeline(Readable.from([compressed]), createDecompressor('zstd'), async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) checked.push(chunk);
    });
    expect(text.length % (1024 * 1024)).not.toBe(0);
    expect(Buffer.concat(checked).equals(text)).toBe(true);
  });

  it('compresses at the level asked for, through a slow consumer', async () => {
    const sizes: number[] = [];
    for (const level of [1, 9]) {
      let size = 0;
      const decompressed: Buffer[] = [];
      const decompressor = createDecompressor('zstd');
      decompressor.on('data', (chunk: Buffer) => decompressed.push(chunk));
      const slow = new Writable({
        highWaterMark: 1,
        write(chunk: Buffer, _encoding, callback) {
          size += chunk.length;
          decompressor.write(chunk);
          setImmediate(callback);
        },
      });
      await pipeline(Readable.from([text.subarray(0, 1_000_000), text.subarray(1_000_000)]), zstd(level), slow);
      await new Promise<void>((resolve, reject) => decompressor.once('error', reject).end(resolve));
      expect(Buffer.concat(decompressed).equals(text)).toBe(true);
      sizes.push(size);
    }
    expect(sizes[1]).toBeLessThan(sizes[0]!);
  });
});
