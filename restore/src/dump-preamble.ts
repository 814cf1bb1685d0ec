// The preamble of a plain pg_dump: the comment header and the session settings before the first
// object. A newer pg_dump writes settings an older server does not have (pg_dump 17's
// `SET transaction_timeout = 0;`), and `psql -v ON_ERROR_STOP=1` stops there with nothing restored.
// Adapting a dump to its target drops just those lines; everything from the first statement on
// passes byte for byte (COPY data is never decoded: lines are split on the newline byte).
import { Transform, type TransformCallback } from 'node:stream';
import { constants as zlibConstants, gunzipSync } from 'node:zlib';
import { majorOfVersionNum, parseVersionText, type PgVersion } from './pg-version.js';

const NEWLINE = 0x0a;
/** A preamble line is short (a comment or a SET); a longer line is the dump's first statement. */
const MAX_PREAMBLE_LINE_BYTES = 64 * 1024;

/** A line of the preamble, or null when `line` (without its newline) ends the preamble. */
type PreambleLine = { kind: 'other' } | { kind: 'set'; parameter: string } | null;

/** Classifies one line (bytes, without the newline) of a dump's head. */
function classify(line: Buffer): PreambleLine {
  const text = line.toString('latin1').replace(/\r$/, '');
  if (text.trim() === '' || text.startsWith('--') || text.startsWith('\\restrict ') || text.startsWith('SELECT pg_catalog.set_config(')) {
    return { kind: 'other' };
  }
  const set = /^SET\s+("?)([A-Za-z_][A-Za-z0-9_$.]*)\1\s*(?:=|\s+TO\s)/i.exec(text);
  return set?.[2] === undefined ? null : { kind: 'set', parameter: set[2].toLowerCase() };
}

/** What a dump's head says about it. */
export interface DumpHead {
  /** From `-- Dumped by pg_dump version 17.12 (...)`; null when the header has no such line. */
  readonly pgDumpVersion: PgVersion | null;
  /** From `-- Dumped from database version 15.18 (...)`. */
  readonly serverVersion: PgVersion | null;
  /** The dump opens with `\restrict <key>`: psql must know that command. */
  readonly restrict: boolean;
}

/** Reads the header of a plain dump from its first bytes (a few KB are enough). */
export function readDumpHead(head: Buffer): DumpHead {
  let pgDumpVersion: PgVersion | null = null;
  let serverVersion: PgVersion | null = null;
  let restrict = false;
  let start = 0;
  while (start < head.length) {
    const end = head.indexOf(NEWLINE, start);
    if (end === -1) break;
    const line = head.subarray(start, end);
    start = end + 1;
    if (classify(line) === null) break;
    const text = line.toString('latin1');
    const by = /^-- Dumped by pg_dump version (\S+)/.exec(text);
    const from = /^-- Dumped from database version (\S+)/.exec(text);
    if (by?.[1] !== undefined) pgDumpVersion = parseVersionText(by[1]);
    if (from?.[1] !== undefined) serverVersion = parseVersionText(from[1]);
    if (text.startsWith('\\restrict ')) restrict = true;
  }
  return { pgDumpVersion, serverVersion, restrict };
}

/**
 * Whether a dump needs its preamble adapted to a server (`server_version_num`): when its pg_dump is
 * newer than the server, or unknown. Names the pg_dump for the warnings, else null.
 */
export function newerDumper(head: DumpHead, serverVersionNum: number): string | null {
  if (head.pgDumpVersion !== null && head.pgDumpVersion.major <= majorOfVersionNum(serverVersionNum)) return null;
  return head.pgDumpVersion === null ? 'an unknown pg_dump' : `pg_dump ${head.pgDumpVersion.text}`;
}

/** How much of a dump the header is looked for in: the header and preamble are well under 4 KB. */
const HEAD_BYTES = 64 * 1024;

/**
 * Reads the header of a gzipped plain dump from its first compressed bytes (64 KiB hold far more
 * than the header): inflated as far as they go, without needing the rest of the stream.
 */
export function readGzipDumpHead(compressedStart: Buffer): DumpHead {
  let head: Buffer;
  try {
    head = gunzipSync(compressedStart, { finishFlush: zlibConstants.Z_SYNC_FLUSH, maxOutputLength: HEAD_BYTES * 16 });
  } catch {
    return { pgDumpVersion: null, serverVersion: null, restrict: false };
  }
  return readDumpHead(head.subarray(0, HEAD_BYTES));
}

export interface PreambleAdapterOptions {
  /** The target server's parameter names (`SELECT name FROM pg_settings`), any case. */
  readonly knownParameters: Iterable<string>;
  /** Called with each dropped line (text, without its newline). */
  readonly onDropped?: (line: string) => void;
}

/**
 * Passes a plain dump through, dropping from its preamble each `SET <parameter> ...` whose
 * parameter the target does not have. Dotted names (`SET myext.x = ...`) are kept: a server accepts
 * those as placeholders. Memory stays bounded: a line is held only while the preamble lasts.
 */
export class PreambleAdapter extends Transform {
  private readonly known: ReadonlySet<string>;
  private readonly onDropped: (line: string) => void;
  private inPreamble = true;
  private pending: Buffer = Buffer.alloc(0);

  constructor(opts: PreambleAdapterOptions) {
    super();
    this.known = new Set([...opts.knownParameters].map((p) => p.toLowerCase()));
    this.onDropped = opts.onDropped ?? (() => undefined);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (!this.inPreamble) {
      callback(null, chunk);
      return;
    }
    const data = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    this.pending = Buffer.alloc(0);
    let start = 0;
    while (this.inPreamble) {
      const end = data.indexOf(NEWLINE, start);
      if (end === -1) break;
      this.takeLine(data.subarray(start, end + 1));
      start = end + 1;
    }
    const rest = data.subarray(start);
    if (!this.inPreamble) {
      if (rest.length > 0) this.push(rest);
    } else if (rest.length > MAX_PREAMBLE_LINE_BYTES) {
      this.inPreamble = false;
      this.push(rest);
    } else {
      this.pending = Buffer.from(rest);
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    if (this.pending.length > 0) {
      // A dump that ends inside its preamble (no newline at the end): the last line as it is.
      if (this.inPreamble) this.takeLine(this.pending);
      else this.push(this.pending);
    }
    callback();
  }

  private takeLine(line: Buffer): void {
    const body = line[line.length - 1] === NEWLINE ? line.subarray(0, -1) : line;
    const kind = classify(body);
    if (kind === null) {
      this.inPreamble = false;
    } else if (kind.kind === 'set' && !kind.parameter.includes('.') && !this.known.has(kind.parameter)) {
      this.onDropped(body.toString('utf8').replace(/\r$/, ''));
      return;
    }
    this.push(line);
  }
}
