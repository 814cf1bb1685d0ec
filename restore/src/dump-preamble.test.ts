import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { PreambleAdapter, readDumpHead, readGzipDumpHead } from './dump-preamble.js';

// The head of a plain dump by pg_dump 17.12 of a PostgreSQL 16 server, as written.
const HEAD_17 = [
  '--',
  '-- PostgreSQL database dump',
  '--',
  '',
  '\\restrict 3Qm1rVn0Ab8oG0cXlWq2yI5uH7tN9eK4sD6fJ1pL3zR8vB2wC5xM0aT7gY9hU4i',
  '',
  '-- Dumped from database version 16.14',
  '-- Dumped by pg_dump version 17.12 (Debian 17.12-0+deb13u1)',
  '',
  'SET statement_timeout = 0;',
  'SET lock_timeout = 0;',
  'SET idle_in_transaction_session_timeout = 0;',
  'SET transaction_timeout = 0;',
  "SET client_encoding = 'UTF8';",
  'SET standard_conforming_strings = on;',
  "SELECT pg_catalog.set_config('search_path', '', false);",
  'SET check_function_bodies = false;',
  'SET xmloption = content;',
  'SET client_min_messages = warning;',
  'SET row_security = off;',
  'SET myext.setting = 1;',
  '',
  "SET default_tablespace = '';",
  '',
  'SET default_table_access_method = heap;',
  '',
  '--',
  '-- Name: kinds; Type: TABLE; Schema: public; Owner: app',
  '--',
  '',
  'CREATE TABLE public.kinds (',
  '    t text',
  ');',
  '',
].join('\n');

// After the preamble: a setting that looks like the dropped one, and bytes that are not UTF-8.
const BODY = Buffer.concat([
  Buffer.from('COPY public.kinds (t) FROM stdin;\nSET transaction_timeout = 0;\n'),
  Buffer.from([0xff, 0xfe, 0x00, 0xc3, 0x28, 0x0a]),
  Buffer.from('\\.\n\n-- PostgreSQL database dump complete\n\n\\unrestrict 3Qm1\n'),
]);
const DUMP = Buffer.concat([Buffer.from(HEAD_17), BODY]);

// PostgreSQL 16's parameters that the dump above uses (pg_settings has ~350).
const PG16 = [
  'statement_timeout', 'lock_timeout', 'idle_in_transaction_session_timeout', 'client_encoding', 'standard_conforming_strings',
  'check_function_bodies', 'xmloption', 'client_min_messages', 'row_security', 'default_tablespace', 'default_table_access_method',
];

/** The adapted dump, and the lines its onDropped heard of, in order. */
async function adapt(input: Buffer, chunkBytes: number, known: string[]): Promise<{ out: Buffer; dropped: string[] }> {
  const chunks: Buffer[] = [];
  for (let i = 0; i < input.length; i += chunkBytes) chunks.push(input.subarray(i, i + chunkBytes));
  const dropped: string[] = [];
  const adapter = new PreambleAdapter({ knownParameters: known, onDropped: (l) => dropped.push(l) });
  const out = await buffer(Readable.from(chunks).pipe(adapter));
  return { out, dropped };
}

describe('PreambleAdapter', () => {
  it("drops the preamble's SET lines for parameters the target lacks, and nothing else", async () => {
    for (const size of [1, 7, 64, DUMP.length]) {
      const { out, dropped } = await adapt(DUMP, size, PG16);
      expect(dropped).toEqual(['SET transaction_timeout = 0;']);
      expect(out.equals(Buffer.from(DUMP.toString('latin1').replace('SET transaction_timeout = 0;\n', ''), 'latin1'))).toBe(true);
      // The body (after the first statement) is byte for byte the same, bytes that are not UTF-8 included.
      expect(out.subarray(out.length - BODY.length).equals(BODY)).toBe(true);
    }
  });

  it('passes a dump through unchanged when the target has every parameter', async () => {
    const { out, dropped } = await adapt(DUMP, 13, [...PG16, 'Transaction_Timeout']);
    expect(dropped).toEqual([]);
    expect(out.equals(DUMP)).toBe(true);
  });

  it('stops looking at the first statement, and at a line too long for a preamble', async () => {
    const late = Buffer.from('--\nCREATE TABLE t (a int);\nSET transaction_timeout = 0;\n');
    expect((await adapt(late, 5, PG16)).out.equals(late)).toBe(true);
    const long = Buffer.concat([Buffer.from('-- '), Buffer.alloc(100_000, 0x61), Buffer.from('\nSET transaction_timeout = 0;\n')]);
    const { out, dropped } = await adapt(long, 4096, PG16);
    expect(dropped).toEqual([]);
    expect(out.equals(long)).toBe(true);
  });

  it('keeps a last line without a newline', async () => {
    const { out, dropped } = await adapt(Buffer.from('SET lock_timeout = 0;\nSET transaction_timeout = 0;'), 3, PG16);
    expect(out.toString()).toBe('SET lock_timeout = 0;\n');
    expect(dropped).toEqual(['SET transaction_timeout = 0;']);
  });
});

describe('readDumpHead', () => {
  it("reads pg_dump's and the server's versions and whether the dump opens with \\restrict", () => {
    const head = readDumpHead(DUMP.subarray(0, 2000));
    expect(head.pgDumpVersion?.text).toBe('17.12');
    expect(head.serverVersion?.text).toBe('16.14');
    expect(head.restrict).toBe(true);
    const old = readDumpHead(Buffer.from('--\n-- Dumped from database version 15.4\n-- Dumped by pg_dump version 15.4\n\nSET x = 1;\nCREATE TABLE t ();\n'));
    expect([old.pgDumpVersion?.text, old.restrict]).toEqual(['15.4', false]);
    expect(readDumpHead(Buffer.from('CREATE TABLE t ();\n-- Dumped by pg_dump version 17.1\n'))).toEqual({ pgDumpVersion: null, serverVersion: null, restrict: false });
  });
});

describe('readGzipDumpHead', () => {
  it('reads the head of a gzipped dump from its first compressed bytes', () => {
    const random = randomBytes(500_000);
    const compressed = gzipSync(Buffer.concat([DUMP, random]));
    expect(compressed.length).toBeGreaterThan(64 * 1024);
    const head = readGzipDumpHead(compressed.subarray(0, 64 * 1024));
    expect([head.pgDumpVersion?.text, head.serverVersion?.text, head.restrict]).toEqual(['17.12', '16.14', true]);
    expect(readGzipDumpHead(Buffer.from('not gzip'))).toEqual({ pgDumpVersion: null, serverVersion: null, restrict: false });
  });
});
