import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { BackupError } from './backup-error.js';
import { DumpTrailerObserver } from './dump-trailer.js';

// The check itself is tested with the contract (contract/src/dump-trailer.test.ts); here, what the
// observer keeps of a stream and hands to it.
const KEY = 'ijC6hCnpTEufVYEF2bqRPdtPI2XesUN7rRb189kp5Be9zWX1zOrLNUf5g6vktm4';
// The exact ends of a dump by pg_dump 15.18 (which opens with \restrict and closes with \unrestrict).
const HEAD_15_18 = `--\n-- PostgreSQL database dump\n--\n\n\\restrict ${KEY}\n\n-- Dumped from database version 15.18\n`;
const TAIL_15_18 = `SET row_security = off;\n\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict ${KEY}\n\n`;
// Before 15.14/16.10/17.6 there is no \restrict / \unrestrict.
const TAIL_OLD = 'COPY public.t (id) FROM stdin;\n1\n\\.\n\n\n--\n-- PostgreSQL database dump complete\n--\n\n';

async function observe(chunks: string[], keepBytes?: number): Promise<DumpTrailerObserver> {
  const observer = new DumpTrailerObserver(keepBytes === undefined ? {} : { keepBytes });
  let passed = 0;
  await pipeline(
    Readable.from(chunks.map((c) => Buffer.from(c))),
    observer,
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        passed += chunk.length;
        callback();
      },
    }),
  );
  expect(passed).toBe(observer.bytes);
  return observer;
}

describe('DumpTrailerObserver', () => {
  it('passes every byte through and keeps only a bounded tail', async () => {
    const body = 'x'.repeat(100_000) + '\n';
    const observer = await observe([HEAD_15_18, body, body, TAIL_15_18], 1024);
    expect(observer.bytes).toBe(HEAD_15_18.length + 2 * body.length + TAIL_15_18.length);
    expect(observer.tail.length).toBe(1024);
    expect(observer.tail.endsWith(TAIL_15_18)).toBe(true);
    expect(() => observer.assertCompleteDump()).not.toThrow();
  });

  it('finds the trailer when it is split over many small chunks', async () => {
    const text = HEAD_15_18 + 'SELECT 1;\n' + TAIL_15_18;
    const observer = await observe(text.split(''));
    expect(observer.checkDumpEnding()).toEqual({ ok: true });
  });

  it('throws DUMP_INCOMPLETE for truncated and for empty output', async () => {
    const truncated = await observe([HEAD_15_18, 'COPY public.t (id) FROM stdin;\n1\n']);
    const error = (() => {
      try {
        truncated.assertCompleteDump();
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(error).toBeInstanceOf(BackupError);
    expect(error).toMatchObject({ code: 'DUMP_INCOMPLETE', message: 'pg_dump output is incomplete: no completion trailer' });

    const empty = await observe([]);
    expect(() => empty.assertCompleteDump()).toThrow(/no completion trailer/);
  });

  it('does not choke on a multi-byte character cut at the tail boundary', async () => {
    const observer = await observe(['€'.repeat(2000), TAIL_OLD], 100);
    expect(observer.checkDumpEnding()).toEqual({ ok: true });
  });
});
