// The reference for S3 downloads: one GetObject with the AWS SDK, its body read to the end and
// dropped, in a process of its own (as curl is for the service's download), with the client
// settings the service uses for an S3-compatible endpoint. Run as
// `node build/tools/bench/s3-get-object.js <bucket> <key>` with AWS_ENDPOINT_URL_S3, AWS_REGION
// and the keys in its environment; prints {"bytes": n, "ms": t}, timed from the request to the
// last byte after an untimed HeadObject. getObjectTimed() is the parent's side.
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { GetObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';

const THIS_FILE = fileURLToPath(import.meta.url);

/** Runs one timed GetObject in a child process. */
export async function getObjectTimed(env: Record<string, string>, bucket: string, key: string): Promise<{ bytes: number; ms: number }> {
  const child = spawn(process.execPath, [THIS_FILE, bucket, key], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  if (code !== 0) throw new Error(`bench: the GetObject process exited ${code}`);
  return JSON.parse(out) as { bytes: number; ms: number };
}

async function main(bucket: string, key: string): Promise<void> {
  const client = new S3Client({ forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
  // Untimed: the SDK's first request also resolves credentials and the endpoint and opens the
  // connection, which the service (warmed up by an earlier download) has done already.
  await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  const started = performance.now();
  const { Body } = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  if (!Body) throw new Error('GetObject answered without a body');
  let bytes = 0;
  for await (const chunk of Body as AsyncIterable<Buffer>) bytes += chunk.length;
  process.stdout.write(`${JSON.stringify({ bytes, ms: performance.now() - started })}\n`);
  client.destroy();
}

if (process.argv[1] === THIS_FILE) {
  const [bucket, key] = process.argv.slice(2);
  if (bucket === undefined || key === undefined) throw new Error('usage: s3-get-object.js <bucket> <key>');
  main(bucket, key).catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  });
}
