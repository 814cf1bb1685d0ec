import { ContentsManifestSchema, type ContentsManifest } from '@db-backup-service/contract';
import { describe, expect, it } from 'vitest';
import { DumpContentsCounter } from './dump-contents.js';

// A small dump in pg_dump's plain layout, with what a line-based counter could get wrong: quoted
// and unicode names, a function body holding CREATE TABLE and COPY lines, COPY values with `\.`
// mid-line and escaped newlines, two blocks of one table, an empty table, headers without an
// owner (--no-owner), large objects as pg_dump 15 writes them (a BLOB entry each) and as 17 and 18
// do (one BLOB METADATA entry for a batch), and constraints of every kind.
const header = (name: string, type: string, schema: string, owner = '; Owner: postgres', data = false) =>
  `--\n-- ${data ? 'Data for ' : ''}Name: ${name}; Type: ${type}; Schema: ${schema}${owner}\n--\n\n`;

const DUMP = [
  '--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n\n',
  header('My Schema', 'SCHEMA', '-'),
  'CREATE SCHEMA "My Schema";\n\n',
  header('trick()', 'FUNCTION', 'public'),
  "CREATE FUNCTION public.trick() RETURNS void\n    LANGUAGE plpgsql\n    AS $$\nBEGIN\nCREATE TABLE x (a int);\nCOPY x FROM stdin;\n\\.\nSELECT pg_catalog.lo_create('1');\nEND\n$$;\n\n",
  header('do_it()', 'PROCEDURE', 'public', ''),
  'CREATE PROCEDURE public.do_it() LANGUAGE sql AS $$ SELECT 1 $$;\n\n',
  header('Tab"le', 'TABLE', 'My Schema'),
  'CREATE TABLE "My Schema"."Tab""le" (a text);\n\n',
  header('tärkeä 表', 'TABLE', 'données', '; Owner: '),
  'CREATE TABLE "données"."tärkeä 表" ("ключ" int);\n\n',
  header('empty', 'TABLE', 'public', '; Owner: -'),
  'CREATE TABLE public.empty (a int);\n\n',
  header('empty_id_seq', 'SEQUENCE', 'public'),
  'CREATE SEQUENCE public.empty_id_seq;\n\n',
  header('v', 'VIEW', 'public'),
  'CREATE VIEW public.v AS SELECT 1;\n\n',
  header('mv', 'MATERIALIZED VIEW', 'public'),
  'CREATE MATERIALIZED VIEW public.mv AS SELECT 1 WITH NO DATA;\n\n',
  header('16423', 'BLOB', '-'),
  "SELECT pg_catalog.lo_create('16423');\n\n\nALTER LARGE OBJECT 16423 OWNER TO postgres;\n\n",
  header('Tab"le', 'TABLE DATA', 'My Schema', '; Owner: postgres', true),
  'COPY "My Schema"."Tab""le" (a) FROM stdin;\nplain\nback\\\\. slash mid-line \\\\.\nmulti\\nline\\nvalue\n\\\\.\n-- Name: fake; Type: TABLE; Schema: public; Owner: postgres\nCOPY x FROM stdin;\n\\.\n\n',
  header('tärkeä 表', 'TABLE DATA', 'données', '; Owner: postgres', true),
  'COPY "données"."tärkeä 表" ("ключ") FROM stdin;\n1\n2\n\\.\n\n',
  header('empty', 'TABLE DATA', 'public', '; Owner: postgres', true),
  'COPY public.empty (a) FROM stdin;\n\\.\n\n',
  header('Tab"le', 'TABLE DATA', 'My Schema', '; Owner: postgres', true),
  'COPY "My Schema"."Tab""le" (a) FROM stdin;\nsecond block\n\\.\n\n',
  header('16424..16426', 'BLOB METADATA', '-'),
  "SELECT pg_catalog.lo_create('16424');\nSELECT pg_catalog.lo_create('16425');\nSELECT pg_catalog.lo_create('16426');\n\n",
  header('16423', 'BLOBS', '-', '; Owner: -', true),
  "BEGIN;\nSELECT pg_catalog.lo_open('16423', 131072);\nSELECT pg_catalog.lo_create('99');\nCOMMIT;\n\n",
  header('Tab"le pk', 'CONSTRAINT', 'My Schema'),
  'ALTER TABLE ONLY "My Schema"."Tab""le"\n    ADD CONSTRAINT pk PRIMARY KEY (a);\n\n',
  header('tärkeä 表 "uniq ü"', 'CONSTRAINT', 'données'),
  'ALTER TABLE ONLY "données"."tärkeä 表"\n    ADD CONSTRAINT "uniq ""ü""" UNIQUE ("ключ");\n\n',
  header('empty no_overlap', 'CONSTRAINT', 'public'),
  'ALTER TABLE ONLY public.empty\n    ADD CONSTRAINT no_overlap EXCLUDE USING btree (a WITH =);\n\n',
  header('empty positive', 'CONSTRAINT', 'public'),
  'ALTER TABLE public.empty\n    ADD CONSTRAINT positive CHECK ((a > 0)) NOT VALID;\n\n',
  header('empty_a_idx', 'INDEX', 'public'),
  'CREATE INDEX empty_a_idx ON public.empty USING btree (a);\n\n',
  header('empty_a_idx', 'INDEX ATTACH', 'public'),
  'ALTER INDEX public.x ATTACH PARTITION public.empty_a_idx;\n\n',
  header('empty fk', 'FK CONSTRAINT', 'public'),
  'ALTER TABLE ONLY public.empty\n    ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES public.empty(a);\n\n',
  header('empty_id_seq', 'SEQUENCE SET', 'public'),
  "SELECT pg_catalog.setval('public.empty_id_seq', 1, false);\n\n",
  header('mv', 'MATERIALIZED VIEW DATA', 'public', '; Owner: postgres', true),
  'REFRESH MATERIALIZED VIEW public.mv;\n\n',
  '--\n-- PostgreSQL database dump complete\n--\n\n',
].join('');

const EXPECTED: ContentsManifest = {
  format: 1,
  tables: [
    { schema: 'My Schema', name: 'Tab"le', rows: 7 },
    { schema: 'données', name: 'tärkeä 表', rows: 2 },
    { schema: 'public', name: 'empty', rows: 0 },
  ],
  largeObjects: 4,
  objects: { tables: 3, sequences: 1, views: 2, functions: 2, indexes: 4 },
};

function count(chunks: Iterable<Buffer>): ContentsManifest {
  const counter = new DumpContentsCounter();
  for (const chunk of chunks) counter.push(chunk);
  return counter.manifest();
}

describe('DumpContentsCounter', () => {
  const bytes = Buffer.from(DUMP);

  it('counts rows per table, large objects and objects of a dump in one chunk', () => {
    const manifest = count([bytes]);
    expect(manifest).toEqual(EXPECTED);
    expect(ContentsManifestSchema.parse(manifest)).toEqual(manifest);
  });

  it('counts the same wherever the dump is split in two', () => {
    for (let at = 0; at <= bytes.length; at++) {
      const manifest = count([bytes.subarray(0, at), bytes.subarray(at)]);
      if (JSON.stringify(manifest) !== JSON.stringify(EXPECTED)) expect({ at, manifest }).toEqual({ at, manifest: EXPECTED });
    }
  });

  it('counts the same in 1-byte chunks and in chunks of every small size', () => {
    for (const size of [1, 2, 3, 5, 7, 13, 64]) {
      const chunks: Buffer[] = [];
      for (let at = 0; at < bytes.length; at += size) chunks.push(bytes.subarray(at, at + size));
      expect(count(chunks)).toEqual(EXPECTED);
    }
  });

  it('parses a COPY header whose line is longer than what is kept of a line', () => {
    const columns = Array.from({ length: 5000 }, (_, i) => `"column number ${i}"`).join(', ');
    const dump = `${header('wide', 'TABLE DATA', 'public', '', true)}COPY public.wide (${columns}) FROM stdin;\na\nb\n\\.\n`;
    expect(count([Buffer.from(dump)]).tables).toEqual([{ schema: 'public', name: 'wide', rows: 2 }]);
  });

  it('reports an empty manifest for no input, and the rows so far of a block cut short', () => {
    expect(count([])).toEqual({ format: 1, tables: [], largeObjects: 0, objects: { tables: 0, sequences: 0, views: 0, functions: 0, indexes: 0 } });
    const cut = `${header('t', 'TABLE DATA', 'public', '', true)}COPY public.t (a) FROM stdin;\n1\n2\n`;
    expect(count([Buffer.from(cut)]).tables).toEqual([{ schema: 'public', name: 't', rows: 2 }]);
  });
});
