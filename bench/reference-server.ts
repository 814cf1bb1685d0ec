// The reference for downloads: a bare Node HTTP server sending one file the way most Node code
// does (createReadStream with 1 MiB reads, piped to the response), in its own process so that the
// benchmark's event loop and garbage are not charged to it. As a child
// (`node build/tools/bench/reference-server.js <file>`) it prints one JSON line, {"url": ...},
// serves GET / until its stdin ends (also when its parent dies), then exits.
// startReferenceServer() is the parent's side.
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { pipeline } from 'node:stream';
import { fileURLToPath } from 'node:url';

export interface ReferenceServer {
  readonly url: string;
  readonly pid: number;
  stop(): Promise<void>;
}

const THIS_FILE = fileURLToPath(import.meta.url);
const READ_BYTES = 1024 * 1024;

/** Starts the reference server for `file` as a child process and waits for its address. */
export async function startReferenceServer(file: string, timeoutMs = 30_000): Promise<ReferenceServer> {
  const child = spawn(process.execPath, [THIS_FILE, file], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const first = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`bench: the reference server did not start within ${timeoutMs} ms`)), timeoutMs);
    const lines = createInterface({ input: child.stdout });
    lines.once('line', (line) => {
      clearTimeout(timer);
      resolve(line);
    });
    child.once('error', reject);
    void exited.then(() => reject(new Error('bench: the reference server exited before it listened')));
  }).catch((error: unknown) => {
    child.kill('SIGKILL');
    throw error;
  });
  const { url } = JSON.parse(first) as { url: string };
  return {
    url,
    pid: child.pid!,
    async stop() {
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function serve(file: string): Promise<void> {
  const size = (await stat(file)).size;
  const server = createServer((_req, res) => {
    res.setHeader('Content-Length', size);
    pipeline(createReadStream(file, { highWaterMark: READ_BYTES }), res, () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}/` })}\n`);
  process.stdin.resume();
  await new Promise<void>((resolve) => process.stdin.once('end', resolve));
  server.closeAllConnections();
  server.close();
}

if (process.argv[1] === THIS_FILE) {
  const file = process.argv[2];
  if (file === undefined) throw new Error('usage: reference-server.js <file>');
  serve(file).catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  });
}
