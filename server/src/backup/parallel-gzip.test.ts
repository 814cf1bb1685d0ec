import { spawnSync } from 'node:child_process';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { createGunzip, gunzipSync, gzipSync, inflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { createParallelGzip, DEFAULT_BLOCK_SIZE, liveParallelGzipCompressions, ParallelGzipError } from './parallel-gzip.js';
import type { ParallelGzipOptions } from './parallel-gzip.js';
import { seededRandom } from '../../../test/harness/random.js';

const GZIP = '/usr/bin/gzip';
const LEVELS = [1, 2, 3, 4, 5, 6, 7, 8, 9];
const THREADS = [1, 2, 4];
// The full matrix uses the smallest block size allowed so that small inputs still span blocks.
const SMALL_BLOCK = 32 * 1024;

/**
 * Random bytes of mixed compressibility: noise, runs, and copies from up to 40 KiB back, so that
 * matches cross block boundaries (only the dictionary makes those work).
 */
function randomBytes(size: number, seed: number): Buffer {
  const next = seededRandom(seed);
  const out = Buffer.alloc(size);
  let i = 0;
  while (i < size) {
    const kind = next();
    const len = Math.min(size - i, 1 + Math.floor(next() * 2000));
    if (kind < 0.4) {
      for (let j = 0; j < len; j++) out[i + j] = Math.floor(next() * 256);
    } else if (kind < 0.5) {
      out.fill(Math.floor(next() * 256), i, i + len);
    } else if (i > 0) {
      const from = Math.max(0, i - 1 - Math.floor(next() * 40 * 1024));
      for (let j = 0; j < len; j++) out[i + j] = out[from + j]!;
    }
    i += len;
  }
  return out;
}

const WORDS = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo', 'lima', 'mike', 'november', 'oscar', 'papa', 'quebec', 'romeo', 'sierra', 'tango', 'uniform', 'victor', 'whiskey', 'xray', 'yankee', 'zulu'];

/** Plain-dump-like text: COPY blocks of rows with ids, numbers, words, timestamps and JSON. */
function sqlText(size: number, seed: number): Buffer {
  const next = seededRandom(seed);
  const word = () => WORDS[Math.floor(next() * WORDS.length)]!;
  const parts: string[] = [];
  let length = 0;
  let id = 1;
  while (length < size) {
    const rows = [`COPY public.orders_${Math.floor(next() * 50)} (id, customer, amount, note, created_at, attrs) FROM stdin;\n`];
    for (let r = 0; r < 200; r++, id++) {
      const amount = (next() * 10000).toFixed(2);
      const when = new Date(1_700_000_000_000 + Math.floor(next() * 3e10)).toISOString().replace('T', ' ').replace('Z', '+00');
      const attrs = JSON.stringify({ tags: [word(), word()], score: Math.floor(next() * 1000), active: next() < 0.5 });
      rows.push(`${id}\t${word()} ${word()}\t${amount}\t${next() < 0.1 ? '\\N' : `${word()} ${word()} ${word()}`}\t${when}\t${attrs}\n`);
    }
    rows.push('\\.\n\n');
    const text = rows.join('');
    parts.push(text);
    length += text.length;
  }
  return Buffer.from(parts.join('')).subarray(0, size);
}

/** Cuts `input` into random-sized chunks (1 byte to 100 KiB) as writes of a real producer would be. */
function randomChunks(input: Buffer, seed: number): Buffer[] {
  const next = seededRandom(seed);
  const chunks: Buffer[] = [];
  for (let i = 0; i < input.length; ) {
    const len = 1 + Math.floor(next() * (next() < 0.2 ? 64 : 100 * 1024));
    chunks.push(input.subarray(i, i + len));
    i += len;
  }
  return chunks;
}

async function compress(chunks: Buffer[], options: ParallelGzipOptions): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from(chunks), createParallelGzip(options), async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) out.push(chunk);
  });
  return Buffer.concat(out);
}

function stockGunzip(gz: Buffer): Buffer {
  const result = spawnSync(GZIP, ['-dc'], { input: gz, maxBuffer: 1 << 30 });
  expect(result.status, result.stderr.toString()).toBe(0);
  return result.stdout;
}

/** Checks the member's shape: a 10-byte header, ONE deflate stream filling the body, CRC + ISIZE. */
function expectSingleMember(gz: Buffer, input: Buffer): void {
  expect([...gz.subarray(0, 4)]).toEqual([0x1f, 0x8b, 8, 0]);
  const body = gz.subarray(10, gz.length - 8);
  const { buffer, engine } = inflateRawSync(body, { info: true }) as unknown as { buffer: Buffer; engine: { bytesWritten: number } };
  expect(buffer.equals(input)).toBe(true);
  expect(engine.bytesWritten).toBe(body.length);
  expect(gz.readUInt32LE(gz.length - 4)).toBe(input.length % 2 ** 32);
}

function expectRoundTrip(gz: Buffer, input: Buffer, label: string): void {
  expect(stockGunzip(gz).equals(input), `${label}: gzip -dc`).toBe(true);
  expect(gunzipSync(gz).equals(input), `${label}: zlib.gunzipSync`).toBe(true);
  expectSingleMember(gz, input);
}

/**
 * Compresses each input at every thread count (whole at 1 and 4 threads, in random writes at 2)
 * and checks each result; stock gunzip runs once on all members concatenated (it reads a
 * multi-member file as the concatenation), which keeps process spawns out of the test time.
 */
async function checkMatrix(level: number, inputs: { name: string; data: Buffer }[]): Promise<void> {
  const members: Buffer[] = [];
  for (const { name, data } of inputs) {
    const outputs: Buffer[] = [];
    for (const threads of THREADS) {
      const chunks = threads === 2 ? randomChunks(data, level * 1000 + data.length) : [data];
      const gz = await compress(chunks, { level, threads, blockSize: SMALL_BLOCK });
      expect(gunzipSync(gz).equals(data), `${name}, level ${level}, ${threads} threads: zlib.gunzipSync`).toBe(true);
      expectSingleMember(gz, data);
      outputs.push(gz);
    }
    // Blocks depend neither on which worker compressed them nor on how the input was written.
    expect(outputs.every((gz) => gz.equals(outputs[0]!)), `${name}: same bytes at every thread count`).toBe(true);
    members.push(outputs[0]!);
  }
  const expected = Buffer.concat(inputs.map((input) => input.data));
  expect(stockGunzip(Buffer.concat(members)).equals(expected), `level ${level}: gzip -dc`).toBe(true);
}

describe('createParallelGzip', () => {
  // Block-boundary cases do not depend on the level beyond deflate's two code paths (fast for
  // 1-3, lazy for 4-9), so they run at 1 and 9 (stock gunzip's start-up dominates the test time); every
  // level runs on a mixed input below, and level 6 again on large inputs.
  const edgeSizes = [0, 1, SMALL_BLOCK - 1, SMALL_BLOCK, SMALL_BLOCK + 1, 5 * SMALL_BLOCK + 12_345];
  for (const level of [1, 9]) {
    it(`level ${level}: sizes ${edgeSizes.join(', ')} round-trip at 1, 2 and 4 threads, whole and in random writes`, async () => {
      await checkMatrix(
        level,
        edgeSizes.map((size) => ({ name: `random ${size} B`, data: randomBytes(size, size + level) })),
      );
    });
  }

  it('every level 1-9 round-trips mixed text and random data at 1, 2 and 4 threads', async () => {
    for (const level of LEVELS) {
      const data = Buffer.concat([sqlText(150_000, level), randomBytes(100_000, level)]);
      await checkMatrix(level, [{ name: 'text + random 250 KB', data }]);
    }
  });

  it('round-trips several MB of random data and of text with the default block size', async () => {
    const blockSize = DEFAULT_BLOCK_SIZE;
    for (const size of [blockSize - 1, blockSize, blockSize + 1]) {
      const data = randomBytes(size, size);
      expectRoundTrip(await compress(randomChunks(data, 7), { level: 6, threads: 2 }), data, `random ${size} B`);
    }
    const random = randomBytes(6 * 1024 * 1024 + 17, 42);
    expectRoundTrip(await compress(randomChunks(random, 1), { level: 6, threads: 4 }), random, 'random 6 MiB');
    const text = sqlText(8 * 1024 * 1024, 43);
    const gz = await compress(randomChunks(text, 2), { level: 6, threads: 2 });
    expectRoundTrip(gz, text, 'text 8 MiB');

    // gzip -t, and node's streaming gunzip, accept it too.
    const test = spawnSync(GZIP, ['-t'], { input: gz });
    expect(test.status, test.stderr.toString()).toBe(0);
    const streamed: Buffer[] = [];
    await pipeline(Readable.from([gz]), createGunzip(), async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) streamed.push(chunk);
    });
    expect(Buffer.concat(streamed).equals(text)).toBe(true);
  });

  it('stays within 1% of single-stream gzip on 4 MB of dump-like text at every level', async () => {
    const text = sqlText(4 * 1024 * 1024, 44);
    const ratios: string[] = [];
    for (const level of LEVELS) {
      const ours = (await compress([text], { level, threads: 2 })).length;
      const single = gzipSync(text, { level }).length;
      ratios.push(`${level}: ${((ours / single - 1) * 100).toFixed(3)}%`);
      expect(ours, `level ${level}: ${ours} vs ${single}`).toBeLessThanOrEqual(single * 1.01);
    }
    console.log(`parallel gzip size over zlib.gzipSync: ${ratios.join(', ')}`);
  });

  it('holds writes back once the in-flight window is full (memory stays flat)', async () => {
    const threads = 2;
    const gz = createParallelGzip({ level: 1, threads, blockSize: SMALL_BLOCK });
    const chunk = sqlText(64 * 1024, 45);
    let accepted = 0;
    // Nothing reads the output: the writes must stall after about threads * 2 blocks (plus what the
    // readable side buffers), not keep taking the 64 MiB offered.
    while (accepted < 64 * 1024 * 1024) {
      const written = new Promise<boolean>((resolve) => gz.write(chunk, () => resolve(true)));
      if (!(await Promise.race([written, sleep(1000).then(() => false)]))) break;
      accepted += chunk.length;
    }
    expect(accepted).toBeLessThanOrEqual((threads * 2 + 4) * SMALL_BLOCK + 2 * chunk.length);
    gz.destroy();
    await new Promise((resolve) => gz.once('close', resolve));
    expect(liveParallelGzipCompressions()).toBe(0);
  });

  it('compresses at most `threads` blocks at once, and closes every zlib handle when destroyed mid-stream and after a normal end', async () => {
    const gz = createParallelGzip({ level: 9, threads: 3, blockSize: SMALL_BLOCK });
    gz.resume();
    let most = 0;
    const timer = setInterval(() => (most = Math.max(most, liveParallelGzipCompressions())), 1);
    for (let i = 0; i < 200; i++) gz.write(randomBytes(SMALL_BLOCK, i % 20));
    await sleep(20);
    // Destroyed while blocks are still compressing on the pool: 'close' waits for them.
    gz.destroy();
    await new Promise((resolve) => gz.once('close', resolve));
    clearInterval(timer);
    expect(liveParallelGzipCompressions()).toBe(0);
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(3);

    const gz2 = await compress([randomBytes(300_000, 1)], { level: 6, threads: 4, blockSize: SMALL_BLOCK });
    expect(gz2.length).toBeGreaterThan(0);
    expect(liveParallelGzipCompressions()).toBe(0);
  });

  it('propagates an error of the input and leaves no compression running', async () => {
    const boom = new Error('source failed');
    const source = Readable.from(
      (async function* () {
        yield randomBytes(200_000, 3);
        await sleep(20);
        throw boom;
      })(),
    );
    const sink = new Writable({ write: (_chunk, _encoding, callback) => callback() });
    await expect(pipeline(source, createParallelGzip({ level: 6, threads: 2, blockSize: SMALL_BLOCK }), sink)).rejects.toBe(boom);
    expect(liveParallelGzipCompressions()).toBe(0);
  });

  it('fails the stream with ParallelGzipError when compressing a block fails, and leaves no compression running', async () => {
    const data = randomBytes(10 * SMALL_BLOCK, 4);
    const failing = compress([data], { level: 6, threads: 2, blockSize: SMALL_BLOCK, __test__failBlock: 3 });
    await expect(failing).rejects.toBeInstanceOf(ParallelGzipError);
    await expect(failing).rejects.toMatchObject({ code: 'PARALLEL_GZIP_FAILED', message: expect.stringContaining('injected failure compressing block 3') });
    expect(liveParallelGzipCompressions()).toBe(0);
  });

  it('rejects invalid options', () => {
    expect(() => createParallelGzip({ level: 0, threads: 2 })).toThrow(RangeError);
    expect(() => createParallelGzip({ level: 10, threads: 2 })).toThrow(RangeError);
    expect(() => createParallelGzip({ level: 6, threads: 0 })).toThrow(RangeError);
    expect(() => createParallelGzip({ level: 6, threads: 2, blockSize: 1024 })).toThrow(RangeError);
  });
});
