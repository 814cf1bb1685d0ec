// The runtime settings the container image gives the service (docker/Dockerfile's ENV) beyond the
// operator's configuration. Tests and benchmarks that measure memory run the service with these,
// so that they measure it as it ships; image-env.test.ts keeps this list and the Dockerfile equal.
//
// MALLOC_ARENA_MAX=2: glibc gives each thread that allocates its own malloc arena (up to 8 per
// core), and memory freed into an arena mostly stays resident. The backup's compression and the
// file I/O run on libuv's pool threads, so every pool thread grew an arena of freed zlib and buffer
// memory. Measured with the fault suite (load with S3 outages): post-GC RSS 118 -> 138 MB without
// the limit, 122 -> 122 MB with it; peak RSS under load 256 MB -> 239 MB.
//
// NODE_OPTIONS=--max-semi-space-size=2 (MiB): V8 lets its young generation grow to several times
// that by default, and a backup's per-chunk objects (stream events, Buffer wrappers) make it grow
// even though nearly all of them die young. Measured (bench, 2 cores): a backup's peak RSS 129 ->
// 121 MB (local) and 160 -> 152 MB (S3), and the same CPU per 200 MB backup (5.84-6.07 s default,
// 5.72-5.98 s with it).
export const IMAGE_RUNTIME_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2', NODE_OPTIONS: '--max-semi-space-size=2' };
