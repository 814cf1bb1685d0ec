// The runtime settings the container image gives the service (docker/Dockerfile's ENV) beyond the
// operator's configuration. Tests and benchmarks that measure memory run the service with these,
// so that they measure it as it ships; image-env.test.ts keeps this list and the Dockerfile equal.
//
// MALLOC_ARENA_MAX=2: glibc gives each thread that allocates its own malloc arena (up to 8 per
// core), and memory freed into an arena mostly stays resident. The backup's compression and the
// file I/O run on libuv's pool threads, so every pool thread grew an arena of freed zlib and buffer
// memory. Measured with the fault suite (load with S3 outages): post-GC RSS 118 -> 138 MB without
// the limit, 122 -> 122 MB with it; peak RSS under load 256 MB -> 239 MB.
export const IMAGE_RUNTIME_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' };
