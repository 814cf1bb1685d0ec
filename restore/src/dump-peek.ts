import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { readGzipDumpHead, type DumpHead } from './dump-preamble.js';

/** The compressed bytes the head is read from: the header and preamble are well under 4 KB uncompressed. */
export const PEEK_BYTES = 64 * 1024;

/** Reads up to `bytes` from the start of `input` (fewer when it ends first), leaving the rest unread. */
function readStart(input: Readable, bytes: number): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let have = 0;
    const finish = (err?: unknown): void => {
      input.off('readable', onReadable);
      input.off('end', onEnd);
      input.off('error', onError);
      if (err === undefined) resolve(Buffer.concat(chunks));
      else reject(err instanceof Error ? err : new Error(String(err)));
    };
    const onReadable = (): void => {
      for (let chunk: Buffer | null; have < bytes && (chunk = input.read() as Buffer | null) !== null; ) {
        chunks.push(chunk);
        have += chunk.length;
      }
      if (have >= bytes) finish();
    };
    const onEnd = (): void => finish();
    const onError = (err: unknown): void => finish(err);
    input.on('readable', onReadable);
    input.once('end', onEnd);
    input.once('error', onError);
  });
}

/**
 * What the dump's head says (pg_dump version, `\restrict`), known before anything is created, and
 * the dump again from its first byte: the peeked start is replayed in front of the rest, so a
 * stream (a download) is read once and nothing goes to a temp file.
 */
export async function peekDumpHead(dump: Readable): Promise<{ head: DumpHead; dump: Readable }> {
  const start = await readStart(dump, PEEK_BYTES);
  const replay = new PassThrough();
  replay.write(start);
  // The pipeline ties both ends: the source's error reaches the reader through `replay`, and a
  // reader that destroys `replay` (a failed restore, an abort) destroys the source (a download).
  pipeline(dump, replay).catch(() => undefined);
  return { head: readGzipDumpHead(start), dump: replay };
}
