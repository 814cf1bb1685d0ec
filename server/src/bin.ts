#!/usr/bin/env node
import { availableParallelism } from 'node:os';

// The backup's parallel gzip compresses on libuv's thread pool, which also serves file I/O and
// DNS and has 4 threads unless UV_THREADPOOL_SIZE says otherwise. libuv reads the variable once,
// when the pool is first used: so it is set here, before main.js (and anything it imports) loads.
// One thread per core for compression (BACKUP_COMPRESSION_THREADS defaults to the core count)
// plus one for I/O; an explicit UV_THREADPOOL_SIZE is kept.
process.env.UV_THREADPOOL_SIZE ??= String(Math.max(4, availableParallelism() + 1));
const { main } = await import('./main.js');

void main();
