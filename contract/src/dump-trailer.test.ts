import { describe, expect, it } from 'vitest';
import { checkDumpEnding } from './dump-trailer.js';

const KEY = 'ijC6hCnpTEufVYEF2bqRPdtPI2XesUN7rRb189kp5Be9zWX1zOrLNUf5g6vktm4';
// The exact ends of a dump by pg_dump 15.18 (which opens with \restrict and closes with \unrestrict).
const HEAD_15_18 = `--\n-- PostgreSQL database dump\n--\n\n\\restrict ${KEY}\n\n-- Dumped from database version 15.18\n`;
const TAIL_15_18 = `SET row_security = off;\n\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict ${KEY}\n\n`;
// Before 15.14/16.10/17.6 there is no \restrict / \unrestrict.
const HEAD_OLD = '--\n-- PostgreSQL database dump\n--\n\n-- Dumped from database version 15.4\n';
const TAIL_OLD = 'COPY public.t (id) FROM stdin;\n1\n\\.\n\n\n--\n-- PostgreSQL database dump complete\n--\n\n';

describe('checkDumpEnding', () => {
  it('accepts a pg_dump 15.18 dump with \\unrestrict after the trailer', () => {
    expect(checkDumpEnding(HEAD_15_18, TAIL_15_18)).toEqual({ ok: true });
  });

  it('accepts an older dump without \\restrict', () => {
    expect(checkDumpEnding(HEAD_OLD, TAIL_OLD)).toEqual({ ok: true });
    expect(checkDumpEnding(HEAD_OLD, TAIL_OLD.trimEnd())).toEqual({ ok: true });
    expect(checkDumpEnding(HEAD_OLD, `${TAIL_OLD}\n\n\n`)).toEqual({ ok: true });
  });

  it('rejects output cut before the trailer', () => {
    const cut = TAIL_OLD.slice(0, TAIL_OLD.indexOf('-- PostgreSQL database dump complete'));
    expect(checkDumpEnding(HEAD_OLD, cut)).toEqual({ ok: false, reason: 'pg_dump output is incomplete: no completion trailer' });
    expect(checkDumpEnding(HEAD_OLD, 'COPY public.t (id) FROM stdin;\n1\n2')).toMatchObject({ ok: false });
    expect(checkDumpEnding(HEAD_OLD, '-- PostgreSQL database dump compl')).toMatchObject({ ok: false });
  });

  it('rejects text after the trailer other than blank lines, -- and one \\unrestrict', () => {
    expect(checkDumpEnding(HEAD_OLD, `${TAIL_OLD}SELECT 1;\n`)).toMatchObject({ ok: false });
    expect(checkDumpEnding(HEAD_15_18, `${TAIL_15_18}\\unrestrict ${KEY}\n`)).toMatchObject({ ok: false });
    expect(checkDumpEnding(HEAD_OLD, `${TAIL_OLD}\\unrestrict bad key!\n`)).toMatchObject({ ok: false });
  });

  it('rejects a dump opened with \\restrict whose \\unrestrict is missing or different', () => {
    const withoutUnrestrict = TAIL_15_18.slice(0, TAIL_15_18.indexOf('\\unrestrict'));
    expect(checkDumpEnding(HEAD_15_18, withoutUnrestrict)).toMatchObject({ ok: false, reason: expect.stringMatching(/\\unrestrict/) });
    expect(checkDumpEnding(HEAD_15_18, TAIL_15_18.replace(KEY, 'otherkey'))).toMatchObject({ ok: false });
  });
});
