// What a plain pg_dump holds, counted as it streams past: the rows of every COPY block, the large
// objects and the objects its table-of-contents headers announce. The backup writes the result as
// `<id>.contents.json`; a drill restores the dump and compares the database with it.
//
// Everything is decided on bytes, line by line, with lines split on the newline byte wherever the
// chunks end. COPY data is never decoded: inside a block only line ends and the `\.` line matter,
// found with Buffer.indexOf (native), so the backup path pays little for the counting.
import type { ContentsManifest } from '@db-backup-service/contract';
import type { ClientBase } from 'pg';

const NEWLINE = 0x0a;
const BACKSLASH = 0x5c;
const DOT = 0x2e;
const DASH = 0x2d;
const UPPER_C = 0x43;
const UPPER_S = 0x53;
const SPACE = 0x20;

/**
 * How much of a line outside COPY data is kept for parsing. The lines parsed (TOC headers, COPY
 * headers, `lo_create`, `ADD CONSTRAINT`) are decided by their start; a longer line (a function's
 * signature of thousands of arguments, a large object's `lowrite`) is parsed on its first 64 KB.
 */
const LINE_KEEP_BYTES = 64 * 1024;
/** Inside COPY data only the first two bytes of a line matter: is it `\.`? */
const COPY_LINE_KEEP_BYTES = 2;

const COPY_PREFIX = Buffer.from('COPY ');
const LO_CREATE_PREFIX = Buffer.from("SELECT pg_catalog.lo_create('");
const HEADER_PREFIX = Buffer.from('-- Name: ');
const DATA_HEADER_PREFIX = Buffer.from('-- Data for Name: ');

/**
 * A TOC header: `-- [Data for ]Name: <name>; Type: <TYPE>; Schema: <schema>[; Owner: <owner>]`
 * (no `; Owner:` with --no-owner; `; Tablespace:` may follow). pg_dump replaces newlines in names
 * with spaces here, so a header is always one line. The type is upper-case words.
 */
const HEADER = /^-- (?:Data for )?Name: .*?; Type: ([A-Z][A-Z ]*?); Schema: (.*?)(?:; Owner: .*|; Tablespace: .*)?$/s;

/** Which manifest count each TOC type adds to (CONSTRAINT only for the kinds that make an index). */
const OBJECT_OF_TYPE: Readonly<Record<string, keyof ContentsManifest['objects']>> = {
  TABLE: 'tables',
  SEQUENCE: 'sequences',
  VIEW: 'views',
  'MATERIALIZED VIEW': 'views',
  FUNCTION: 'functions',
  PROCEDURE: 'functions',
  INDEX: 'indexes',
};

/** TOC types whose entry writes `lo_create` lines: one per large object (pg_dump <= 16), or one per batch of them (17+). */
const LARGE_OBJECT_TYPES = new Set(['BLOB', 'BLOB METADATA']);

/** The constraint kinds that are backed by an index (pg_index has a row for each). */
const INDEX_CONSTRAINT = /^(?:PRIMARY KEY|UNIQUE|EXCLUDE)\b/;

/**
 * Counts what an uncompressed plain dump holds as its chunks pass (`push`), in any chunking.
 *
 * A COPY header or `lo_create` counts only inside the TOC entry that writes it (TABLE DATA, BLOB,
 * BLOB METADATA): a function body may hold a line `COPY x FROM stdin;` or `CREATE TABLE x`, but it
 * sits in a FUNCTION entry. Objects are counted from the headers, never from CREATE lines.
 */
export class DumpContentsCounter {
  readonly #tables = new Map<string, { schema: string; name: string; rows: number }>();
  readonly #objects: { -readonly [K in keyof ContentsManifest['objects']]: number } = { tables: 0, sequences: 0, views: 0, functions: 0, indexes: 0 };
  #largeObjects = 0;

  /** The start of the line the last chunk ended in (bytes up to the keep limit), and its full length so far. */
  readonly #partial = Buffer.alloc(LINE_KEEP_BYTES);
  #partialBytes = 0;
  #lineBytes = 0;

  /** The type of the TOC entry being read, and its schema (the COPY header's fallback). */
  #entryType: string | null = null;
  #entrySchema = '';
  /** A CONSTRAINT entry whose `ADD CONSTRAINT` line has not come yet. */
  #constraintPending = false;
  /** The table whose COPY data is being read (null: outside COPY data), and its rows so far. */
  #copyTable: { schema: string; name: string; rows: number } | null = null;
  #copyRows = 0;

  push(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.#copyTable !== null) pos = this.#copyData(chunk, pos);
      else pos = this.#statements(chunk, pos);
    }
  }

  /** What was counted so far; after the whole dump, its contents. */
  manifest(): ContentsManifest {
    const tables = [...this.#tables.values()].map((t) => ({ ...t }));
    // A dump cut inside a block (never stored: its trailer is missing) still reports what it held.
    if (this.#copyTable !== null) {
      const current = tables.find((t) => t.schema === this.#copyTable?.schema && t.name === this.#copyTable.name);
      if (current) current.rows += this.#copyRows;
    }
    return { format: 1, tables, largeObjects: this.#largeObjects, objects: { ...this.#objects } };
  }

  /** Counts COPY rows from `pos` up to the block's `\.` line or the chunk's end; returns where it stopped. */
  #copyData(chunk: Buffer, pos: number): number {
    let rows = this.#copyRows;
    try {
      for (;;) {
        const end = chunk.indexOf(NEWLINE, pos);
        if (end === -1) {
          this.#keep(chunk, pos, chunk.length, COPY_LINE_KEEP_BYTES);
          return chunk.length;
        }
        let terminator: boolean;
        if (this.#lineBytes === 0) {
          terminator = end - pos === 2 && chunk[pos] === BACKSLASH && chunk[pos + 1] === DOT;
        } else {
          this.#keep(chunk, pos, end, COPY_LINE_KEEP_BYTES);
          terminator = this.#lineBytes === 2 && this.#partial[0] === BACKSLASH && this.#partial[1] === DOT;
          this.#partialBytes = 0;
          this.#lineBytes = 0;
        }
        pos = end + 1;
        if (terminator) {
          this.#endCopy(rows);
          rows = 0;
          return pos;
        }
        rows++;
      }
    } finally {
      this.#copyRows = rows;
    }
  }

  /** Reads lines outside COPY data from `pos` until a COPY block starts or the chunk ends. */
  #statements(chunk: Buffer, pos: number): number {
    while (pos < chunk.length && this.#copyTable === null) {
      const end = chunk.indexOf(NEWLINE, pos);
      if (end === -1) {
        this.#keep(chunk, pos, chunk.length, LINE_KEEP_BYTES);
        return chunk.length;
      }
      let line: Buffer;
      if (this.#lineBytes === 0) {
        line = chunk.subarray(pos, Math.min(end, pos + LINE_KEEP_BYTES));
      } else {
        this.#keep(chunk, pos, end, LINE_KEEP_BYTES);
        line = this.#partial.subarray(0, this.#partialBytes);
        this.#partialBytes = 0;
        this.#lineBytes = 0;
      }
      this.#line(line);
      pos = end + 1;
    }
    return pos;
  }

  /** Adds `chunk[from, to)` to the line in progress, keeping at most `limit` bytes of it. */
  #keep(chunk: Buffer, from: number, to: number, limit: number): void {
    const room = limit - this.#partialBytes;
    if (room > 0) this.#partialBytes += chunk.copy(this.#partial, this.#partialBytes, from, Math.min(to, from + room));
    this.#lineBytes += to - from;
  }

  /** One line outside COPY data (without its newline, cut at the keep limit). */
  #line(line: Buffer): void {
    const first = line[0];
    if (first === DASH) {
      if (startsWith(line, HEADER_PREFIX) || startsWith(line, DATA_HEADER_PREFIX)) this.#header(line.toString('utf8'));
    } else if (first === UPPER_C) {
      if (this.#entryType === 'TABLE DATA' && startsWith(line, COPY_PREFIX)) this.#startCopy(line.toString('utf8'));
    } else if (first === UPPER_S) {
      if (this.#entryType !== null && LARGE_OBJECT_TYPES.has(this.#entryType) && startsWith(line, LO_CREATE_PREFIX)) this.#largeObjects++;
    } else if (first === SPACE && this.#constraintPending) {
      const text = line.toString('utf8').trimStart();
      if (text.startsWith('ADD CONSTRAINT ')) {
        this.#constraintPending = false;
        const afterName = skipIdentifier(text, 'ADD CONSTRAINT '.length);
        if (afterName !== -1 && INDEX_CONSTRAINT.test(text.slice(afterName).trimStart())) this.#objects.indexes++;
      }
    }
  }

  #header(text: string): void {
    const match = HEADER.exec(text);
    if (!match) return;
    const type = match[1] ?? '';
    this.#entryType = type;
    this.#entrySchema = match[2] ?? '';
    this.#constraintPending = type === 'CONSTRAINT';
    const counted = OBJECT_OF_TYPE[type];
    if (counted !== undefined) this.#objects[counted]++;
  }

  #startCopy(text: string): void {
    const table = parseCopyTable(text, this.#entrySchema);
    if (table === null) return;
    const key = `${table.schema}\u0000${table.name}`;
    let entry = this.#tables.get(key);
    if (!entry) {
      entry = { ...table, rows: 0 };
      this.#tables.set(key, entry);
    }
    this.#copyTable = entry;
    this.#copyRows = 0;
  }

  #endCopy(rows: number): void {
    if (this.#copyTable) this.#copyTable.rows += rows;
    this.#copyTable = null;
    this.#copyRows = 0;
    // One COPY per TABLE DATA entry: what follows until the next header is not data.
    this.#entryType = null;
  }
}

function startsWith(line: Buffer, prefix: Buffer): boolean {
  return line.length >= prefix.length && line.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}

/**
 * The table of `COPY <schema>.<table> (<columns>) FROM stdin;` as the catalog names it: each part
 * either a plain identifier or `"..."` with `""` for a quote. An unqualified name (pg_dump before
 * 2018's search_path fix) takes the schema of its TOC header.
 */
function parseCopyTable(line: string, headerSchema: string): { schema: string; name: string } | null {
  const first = readIdentifier(line, COPY_PREFIX.length);
  if (first === null) return null;
  if (line[first.end] !== '.') return { schema: headerSchema, name: first.value };
  const second = readIdentifier(line, first.end + 1);
  return second === null ? null : { schema: first.value, name: second.value };
}

function readIdentifier(text: string, start: number): { value: string; end: number } | null {
  if (text[start] === '"') {
    let value = '';
    let pos = start + 1;
    for (;;) {
      const quote = text.indexOf('"', pos);
      if (quote === -1) return null;
      value += text.slice(pos, quote);
      if (text[quote + 1] !== '"') return { value, end: quote + 1 };
      value += '"';
      pos = quote + 2;
    }
  }
  let end = start;
  while (end < text.length && !' .(;'.includes(text[end] ?? '')) end++;
  return end === start ? null : { value: text.slice(start, end), end };
}

/** The index just past the identifier at `start`, or -1. */
function skipIdentifier(text: string, start: number): number {
  return readIdentifier(text, start)?.end ?? -1;
}

/** The catalog's side of a manifest's object counts, plus its large objects. */
export interface CatalogObjects {
  readonly objects: ContentsManifest['objects'];
  readonly largeObjects: number;
}

/**
 * Counts in the connected database what DumpContentsCounter counts in its dump (table in
 * specs/009-restore-drills/design.md): leaving out system schemas and members of extensions (their
 * objects come from CREATE EXTENSION, not from the dump's entries), and the indexes of such tables.
 */
export async function countCatalogObjects(client: Pick<ClientBase, 'query'>): Promise<CatalogObjects> {
  const result = await client.query<Record<'tables' | 'sequences' | 'views' | 'functions' | 'indexes' | 'large_objects', string>>(CATALOG_COUNTS_SQL);
  const row = result.rows[0];
  if (!row) throw new Error('the catalog count query returned no row');
  return {
    objects: { tables: Number(row.tables), sequences: Number(row.sequences), views: Number(row.views), functions: Number(row.functions), indexes: Number(row.indexes) },
    largeObjects: Number(row.large_objects),
  };
}

const USER_NAMESPACE = `
  n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'`;

function notExtensionMember(catalog: string, oid: string): string {
  return `NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = '${catalog}'::regclass AND d.objid = ${oid} AND d.deptype = 'e')`;
}

const CATALOG_COUNTS_SQL = `
WITH rel AS (
  SELECT c.relkind FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE ${USER_NAMESPACE} AND ${notExtensionMember('pg_catalog.pg_class', 'c.oid')}
)
SELECT
  (SELECT count(*) FROM rel WHERE relkind IN ('r', 'p')) AS tables,
  (SELECT count(*) FROM rel WHERE relkind = 'S') AS sequences,
  (SELECT count(*) FROM rel WHERE relkind IN ('v', 'm')) AS views,
  (SELECT count(*) FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    WHERE p.prokind IN ('f', 'p', 'w') AND ${USER_NAMESPACE} AND ${notExtensionMember('pg_catalog.pg_proc', 'p.oid')}) AS functions,
  (SELECT count(*) FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class t ON t.oid = i.indrelid JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
    WHERE ${USER_NAMESPACE} AND ${notExtensionMember('pg_catalog.pg_class', 't.oid')}) AS indexes,
  (SELECT count(*) FROM pg_catalog.pg_largeobject_metadata) AS large_objects`;
