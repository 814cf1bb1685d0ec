/**
 * A one-line reason for a foreign error. Node reports a failed connection to a host with several
 * addresses (localhost: ::1 and 127.0.0.1) as an AggregateError with an empty message.
 */
export function describeError(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) {
    const inner = [...new Set(error.errors.map((e) => describeError(e)))];
    return error.message ? `${error.message} (${inner.join('; ')})` : inner.join('; ');
  }
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (error.message) return error.message;
    return code ?? error.name;
  }
  return String(error);
}

/** The first `code` along the cause chain that satisfies `match` (e.g. ENOSPC under a StorageError). */
export function findErrorCode(error: unknown, match: (code: string) => boolean): string | null {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current instanceof Error && !seen.has(current)) {
    seen.add(current);
    const code = (current as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && match(code)) return code;
    if (current instanceof AggregateError) {
      for (const inner of current.errors) {
        const found = findErrorCode(inner, match);
        if (found !== null) return found;
      }
    }
    current = current.cause;
  }
  return null;
}
