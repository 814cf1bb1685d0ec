import { StorageError, assertSafeName } from './storage.js';
import type { ReadRange } from './storage.js';

/** assertSafeName as a predicate, for filtering listings. */
export function isSafeName(name: string): boolean {
  try {
    assertSafeName(name);
    return true;
  } catch {
    return false;
  }
}

/** Throws unless `range` is a non-empty, non-negative, inclusive byte range. */
export function assertValidRange(range: ReadRange): void {
  if (!Number.isSafeInteger(range.start) || !Number.isSafeInteger(range.end) || range.start < 0 || range.end < range.start) {
    throw new StorageError(`invalid byte range ${String(range.start)}-${String(range.end)}`);
  }
}
