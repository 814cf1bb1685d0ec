import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import type { ZstdDecompress } from 'node:zlib';
import type { CompressionFormat } from '@db-backup-service/contract';

// Large output chunks: few trips back from libuv's pool for output that is mostly hashed or piped.
const DECOMPRESS_CHUNK_BYTES = 256 * 1024;

const ZSTD_MAGIC = 0xfd2fb528;
const BLOCK_HEADER_BYTES = 3;
const CHECKSUM_BYTES = 4;
// RFC 8878 3.1.1.2.4: no block is larger than 128 KiB (nor than the window, which this does not check).
const MAX_BLOCK_BYTES = 128 * 1024;
const DICT_ID_BYTES = [0, 1, 2, 4] as const;
const BLOCK_TYPES = ['raw', 'RLE', 'compressed', 'reserved'] as const;

type Step =
  | { kind: 'magic' }
  | { kind: 'descriptor' }
  | { kind: 'header-rest'; bytes: number }
  | { kind: 'block-header' }
  | { kind: 'block-content'; last: boolean }
  | { kind: 'checksum' }
  | { kind: 'after-frame' };

/**
 * Walks the structure of exactly one zstd frame (RFC 8878 section 3.1.1) as bytes arrive, in chunks
 * cut anywhere: magic, frame header, block headers, block contents skipped by their size, the
 * content checksum. It decompresses nothing, so it costs little next to the decoder; it is there
 * because Node's decoder stops at the end of the first frame and ignores whatever follows
 * (nodejs/node#64741), so a second frame, a skippable frame or trailing bytes would pass unseen.
 */
class ZstdFrameWalker {
  #step: Step = { kind: 'magic' };
  /** Bytes of the current header being collected (magic, frame header, block header, checksum). */
  #header = Buffer.alloc(14);
  #have = 0;
  /** Block content bytes still to skip. */
  #skip = 0;
  /** Absolute offset of the next byte fed. */
  #offset = 0;
  /** Offset where the current header began, for messages. */
  #headerStart = 0;

  /** Feeds the next chunk; returns what is wrong (naming the byte offset), or null. */
  feed(chunk: Buffer): string | null {
    let at = 0;
    while (at < chunk.length) {
      const step = this.#step;
      if (step.kind === 'block-content') {
        const take = Math.min(this.#skip, chunk.length - at);
        at += take;
        this.#offset += take;
        this.#skip -= take;
        if (this.#skip === 0) this.#step = step.last ? { kind: 'checksum' } : { kind: 'block-header' };
        continue;
      }
      if (step.kind === 'after-frame') {
        // Up to 4 bytes say whether it is another frame, a skippable frame or other trailing bytes.
        const take = Math.min(4 - this.#have, chunk.length - at);
        chunk.copy(this.#header, this.#have, at, at + take);
        this.#have += take;
        at += take;
        this.#offset += take;
        if (this.#have === 4) return this.#afterFrameProblem();
        continue;
      }
      const need = this.#headerBytes(step);
      const take = Math.min(need - this.#have, chunk.length - at);
      if (this.#have === 0) this.#headerStart = this.#offset;
      chunk.copy(this.#header, this.#have, at, at + take);
      this.#have += take;
      at += take;
      this.#offset += take;
      if (this.#have < need) continue;
      this.#have = 0;
      const problem = this.#headerDone(step);
      if (problem !== null) return problem;
    }
    return null;
  }

  /** At the end of the input: returns what is wrong (a frame cut short, bytes after it), or null. */
  end(): string | null {
    const step = this.#step;
    if (step.kind === 'after-frame') return this.#have === 0 ? null : this.#afterFrameProblem();
    if (step.kind === 'magic' && this.#have === 0 && this.#offset === 0) return 'the zstd stream is empty (no frame)';
    return `the zstd frame is truncated at byte ${this.#offset} (the input ended inside ${describeStep(step)})`;
  }

  #headerBytes(step: Exclude<Step, { kind: 'block-content' | 'after-frame' }>): number {
    switch (step.kind) {
      case 'magic':
        return 4;
      case 'descriptor':
        return 1;
      case 'header-rest':
        return step.bytes;
      case 'block-header':
        return BLOCK_HEADER_BYTES;
      case 'checksum':
        return CHECKSUM_BYTES;
    }
  }

  #headerDone(step: Exclude<Step, { kind: 'block-content' | 'after-frame' }>): string | null {
    const at = this.#headerStart;
    switch (step.kind) {
      case 'magic': {
        const magic = this.#header.readUInt32LE(0);
        if (magic !== ZSTD_MAGIC) return `not a zstd frame: bad magic number 0x${hex(magic)} at byte ${at}`;
        this.#step = { kind: 'descriptor' };
        return null;
      }
      case 'descriptor': {
        const descriptor = this.#header[0]!;
        if ((descriptor & 0x08) !== 0) return `invalid zstd frame header at byte ${at}: the reserved bit is set`;
        // The service always writes the XXH64 content checksum; without it the content cannot be verified.
        if ((descriptor & 0x04) === 0) return `the zstd frame at byte ${at} has no content checksum, so its content cannot be verified`;
        const fcsFlag = descriptor >> 6;
        const singleSegment = (descriptor & 0x20) !== 0;
        const fcsBytes = fcsFlag === 0 ? (singleSegment ? 1 : 0) : 1 << fcsFlag;
        const rest = (singleSegment ? 0 : 1) + DICT_ID_BYTES[descriptor & 0x03]! + fcsBytes;
        this.#step = rest === 0 ? { kind: 'block-header' } : { kind: 'header-rest', bytes: rest };
        return null;
      }
      case 'header-rest':
        this.#step = { kind: 'block-header' };
        return null;
      case 'block-header': {
        const header = this.#header.readUIntLE(0, BLOCK_HEADER_BYTES);
        const last = (header & 1) === 1;
        const type = BLOCK_TYPES[(header >> 1) & 3]!;
        const size = header >>> 3;
        if (type === 'reserved') return `corrupt zstd block header at byte ${at}: reserved block type`;
        if (size > MAX_BLOCK_BYTES) return `corrupt zstd block header at byte ${at}: block size ${size} is over the 128 KiB maximum`;
        // An RLE block holds one byte, repeated `size` times when decoded.
        const content = type === 'RLE' ? 1 : size;
        if (content === 0) {
          this.#step = last ? { kind: 'checksum' } : { kind: 'block-header' };
        } else {
          this.#skip = content;
          this.#step = { kind: 'block-content', last };
        }
        return null;
      }
      case 'checksum':
        this.#step = { kind: 'after-frame' };
        return null;
    }
  }

  #afterFrameProblem(): string {
    const at = this.#offset - this.#have;
    if (this.#have === 4) {
      const magic = this.#header.readUInt32LE(0);
      if (magic === ZSTD_MAGIC) return `a second zstd frame at byte ${at}: a backup is exactly one frame`;
      if (magic >>> 4 === 0x184d2a5) return `a skippable zstd frame at byte ${at}: a backup is exactly one frame`;
    }
    return `trailing bytes after the zstd frame at byte ${at}`;
  }
}

function describeStep(step: Step): string {
  switch (step.kind) {
    case 'magic':
      return 'the magic number';
    case 'descriptor':
    case 'header-rest':
      return 'the frame header';
    case 'block-header':
      return 'a block header';
    case 'block-content':
      return 'a block';
    case 'checksum':
      return 'the content checksum';
    case 'after-frame':
      return 'bytes after the frame';
  }
}

function hex(n: number): string {
  return n.toString(16).padStart(8, '0');
}

/**
 * A pass-through for a zstd-compressed stream that fails (is destroyed with an Error naming the byte
 * offset) unless the stream is exactly one zstd frame with a content checksum and nothing after it:
 * a bad magic number, a reserved block type, a second or skippable frame, trailing bytes, a frame
 * without a checksum, or a frame cut short at the end. It walks the frame and block headers without
 * decompressing; the decoder behind it checks the blocks' contents and the checksum.
 */
export class ZstdFrameCheck extends Transform {
  readonly #walker = new ZstdFrameWalker();

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const problem = this.#walker.feed(chunk);
    if (problem !== null) return callback(new Error(problem));
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    const problem = this.#walker.end();
    callback(problem === null ? null : new Error(problem));
  }
}

/**
 * zstd decompression behind a ZstdFrameCheck, as one Transform: a stream that is not exactly one
 * whole, checksummed frame fails instead of ending short.
 */
class CheckedZstdDecompress extends Transform {
  readonly #check = new ZstdFrameWalker();
  readonly #decoder: ZstdDecompress;

  constructor() {
    super();
    this.#decoder = createZstdDecompress({ chunkSize: DECOMPRESS_CHUNK_BYTES });
    this.#decoder.on('data', (chunk: Buffer) => this.push(chunk));
    this.#decoder.once('error', (error: Error) => this.destroy(error));
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const problem = this.#check.feed(chunk);
    if (problem !== null) return callback(new Error(problem));
    // The decoder's own backpressure holds the writer back.
    if (this.#decoder.write(chunk)) callback();
    else this.#decoder.once('drain', () => callback());
  }

  override _flush(callback: TransformCallback): void {
    const problem = this.#check.end();
    if (problem !== null) return callback(new Error(problem));
    this.#decoder.once('end', () => callback());
    this.#decoder.end();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#decoder.destroy();
    callback(error);
  }
}

/**
 * The decompressor for a backup's format: gunzip, or zstd with the single-frame check in front.
 * Either errors (never ends short) on a truncated or corrupt stream; zstd also on extra frames or
 * trailing bytes, and on a frame without a content checksum.
 */
export function createDecompressor(format: CompressionFormat): Transform {
  return format === 'zstd' ? new CheckedZstdDecompress() : createGunzip({ chunkSize: DECOMPRESS_CHUNK_BYTES });
}
