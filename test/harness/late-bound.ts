/**
 * A proxy that reads through to a value created later (in beforeAll), so use*() helpers can return
 * something at describe level, when the resource does not exist yet.
 */
export function lateBound<T extends object>(get: () => T | undefined, name: string): T {
  return new Proxy({} as T, {
    get(_target, prop) {
      // Not thenable: `await usePostgres()` must not be mistaken for a promise.
      if (prop === 'then') return undefined;
      const value = get();
      if (value === undefined) throw new Error(`${name}(): used before its beforeAll ran (or after afterAll)`);
      return Reflect.get(value, prop, value);
    },
    has(_target, prop) {
      const value = get();
      return value !== undefined && prop in value;
    },
  });
}
