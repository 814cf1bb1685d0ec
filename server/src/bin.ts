#!/usr/bin/env node
// Loads zlib and the compressor's code, but does not start the pool (that would fix its size).
import { RESERVED_POOL_THREADS } from './backup/compressor.js';
import { usableCpus } from './config/cpu-limit.js';

// The backup compresses on libuv's thread pool (parallel gzip, one block per thread), which also
// runs the backup's gunzip check, file I/O and DNS, and has 4 threads unless UV_THREADPOOL_SIZE
// says otherwise. libuv reads the variable once, when the pool is first used: so it is set here,
// before main.js (and anything it imports) loads. One thread per usable CPU for compression
// (BACKUP_COMPRESSION_THREADS defaults to the same figure: the cgroup quota, at most the CPUs we
// may run on) plus the backup's other pool work (compressor.ts); an explicit UV_THREADPOOL_SIZE is kept.
process.env.UV_THREADPOOL_SIZE ??= String(Math.max(4, usableCpus() + RESERVED_POOL_THREADS));
const { main } = await import('./main.js');

void main();
