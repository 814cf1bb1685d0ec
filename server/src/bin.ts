#!/usr/bin/env node
import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';

// The backup compresses on libuv's thread pool (parallel gzip, one block per thread), which also
// runs the backup's gunzip check, file I/O and DNS, and has 4 threads unless UV_THREADPOOL_SIZE
// says otherwise. libuv reads the variable once, when the pool is first used: so it is set here,
// before main.js (and anything it imports) loads. One thread per core for compression
// (BACKUP_COMPRESSION_THREADS defaults to the core count) plus two (compressor.ts); an explicit
// UV_THREADPOOL_SIZE is kept.
process.env.UV_THREADPOOL_SIZE ??= String(Math.max(4, availableParallelism() + 2));

// A backup streams ~2.5x the dump's size through short-lived buffers, with a small, steady heap
// (~20 MB). V8 (Node 24) starts incremental marking whenever the old generation's free room is
// below the young generation's capacity, which for a heap this small is always: it ran a full
// mark-compact about every 100 ms of a backup (40-50 per 200 MB), on top of the GC pacer's.
// Starting it only at 90% of the old generation's limit leaves collection to the pacer during a
// backup (measured: 29 instead of 51 mark-compacts per 200 MB; see bench/README.md). The flag is
// read at every allocation-limit check, so setting it here, at start-up, takes effect.
setFlagsFromString('--incremental-marking-soft-trigger=90');
const { main } = await import('./main.js');

void main();
