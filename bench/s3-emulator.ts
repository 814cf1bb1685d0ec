// The S3 emulator (fauxqs) in its own process, so that receiving and hashing every uploaded part
// is not charged to the benchmark's event loop, and its CPU can be read apart from the service's.
// As a child (`node build/tools/bench/s3-emulator.js [--bucket <name>]`) it starts the emulator and
// prints one JSON line, S3EmulatorInfo; then it reads one command a line on stdin ("reset": delete
// every object and multipart upload, answered by {"reset":true}) and exits when stdin ends, which
// is also what happens when its parent dies. startS3Process() is the parent's side.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startS3 } from '../test/harness/index.js';
import { procCpuSeconds } from './measure.js';

export interface S3EmulatorInfo {
  readonly endpoint: string;
  readonly bucket: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

export interface S3EmulatorProcess extends S3EmulatorInfo {
  readonly pid: number;
  /** The AWS SDK's standard variables for a child process (service, aws CLI, an SDK script). */
  awsEnv(): Record<string, string>;
  /** Deletes every object and multipart upload, keeping the bucket (the emulator holds them in memory). */
  reset(): Promise<void>;
  /** CPU seconds (user + system, all threads) the emulator has used so far. */
  cpuSeconds(): Promise<number>;
  stop(): Promise<void>;
}

const THIS_FILE = fileURLToPath(import.meta.url);

/** Starts the emulator as a child process of this one and waits for its endpoint. */
export async function startS3Process(opts: { bucket?: string; timeoutMs?: number } = {}): Promise<S3EmulatorProcess> {
  const child = spawn(process.execPath, [THIS_FILE, '--bucket', opts.bucket ?? 'bench'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const waiting: ((line: string) => void)[] = [];
  const queued: string[] = [];
  let exited: string | undefined;
  const failAll = (why: string): void => {
    exited = why;
    for (const w of waiting.splice(0)) w(JSON.stringify({ error: why }));
  };
  lines.on('line', (line) => {
    const w = waiting.shift();
    if (w) w(line);
    else queued.push(line);
  });
  child.once('exit', (code, signal) => failAll(`the S3 emulator process exited (${signal ?? code})`));
  child.once('error', (error) => failAll(`the S3 emulator process failed to start: ${error.message}`));
  const nextLine = (timeoutMs: number): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`bench: no answer from the S3 emulator process within ${timeoutMs} ms`)), timeoutMs);
      const take = (line: string): void => {
        clearTimeout(timer);
        const message = JSON.parse(line) as Record<string, unknown>;
        if (typeof message.error === 'string') reject(new Error(`bench: ${message.error}`));
        else resolve(message);
      };
      const line = queued.shift();
      if (line !== undefined) take(line);
      else if (exited !== undefined) take(JSON.stringify({ error: exited }));
      else waiting.push(take);
    });

  let info: S3EmulatorInfo;
  try {
    info = (await nextLine(opts.timeoutMs ?? 30_000)) as unknown as S3EmulatorInfo;
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  const pid = child.pid!;
  return {
    ...info,
    pid,
    awsEnv: () => ({
      AWS_ENDPOINT_URL_S3: info.endpoint,
      AWS_REGION: info.region,
      AWS_ACCESS_KEY_ID: info.accessKeyId,
      AWS_SECRET_ACCESS_KEY: info.secretAccessKey,
    }),
    async reset() {
      child.stdin.write('reset\n');
      await nextLine(30_000);
    },
    cpuSeconds: () => procCpuSeconds(pid),
    async stop() {
      if (exited !== undefined) return;
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.stdin.end();
      // It stops on the end of stdin; SIGKILL only if it does not within 10 s.
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(timer);
    },
  };
}

/** The child's side: one emulator, its endpoint on stdout, commands from stdin. */
async function serve(argv: readonly string[]): Promise<void> {
  const at = argv.indexOf('--bucket');
  const bucket = at >= 0 ? argv[at + 1] : 'bench';
  const s3 = await startS3({ bucket: bucket ?? 'bench' });
  const send = (message: Record<string, unknown>): void => void process.stdout.write(`${JSON.stringify(message)}\n`);
  const info: S3EmulatorInfo = { endpoint: s3.endpoint, bucket: s3.bucket, region: s3.region, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
  send({ ...info });
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'reset') {
      s3.reset();
      send({ reset: true });
    } else {
      send({ error: `unknown command ${JSON.stringify(line)} (known: reset)` });
    }
  }
  await s3.destroy();
}

if (process.argv[1] === THIS_FILE) {
  serve(process.argv.slice(2)).catch((error: unknown) => {
    process.stdout.write(`${JSON.stringify({ error: `the S3 emulator did not start: ${error instanceof Error ? error.message : String(error)}` })}\n`);
    process.exitCode = 1;
  });
}
