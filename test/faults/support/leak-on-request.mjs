// Test-only injected leak, loaded into the service by the fault suite with
// NODE_OPTIONS="--import <this file>" (leak-check.test.ts): nothing in the product reads it.
// Every HTTP request the service receives retains FAULTS_LEAK_BYTES_PER_REQUEST bytes for good
// (0 or unset: the hook is loaded but retains nothing), so the test can show
// that the suite's leak check fails on a service that leaks and passes on one that does not.
import { subscribe } from 'node:diagnostics_channel';

const bytes = Number(process.env.FAULTS_LEAK_BYTES_PER_REQUEST ?? 0);
if (!Number.isInteger(bytes) || bytes < 0) throw new Error('FAULTS_LEAK_BYTES_PER_REQUEST must be a whole number of bytes');

// Reachable from the subscription for the life of the process: never collected.
const retained = [];
// Node publishes every incoming request on this channel before the 'request' event.
subscribe('http.server.request.start', () => {
  // Buffer.alloc fills the memory, so the pages are really resident (RSS), as leaked data is.
  if (bytes > 0) retained.push(Buffer.alloc(bytes, 1));
});
