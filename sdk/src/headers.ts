/**
 * Parsers for the headers of a download answer. Each returns null for a missing or malformed
 * header; the caller decides whether that is an error.
 */

/** The file name in `Content-Disposition` (`filename*=UTF-8''...` wins over `filename="..."`). */
export function parseContentDispositionFilename(header: string | null): string | null {
  if (header === null) return null;
  const extended = /filename\*\s*=\s*(?:UTF-8|utf-8)''([^;]+)/.exec(header);
  if (extended?.[1] !== undefined) {
    try {
      return decodeURIComponent(extended[1].trim());
    } catch {
      return null;
    }
  }
  const quoted = /filename\s*=\s*"((?:[^"\\]|\\.)*)"/.exec(header);
  if (quoted?.[1] !== undefined) return quoted[1].replace(/\\(.)/g, '$1');
  const bare = /filename\s*=\s*([^;\s]+)/.exec(header);
  return bare?.[1] ?? null;
}

export interface ContentRange {
  /** First byte, inclusive. */
  readonly start: number;
  /** Last byte, inclusive. */
  readonly end: number;
  /** Size of the whole representation, or null for `*`. */
  readonly total: number | null;
}

/** `Content-Range: bytes <start>-<end>/<total|*>` of a 206. */
export function parseContentRange(header: string | null): ContentRange | null {
  if (header === null) return null;
  const m = /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(header);
  if (!m?.[1] || !m[2] || !m[3]) return null;
  const start = Number(m[1]);
  const end = Number(m[2]);
  const total = m[3] === '*' ? null : Number(m[3]);
  if (end < start || (total !== null && end >= total)) return null;
  return { start, end, total };
}

/** Total size from the `*`-range of a 416 (`Content-Range: bytes *\/<total>`). */
export function parseUnsatisfiedRangeTotal(header: string | null): number | null {
  const m = header === null ? null : /^\s*bytes\s+\*\/(\d+)\s*$/i.exec(header);
  return m?.[1] ? Number(m[1]) : null;
}

/** A non-negative integer header (Content-Length). */
export function parseLength(header: string | null): number | null {
  if (header === null || !/^\s*\d+\s*$/.test(header)) return null;
  const n = Number(header);
  return Number.isSafeInteger(n) ? n : null;
}

/** The SHA-256 (lower-case hex) an ETag carries: the service sends the digest, quoted. */
export function sha256FromEtag(etag: string | null): string | null {
  if (etag === null) return null;
  const m = /^\s*(?:W\/)?"?([0-9a-fA-F]{64})"?\s*$/.exec(etag);
  return m?.[1] ? m[1].toLowerCase() : null;
}

/** The SHA-256 (lower-case hex) in `Repr-Digest: sha-256=:<base64>:` (RFC 9530), among other algorithms. */
export function sha256FromReprDigest(header: string | null): string | null {
  if (header === null) return null;
  for (const member of header.split(',')) {
    const m = /^\s*sha-256\s*=\s*:([A-Za-z0-9+/]+={0,2}):\s*$/i.exec(member);
    if (m?.[1]) {
      const bytes = Buffer.from(m[1], 'base64');
      if (bytes.length === 32) return bytes.toString('hex');
    }
  }
  return null;
}
