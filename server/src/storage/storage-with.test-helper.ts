import type { Storage } from './storage.js';

/**
 * `storage` with some of its methods replaced: a fault injected, a listing that lags its writes,
 * another instance acting between two calls. Every other method is the storage's own, bound to
 * it. An override of `undefined` takes the method away (a backend without `openReader`, as S3).
 */
export function storageWith(storage: Storage, overrides: { readonly [K in keyof Storage]?: Storage[K] | undefined }): Storage {
  return new Proxy(storage, {
    get: (target, key) => {
      if (Object.hasOwn(overrides, key)) return overrides[key as keyof Storage];
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
