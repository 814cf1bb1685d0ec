// The download section of the benchmark: one backup sent by the service, against reading the
// same file from the page cache and against references in processes of their own.
// Local: `cat file > /dev/null`, `curl file://`, a bare Node server (reference-server.ts) and the
// service's GET …/download (auth, Range-capable route), all fetched by curl, interleaved run by run.
// S3: the same backup uploaded to the emulator (in its own process), the service's download of
// it against a direct GetObject with the AWS SDK in another process (s3-get-object.ts).
// Curl's own transfer rate (%{speed_download}: first to last byte) is the figure; the wall time
// of the whole curl process is kept beside it.
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { sidecarName } from '@db-backup-service/contract';
import { pollUntil, type PostgresCluster } from '../test/harness/index.js';
import { serviceEnv, startBenchService, type BenchService } from './bench-service.js';
import { MB, median, procMemory, RssSampler, timeShell } from './measure.js';
import { startReferenceServer } from './reference-server.js';
import type { CaseResult } from './report.js';
import { getObjectTimed } from './s3-get-object.js';
import { startS3Process } from './s3-emulator.js';

/** A case's figures; run.ts turns them into a CaseResult. */
export interface DownloadCase {
  readonly id: string;
  readonly label: string;
  readonly unit: CaseResult['unit'];
  readonly samples: number[];
  readonly extra: Record<string, unknown>;
}

export interface DownloadOptions {
  readonly pg: PostgresCluster;
  /** The database the backup is of (the S3 service lists only that database's backups). */
  readonly db: string;
  /** The local service holding the backup, and its directory. */
  readonly service: BenchService;
  readonly dir: string;
  readonly backupId: string;
  readonly runs: number;
  readonly log: (message: string) => void;
}

const S3_PREFIX = 'download';
/** The emulator refuses request bodies over 11 MiB. */
const UPLOAD_PART_BYTES = 8 * 1024 * 1024;

interface CurlResult {
  /** MB/s from curl's %{speed_download}. */
  readonly rate: number;
  /** MB/s over the whole curl process (spawn to exit). */
  readonly wallRate: number;
  readonly bytes: number;
}

async function curl(url: string, token?: string): Promise<CurlResult> {
  const auth = token === undefined ? '' : '-H "Authorization: Bearer $BENCH_TOKEN" ';
  const res = await timeShell(`curl -sS --fail -o /dev/null -w "%{speed_download} %{size_download}" ${auth}"$1"`, {
    ...(token === undefined ? {} : { env: { BENCH_TOKEN: token } }),
    args: [url],
  });
  const [speed = Number.NaN, bytes = Number.NaN] = res.stdout.trim().split(' ').map(Number);
  return { rate: speed / MB, wallRate: bytes / MB / (res.ms / 1000), bytes };
}

/** One curl case's figures, run by run. */
interface Series {
  readonly rate: number[];
  readonly wall: number[];
  readonly rssBefore: number[];
  readonly maxRss: number[];
}

const series = (): Series => ({ rate: [], wall: [], rssBefore: [], maxRss: [] });

function expectBytes(what: string, got: number, bytes: number): void {
  if (got !== bytes) throw new Error(`bench: ${what} returned ${got} bytes, expected ${bytes}`);
}

export async function runDownloads(opts: DownloadOptions): Promise<DownloadCase[]> {
  const { service, backupId, runs, log } = opts;
  const file = join(opts.dir, backupId);
  const bytes = (await stat(file)).size;
  const serviceUrl = (base: string): string => `${base}/api/v1/backups/${backupId}/download`;
  const runList = Array.from({ length: runs }, (_, i) => i);

  const reference = await startReferenceServer(file);
  const s3 = await startS3Process({ bucket: 'bench-download' });
  let s3Service: BenchService | undefined;
  try {
    log(`downloads: uploading the ${(bytes / MB).toFixed(0)} MB backup to the S3 emulator`);
    const client = new S3Client({
      endpoint: s3.endpoint,
      region: s3.region,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    await new Upload({ client, params: { Bucket: s3.bucket, Key: `${S3_PREFIX}/${backupId}`, Body: createReadStream(file) }, partSize: UPLOAD_PART_BYTES, queueSize: 1 }).done();
    const sidecar = await readFile(join(opts.dir, sidecarName(backupId)));
    await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `${S3_PREFIX}/${sidecarName(backupId)}`, Body: sidecar }));
    client.destroy();
    s3Service = await startBenchService(serviceEnv(opts.pg, opts.db, { kind: 's3', s3, prefix: S3_PREFIX }));
    const listed = s3Service;
    await pollUntil(
      async () => {
        const res = await fetch(`${listed.baseUrl}/api/v1/backups/latest`, { headers: { Authorization: `Bearer ${listed.token}` } });
        return res.ok && ((await res.json()) as { id: string }).id === backupId ? true : undefined;
      },
      { timeoutMs: 30_000, what: 'the S3 service to list the uploaded backup' },
    );

    const cat: number[] = [];
    const s3Direct: number[] = [];
    const curlFile = series();
    const plain = series();
    const local = series();
    const fromS3 = series();
    /** One curl download into `into`, its size checked; with `server`, that server's RSS just before and at most during it. */
    const fetchInto = async (into: Series, what: string, url: string, server?: BenchService): Promise<void> => {
      const sampler = server ? new RssSampler(server.process.pid, 20) : undefined;
      if (server) into.rssBefore.push((await procMemory(server.process.pid)).rss / MB);
      const got = await curl(url, server?.token);
      if (sampler) into.maxRss.push((await sampler.stop()).maxRss / MB);
      expectBytes(what, got.bytes, bytes);
      into.rate.push(got.rate);
      into.wall.push(got.wallRate);
    };
    // Warm the page cache, then one unmeasured download from each server (JIT, sockets, allocator).
    await timeShell('cat "$1" > /dev/null', { args: [file] });
    await curl(reference.url);
    await curl(serviceUrl(service.baseUrl), service.token);
    await curl(serviceUrl(s3Service.baseUrl), s3Service.token);
    for (const r of runList) {
      log(`downloads: run ${r + 1} of ${runs}`);
      cat.push(bytes / MB / ((await timeShell('cat "$1" > /dev/null', { args: [file] })).ms / 1000));
      await fetchInto(curlFile, 'curl file://', `file://${file}`);
      await fetchInto(plain, 'the reference server', reference.url);
      // The service's RSS should stay flat during a download (a few buffers per download).
      await fetchInto(local, 'the service download (local)', serviceUrl(service.baseUrl), service);
      const direct = await getObjectTimed(s3.awsEnv(), s3.bucket, `${S3_PREFIX}/${backupId}`);
      expectBytes('GetObject', direct.bytes, bytes);
      s3Direct.push(bytes / MB / (direct.ms / 1000));
      await fetchInto(fromS3, 'the service download (S3)', serviceUrl(s3Service.baseUrl), s3Service);
    }
    const ratio = (a: number[], b: number[]): number => median(a) / median(b);
    log(
      `downloads: service (local) ${median(local.rate).toFixed(0)} MB/s = ${(100 * ratio(local.rate, curlFile.rate)).toFixed(0)}% of curl file://, ` +
        `${ratio(local.rate, plain.rate).toFixed(2)}x the bare node server; the S3 download takes ${ratio(s3Direct, fromS3.rate).toFixed(2)}x a direct GetObject's time`,
    );
    const withSize = (into: Series): Record<string, unknown> => ({
      sizeBytes: bytes,
      wallMBps: into.wall,
      ...(into.maxRss.length > 0 ? { rssBeforeMB: into.rssBefore, maxRssMB: into.maxRss } : {}),
    });
    return [
      { id: 'download-direct', label: 'cat backup > /dev/null (direct read)', unit: 'MB/s', samples: cat, extra: { sizeBytes: bytes } },
      { id: 'download-curl-file', label: 'curl file://backup -o /dev/null', unit: 'MB/s', samples: curlFile.rate, extra: withSize(curlFile) },
      {
        id: 'download-plain-node',
        label: 'curl from a bare node http server in its own process (createReadStream 1 MiB -> pipe)',
        unit: 'MB/s',
        samples: plain.rate,
        extra: withSize(plain),
      },
      {
        id: 'download-http',
        label: 'GET /api/v1/backups/{id}/download, local (curl > /dev/null)',
        unit: 'MB/s',
        samples: local.rate,
        extra: {
          ...withSize(local),
          ofCurlFile: ratio(local.rate, curlFile.rate),
          ofCurlFileWall: ratio(local.wall, curlFile.wall),
          ofPlainNode: ratio(local.rate, plain.rate),
        },
      },
      { id: 'download-s3-direct', label: 'S3 emulator: GetObject with the AWS SDK in its own process', unit: 'MB/s', samples: s3Direct, extra: { sizeBytes: bytes } },
      {
        id: 'download-s3-http',
        label: 'S3 emulator: GET /api/v1/backups/{id}/download (curl > /dev/null)',
        unit: 'MB/s',
        samples: fromS3.rate,
        extra: { ...withSize(fromS3), timeOfDirect: ratio(s3Direct, fromS3.rate) },
      },
    ];
  } finally {
    await s3Service?.stop();
    await s3.stop();
    await reference.stop();
  }
}
