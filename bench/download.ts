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

    const f = {
      cat: [] as number[],
      curlFile: [] as number[],
      curlFileWall: [] as number[],
      reference: [] as number[],
      referenceWall: [] as number[],
      local: [] as number[],
      localWall: [] as number[],
      localRssBefore: [] as number[],
      localRss: [] as number[],
      s3Direct: [] as number[],
      s3Service: [] as number[],
      s3ServiceWall: [] as number[],
      s3RssBefore: [] as number[],
      s3Rss: [] as number[],
    };
    // Warm the page cache, then one unmeasured download from each server (JIT, sockets, allocator).
    await timeShell('cat "$1" > /dev/null', { args: [file] });
    await curl(reference.url);
    await curl(serviceUrl(service.baseUrl), service.token);
    await curl(serviceUrl(s3Service.baseUrl), s3Service.token);
    for (const r of runList) {
      log(`downloads: run ${r + 1} of ${runs}`);
      f.cat.push(bytes / MB / ((await timeShell('cat "$1" > /dev/null', { args: [file] })).ms / 1000));
      const fromFile = await curl(`file://${file}`);
      expectBytes('curl file://', fromFile.bytes, bytes);
      f.curlFile.push(fromFile.rate);
      f.curlFileWall.push(fromFile.wallRate);
      const fromReference = await curl(reference.url);
      expectBytes('the reference server', fromReference.bytes, bytes);
      f.reference.push(fromReference.rate);
      f.referenceWall.push(fromReference.wallRate);

      // RSS just before and at most during the download: it should stay flat (a few buffers per download).
      f.localRssBefore.push((await procMemory(service.process.pid)).rss / MB);
      const localSampler = new RssSampler(service.process.pid, 20);
      const fromService = await curl(serviceUrl(service.baseUrl), service.token);
      f.localRss.push((await localSampler.stop()).maxRss / MB);
      expectBytes('the service download (local)', fromService.bytes, bytes);
      f.local.push(fromService.rate);
      f.localWall.push(fromService.wallRate);

      const direct = await getObjectTimed(s3.awsEnv(), s3.bucket, `${S3_PREFIX}/${backupId}`);
      expectBytes('GetObject', direct.bytes, bytes);
      f.s3Direct.push(bytes / MB / (direct.ms / 1000));
      f.s3RssBefore.push((await procMemory(s3Service.process.pid)).rss / MB);
      const s3Sampler = new RssSampler(s3Service.process.pid, 20);
      const fromS3Service = await curl(serviceUrl(s3Service.baseUrl), s3Service.token);
      f.s3Rss.push((await s3Sampler.stop()).maxRss / MB);
      expectBytes('the service download (S3)', fromS3Service.bytes, bytes);
      f.s3Service.push(fromS3Service.rate);
      f.s3ServiceWall.push(fromS3Service.wallRate);
    }
    const ratio = (a: number[], b: number[]): number => median(a) / median(b);
    log(
      `downloads: service (local) ${median(f.local).toFixed(0)} MB/s = ${(100 * ratio(f.local, f.curlFile)).toFixed(0)}% of curl file://, ` +
        `${ratio(f.local, f.reference).toFixed(2)}x the bare node server; the S3 download takes ${ratio(f.s3Direct, f.s3Service).toFixed(2)}x a direct GetObject's time`,
    );
    return [
      { id: 'download-direct', label: 'cat backup > /dev/null (direct read)', unit: 'MB/s', samples: f.cat, extra: { sizeBytes: bytes } },
      { id: 'download-curl-file', label: 'curl file://backup -o /dev/null', unit: 'MB/s', samples: f.curlFile, extra: { sizeBytes: bytes, wallMBps: f.curlFileWall } },
      {
        id: 'download-plain-node',
        label: 'curl from a bare node http server in its own process (createReadStream 1 MiB -> pipe)',
        unit: 'MB/s',
        samples: f.reference,
        extra: { sizeBytes: bytes, wallMBps: f.referenceWall },
      },
      {
        id: 'download-http',
        label: 'GET /api/v1/backups/{id}/download, local (curl > /dev/null)',
        unit: 'MB/s',
        samples: f.local,
        extra: {
          sizeBytes: bytes,
          wallMBps: f.localWall,
          rssBeforeMB: f.localRssBefore,
          maxRssMB: f.localRss,
          ofCurlFile: ratio(f.local, f.curlFile),
          ofCurlFileWall: ratio(f.localWall, f.curlFileWall),
          ofPlainNode: ratio(f.local, f.reference),
        },
      },
      { id: 'download-s3-direct', label: 'S3 emulator: GetObject with the AWS SDK in its own process', unit: 'MB/s', samples: f.s3Direct, extra: { sizeBytes: bytes } },
      {
        id: 'download-s3-http',
        label: 'S3 emulator: GET /api/v1/backups/{id}/download (curl > /dev/null)',
        unit: 'MB/s',
        samples: f.s3Service,
        extra: { sizeBytes: bytes, wallMBps: f.s3ServiceWall, rssBeforeMB: f.s3RssBefore, maxRssMB: f.s3Rss, timeOfDirect: ratio(f.s3Direct, f.s3Service) },
      },
    ];
  } finally {
    await s3Service?.stop();
    await s3.stop();
    await reference.stop();
  }
}
