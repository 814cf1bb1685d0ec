import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { RateLimit } from './rate-limit.js';

const CHUNK = 64 * 1024;

function chunks(total: number): Buffer[] {
  const data = randomBytes(total);
  return Array.from({ length: Math.ceil(total / CHUNK) }, (_, i) => data.subarray(i * CHUNK, (i + 1) * CHUNK));
}

/** Streams `pieces` through `limit` into memory; resolves with what came out and how long it took. */
async function measure(pieces: Buffer[], limit: RateLimit): Promise<{ out: Buffer; ms: number }> {
  const parts: Buffer[] = [];
  const started = performance.now();
  await pipeline(Readable.from(pieces), limit, async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) parts.push(chunk);
  });
  return { out: Buffer.concat(parts), ms: performance.now() - started };
}

const timeouts = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

describe('RateLimit', () => {
  it('caps 3 MB at 1 MB/s: no faster than the rate allows after one burst, unchanged bytes', async () => {
    const pieces = chunks(3_000_000);
    const { out, ms } = await measure(pieces, new RateLimit(1_000_000));
    expect(out.equals(Buffer.concat(pieces))).toBe(true);
    // The most that may pass early: the first piece (100 ms worth; the bucket starts empty) and 100 ms of tokens.
    const burst = 200_000;
    expect(ms).toBeGreaterThanOrEqual(((3_000_000 - burst) / 1_000_000) * 1000);
    // Timers that fire late give the tokens back (the refill measures real time): only a machine
    // stalled for seconds could double the ideal 3 s.
    expect(ms).toBeLessThan(6_000);
  }, 20_000);

  it('cuts a chunk larger than 100 ms worth into pieces, so that a big block is no burst', async () => {
    const block = randomBytes(300_000);
    const limit = new RateLimit(1_000_000);
    const started = performance.now();
    const pieces: Buffer[] = [];
    const arrivals: { bytes: number; ms: number }[] = [];
    await pipeline(Readable.from([block]), limit, async (source: AsyncIterable<Buffer>) => {
      for await (const piece of source) {
        pieces.push(piece);
        arrivals.push({ bytes: piece.length, ms: performance.now() - started });
      }
    });
    expect(Buffer.concat(pieces).equals(block)).toBe(true);
    expect(arrivals.map((a) => a.bytes)).toEqual([100_000, 100_000, 100_000]);
    // The second piece waits for the first one's debt (100 ms), the third for the second's.
    expect(arrivals[1]!.ms).toBeGreaterThanOrEqual(95);
    expect(arrivals[2]!.ms).toBeGreaterThanOrEqual(195);
  });

  it('passes a stream under the rate without waiting for a timer', async () => {
    const { ms } = await measure(chunks(CHUNK), new RateLimit(1_000_000_000));
    expect(ms).toBeLessThan(1_000);
  });

  it('clears its timer when destroyed while a chunk waits, and passes nothing after', async () => {
    const limit = new RateLimit(1_000);
    const seen: Buffer[] = [];
    limit.on('data', (chunk: Buffer) => seen.push(chunk));
    limit.on('error', () => undefined);
    const before = timeouts();
    limit.write(Buffer.alloc(10_000));
    // In debt by 10 s: the second chunk waits on a timer.
    limit.write(Buffer.alloc(10));
    await new Promise((resolve) => setImmediate(resolve));
    expect(seen).toHaveLength(1);
    expect(timeouts()).toBe(before + 1);
    limit.destroy();
    await new Promise((resolve) => limit.once('close', resolve));
    expect(timeouts()).toBe(before);
    expect(seen).toHaveLength(1);
  });

  it('respects backpressure: a consumer that does not read stops the source', async () => {
    let read = 0;
    const source = new Readable({
      read() {
        read += CHUNK;
        this.push(Buffer.alloc(CHUNK));
      },
    });
    const limit = new RateLimit(1_000_000_000);
    source.pipe(limit);
    // Nobody reads from the limit: what it takes in is bounded by the buffers in between.
    const deadline = Date.now() + 2_000;
    let last = -1;
    while (Date.now() < deadline && read !== last) {
      last = read;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(read).toBe(last);
    expect(read).toBeLessThan(16 * CHUNK);
    source.destroy();
    limit.destroy();
  });

  it('refuses a rate that is not positive', () => {
    expect(() => new RateLimit(0)).toThrow(/positive/);
    expect(() => new RateLimit(Number.NaN)).toThrow(/positive/);
  });
});
