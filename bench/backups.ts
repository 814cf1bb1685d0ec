// The backup cases: the pipelines people would otherwise script and the service's own backups,
// interleaved run by run, with wall time, CPU seconds (pg_dump's included, and the PostgreSQL
// server's apart) and sizes; then each service case's peak RSS at two dump sizes. A case that
// fails (a tool missing, a setting the service does not know yet) is reported as failed with its
// reason, and the other cases go on.
import { mkdir, open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { compressionOfId, contentsName, isEncryptedId, parseSidecar, sidecarName, type BackupSidecar } from '@db-backup-service/contract';
import { AGE_INTRO, isAgeEncrypted } from '@db-backup-service/restore';
import type { PostgresCluster } from '../test/harness/index.js';
import { serviceEnv, startBenchService, type BackupSample, type BenchService, type BenchStorage } from './bench-service.js';
import { clusterCpu, median, settledClusterCpu, timeShell } from './measure.js';
import { caseOf, DEFAULT_SERVICE_CASE as DEFAULT_CASE, failedCase, type CaseResult } from './report.js';
import type { S3EmulatorProcess } from './s3-emulator.js';

export const PG_DUMP_ARGS = '--no-owner --no-privileges --format=plain --no-password';
const PG_DUMP_CUSTOM_ARGS = '--no-owner --no-privileges --format=custom --no-password';

export interface ServiceCase {
  readonly id: string;
  readonly label: string;
  readonly storage: 'local' | 's3';
  readonly format: 'gzip' | 'zstd';
  /** Encrypted with age to the run's recipient (BACKUP_ENCRYPTION_RECIPIENTS, set when the case starts). */
  readonly encrypted: boolean;
  /** Settings beyond serviceEnv's (BENCH_SERVICE_ENV still applies on top). */
  readonly env: Record<string, string>;
  /** Another build of the service (BENCH_COMPARE_ENTRY). */
  readonly entry?: string;
}

/**
 * Every service case, or those BENCH_SERVICE_CASES names (comma-separated ids; the default local
 * case is always kept). Default level: whatever the service ships with, nothing set.
 */
export function serviceCases(): ServiceCase[] {
  const all: ServiceCase[] = [];
  for (const storage of ['local', 's3'] as const) {
    const where = storage === 'local' ? 'local' : 'S3 emulator';
    // Each age case right after its plain twin (`<twin>-age`, same settings plus the recipient):
    // the report sets one against the other, and adjacent they meet the same load.
    all.push(
      { id: `service-${storage}-gzip`, label: `service → ${where}, gzip, default level`, storage, format: 'gzip', encrypted: false, env: {} },
      { id: `service-${storage}-gzip-age`, label: `service → ${where}, gzip, default level, age`, storage, format: 'gzip', encrypted: true, env: {} },
      { id: `service-${storage}-gzip1`, label: `service → ${where}, gzip level 1`, storage, format: 'gzip', encrypted: false, env: { BACKUP_COMPRESSION_LEVEL: '1' } },
      { id: `service-${storage}-zstd`, label: `service → ${where}, zstd, default level`, storage, format: 'zstd', encrypted: false, env: { BACKUP_COMPRESSION: 'zstd' } },
      { id: `service-${storage}-zstd-age`, label: `service → ${where}, zstd, default level, age`, storage, format: 'zstd', encrypted: true, env: { BACKUP_COMPRESSION: 'zstd' } },
    );
  }
  // BENCH_COMPARE_ENTRY: the default local case once more with another build (before/after).
  const compare = process.env.BENCH_COMPARE_ENTRY;
  if (compare) {
    all.push({ id: 'service-compare-local-gzip', label: 'OTHER BUILD: service → local, gzip, default level', storage: 'local', format: 'gzip', encrypted: false, env: {}, entry: compare });
  }
  const picked = process.env.BENCH_SERVICE_CASES?.split(',').map((s) => s.trim());
  if (picked) {
    const unknown = picked.filter((id) => !all.some((c) => c.id === id));
    if (unknown.length > 0) throw new Error(`bench: BENCH_SERVICE_CASES names unknown cases ${unknown.join(', ')} (known: ${all.map((c) => c.id).join(', ')})`);
  }
  return all.filter((c) => picked === undefined || picked.includes(c.id) || c.id === DEFAULT_CASE);
}

/** The run's age key pair for the encrypted cases, or why there is none (the age cases then fail with it). */
export type AgeKeys = { readonly recipient: string; readonly identityFile: string } | { readonly missing: string };

/** One X25519 key pair per bench run, made by the stock age-keygen in the run's work directory. */
export async function makeAgeKeys(work: string): Promise<AgeKeys> {
  const identityFile = join(work, 'age-identity.txt');
  try {
    await timeShell('age-keygen -o "$1" 2> /dev/null', { args: [identityFile] });
    const { stdout } = await timeShell('age-keygen -y "$1"', { args: [identityFile] });
    const recipient = stdout.trim();
    if (!recipient.startsWith('age1')) throw new Error(`age-keygen -y printed ${JSON.stringify(recipient.slice(0, 80))}, not an age1 recipient`);
    return { recipient, identityFile };
  } catch (error) {
    return { missing: `no age key pair for the encrypted cases (age-keygen: ${message(error)}; install: apt-get install age)` };
  }
}

interface ShellCase {
  readonly id: string;
  readonly label: string;
  /** bash, with $1 = the output file and $2 = the storage directory. */
  readonly script: string;
  /** The size reported: of $1 (nothing for the limit). */
  readonly output: boolean;
  /** Why it cannot run here, or null. */
  readonly missing: string | null;
}

export interface BackupContext {
  readonly pg: PostgresCluster;
  readonly db: string;
  readonly plainBytes: number;
  readonly runs: number;
  readonly threads: number;
  readonly work: string;
  readonly baselines: boolean;
  /** false: only the default local case, once (for downloads and restores). */
  readonly service: boolean;
  readonly cases: readonly ServiceCase[];
  readonly s3: S3EmulatorProcess | undefined;
  /** For the encrypted cases (undefined when none was picked). */
  readonly age: AgeKeys | undefined;
  readonly tools: { pigz: boolean; zstd: boolean; aws: boolean };
  /** Services started here; the caller stops them (the kept backup's serves downloads). */
  readonly services: BenchService[];
  readonly log: (message: string) => void;
}

export interface BackupResults {
  readonly cases: CaseResult[];
  readonly gzip6Bytes: number | null;
  /** The default local case's last backup, left in place. */
  readonly kept: { dir: string; id: string; service: BenchService } | undefined;
  /** The local zstd case's last backup, left in place (for the restores), when that case ran. */
  readonly keptZstd: { dir: string; id: string } | undefined;
}

function shellCases(ctx: BackupContext): ShellCase[] {
  const n = ctx.threads;
  const needs = (ok: boolean, what: string): string | null => (ok ? null : what);
  return [
    { id: 'limit', label: 'pg_dump > /dev/null (the limit)', script: `pg_dump ${PG_DUMP_ARGS} > /dev/null`, output: false, missing: null },
    { id: 'gzip6', label: 'pg_dump | gzip -6 > file (the reference)', script: `pg_dump ${PG_DUMP_ARGS} | gzip -6 > "$1"`, output: true, missing: null },
    {
      id: 'pigz6',
      label: `pg_dump | pigz -6 -p ${n} > file`,
      script: `pg_dump ${PG_DUMP_ARGS} | pigz -6 -p ${n} > "$1"`,
      output: true,
      missing: needs(ctx.tools.pigz, 'pigz is not installed (apt-get install pigz)'),
    },
    // Plain format with -Z1 writes gzip level 1 itself: docker-postgres-backup-local's command.
    { id: 'pgdump-z1', label: 'pg_dump -Z1 -f file (docker-postgres-backup-local)', script: `pg_dump ${PG_DUMP_ARGS} -Z1 -f "$1"`, output: true, missing: null },
    {
      id: 'pgdump-fc-cp',
      label: 'pg_dump -Fc -f file, then cp to the storage dir (postgres-backup-s3, local)',
      script: `pg_dump ${PG_DUMP_CUSTOM_ARGS} -f "$1" && cp "$1" "$2/"`,
      output: true,
      missing: null,
    },
    {
      id: 'pgdump-fc-s3',
      label: 'pg_dump -Fc -f file, then aws s3 cp to the S3 emulator (postgres-backup-s3)',
      script: `pg_dump ${PG_DUMP_CUSTOM_ARGS} -f "$1" && aws s3 cp --only-show-errors "$1" "s3://$BENCH_BUCKET/baseline/backup.dump"`,
      output: true,
      missing: needs(ctx.tools.aws, 'the aws CLI is not installed (pip install awscli)') ?? needs(ctx.s3 !== undefined, 'no S3 emulator in this run'),
    },
    {
      id: 'zstd3',
      label: `pg_dump | zstd -3 -T${n} > file`,
      script: `pg_dump ${PG_DUMP_ARGS} | zstd -3 -T${n} -q -c > "$1"`,
      output: true,
      missing: needs(ctx.tools.zstd, 'zstd is not installed (apt-get install zstd)'),
    },
  ];
}

interface ShellSamples {
  seconds: number[];
  cpu: number[];
  pgServerCpu: number[];
  sizes: number[];
  error: string | null;
}

interface ServiceSamples {
  samples: BackupSample[];
  pgServerCpu: number[];
  emulatorCpu: number[];
  level: number | null;
  error: string | null;
  instance: { service: BenchService; storage: BenchStorage } | undefined;
}

const message = (error: unknown): string => (error instanceof Error ? error.message : String(error)).split('\n')[0]!;

/** Why a service did not start: the harness's first line and the service's own output (its config errors), on one line. */
function startFailure(error: unknown): string {
  const [first = '', ...rest] = (error instanceof Error ? error.message : String(error)).split('\n');
  const output = rest.filter((l) => !l.startsWith('--- service output')).map((l) => l.trim()).filter((l) => l !== '');
  const said = output.join(' ').slice(0, 500);
  return `the service did not start: ${first}${said ? `: ${said}` : ''}`;
}

/** Section 2: every baseline and every service case once per run, in the same order each run. */
export async function runBackups(ctx: BackupContext): Promise<BackupResults> {
  const { pg, runs } = ctx;
  const pgEnv = pg.pgEnv(ctx.db);
  const out = join(ctx.work, 'baseline.out');
  const storageDir = join(ctx.work, 'baseline-storage');
  await mkdir(storageDir, { recursive: true });
  const shells = ctx.baselines ? shellCases(ctx) : [];
  const shellData = new Map<string, ShellSamples>(shells.map((c) => [c.id, { seconds: [], cpu: [], pgServerCpu: [], sizes: [], error: c.missing }]));
  const services = ctx.service ? ctx.cases : ctx.cases.filter((c) => c.id === DEFAULT_CASE);
  const serviceData = new Map<string, ServiceSamples>();
  for (const c of services) {
    const data: ServiceSamples = { samples: [], pgServerCpu: [], emulatorCpu: [], level: null, error: null, instance: undefined };
    serviceData.set(c.id, data);
    try {
      const env = caseEnv(ctx, c);
      const storage = await storageOf(ctx, c, join(ctx.work, c.id));
      const service = await startBenchService(serviceEnv(pg, ctx.db, storage, env), c.entry ? { entry: c.entry } : {});
      ctx.services.push(service);
      data.instance = { service, storage };
    } catch (error) {
      data.error = startFailure(error);
      ctx.log(`${c.id}: FAILED, ${data.error}`);
    }
  }
  let kept: BackupResults['kept'];
  let keptZstd: BackupResults['keptZstd'];
  for (let r = 0; r < (ctx.service || ctx.baselines ? runs : 1); r++) {
    ctx.log(`backups: run ${r + 1} of ${runs}`);
    for (const c of shells) {
      const data = shellData.get(c.id)!;
      if (data.error !== null) continue;
      try {
        const before = await clusterCpu(pg.dataDir);
        const t = await timeShell(c.script, { env: { ...pgEnv, ...(ctx.s3 ? { ...ctx.s3.awsEnv(), BENCH_BUCKET: ctx.s3.bucket } : {}) }, args: [out, storageDir] });
        const after = await settledClusterCpu(pg.dataDir, before);
        data.seconds.push(t.ms / 1000);
        data.cpu.push(t.cpuSeconds);
        data.pgServerCpu.push(after.seconds - before.seconds);
        if (c.output) data.sizes.push((await stat(out)).size);
      } catch (error) {
        data.error = `run ${r + 1}: ${message(error)}`;
        ctx.log(`${c.id}: FAILED, ${data.error}`);
      } finally {
        await rm(out, { force: true });
        await rm(storageDir, { recursive: true, force: true });
        await mkdir(storageDir, { recursive: true });
        if (c.id === 'pgdump-fc-s3') await ctx.s3?.reset();
      }
    }
    for (const c of services) {
      const data = serviceData.get(c.id)!;
      if (data.error !== null || !data.instance || (!ctx.service && r > 0)) continue;
      const { service, storage } = data.instance;
      try {
        const before = await clusterCpu(pg.dataDir);
        const emulatorBefore = storage.kind === 's3' ? await ctx.s3!.cpuSeconds() : 0;
        const sample = await service.backup();
        const after = await settledClusterCpu(pg.dataDir, before);
        const emulatorAfter = storage.kind === 's3' ? await ctx.s3!.cpuSeconds() : 0;
        data.level = (await checkStored(ctx, c, storage, sample.backupId)).compression.level;
        data.samples.push(sample);
        data.pgServerCpu.push(after.seconds - before.seconds);
        if (storage.kind === 's3') data.emulatorCpu.push(emulatorAfter - emulatorBefore);
        if (storage.kind === 'local') {
          const last = r === runs - 1 || !ctx.service;
          if (c.id === DEFAULT_CASE && last) kept = { dir: storage.dir, id: sample.backupId, service };
          else if (c.id === 'service-local-zstd' && last) keptZstd = { dir: storage.dir, id: sample.backupId };
          else await removeLocalBackup(storage.dir, sample.backupId);
        } else {
          await ctx.s3!.reset();
        }
      } catch (error) {
        data.error = `run ${r + 1}: ${message(error)}`;
        ctx.log(`${c.id}: FAILED, ${data.error}`);
      }
    }
  }

  const cases: CaseResult[] = [];
  for (const c of shells) {
    const d = shellData.get(c.id)!;
    if (d.error !== null) {
      cases.push(failedCase(c.id, c.label, d.error));
      continue;
    }
    cases.push(
      caseOf(c.id, c.label, 's', d.seconds, {
        kind: 'baseline',
        cpuSeconds: d.cpu,
        pgServerCpuSeconds: d.pgServerCpu,
        ...(c.output ? { sizeBytes: median(d.sizes) } : { plainBytes: ctx.plainBytes }),
      }),
    );
  }
  for (const c of services) {
    const d = serviceData.get(c.id)!;
    if (d.error !== null) {
      cases.push(failedCase(c.id, c.label, d.error, { kind: 'service', format: c.format, storage: c.storage, encrypted: c.encrypted }));
      continue;
    }
    const s = d.samples;
    cases.push(
      caseOf(c.id, c.label, 's', s.map((x) => x.jobMs / 1000), {
        kind: 'service',
        format: c.format,
        storage: c.storage,
        encrypted: c.encrypted,
        // The S3 case runs the same settings as its local twin, which read the level from its sidecar.
        level: d.level ?? serviceData.get(c.id.replace('-s3-', '-local-'))?.level ?? null,
        wallSeconds: s.map((x) => x.wallMs / 1000),
        pipelineSeconds: s.map((x) => (x.pipelineMs ?? Number.NaN) / 1000),
        verifySeconds: s.map((x) => (x.verifyMs ?? Number.NaN) / 1000),
        sizeBytes: median(s.map((x) => x.sizeBytes)),
        cpuSeconds: s.map((x) => x.cpuSeconds),
        pgDumpCpuSeconds: s.map((x) => x.pgDumpCpuSeconds),
        pgServerCpuSeconds: d.pgServerCpu,
        ...(c.storage === 's3' ? { emulatorCpuSeconds: d.emulatorCpu } : {}),
        // VmHWM of this long-lived instance after all its runs (the rss section has fresh ones).
        instancePeakRssBytes: Math.max(...s.map((x) => x.hwm)),
        threads: ctx.threads,
      }),
    );
  }
  const gzip = shellData.get('gzip6');
  return { cases, gzip6Bytes: gzip && gzip.error === null ? median(gzip.sizes) : null, kept, keptZstd };
}

/** Section 3: each service case's peak RSS, a fresh service per backup, at each dump size. */
export async function runRss(ctx: BackupContext, datasets: readonly { db: string; plainBytes: number; size: 'small' | 'large' }[]): Promise<CaseResult[]> {
  const cases = ctx.cases.filter((c) => c.entry === undefined);
  const results: CaseResult[] = [];
  for (const data of datasets) {
    const samples = new Map<string, BackupSample[]>(cases.map((c) => [c.id, []]));
    const errors = new Map<string, string>();
    // Interleaved as the backups are: run 1 of every case, then run 2, ...
    for (let r = 0; r < ctx.runs; r++) {
      ctx.log(`peak RSS: ${data.db} (${Math.round(data.plainBytes / 1e6)} MB), run ${r + 1} of ${ctx.runs}`);
      for (const c of cases) {
        if (errors.has(c.id)) continue;
        const dir = join(ctx.work, `rss-${c.id}`);
        let service: BenchService | undefined;
        try {
          const env = caseEnv(ctx, c);
          const storage = await storageOf(ctx, c, dir);
          service = await startBenchService(serviceEnv(ctx.pg, data.db, storage, env)).catch((error: unknown) => {
            throw new Error(startFailure(error));
          });
          const sample = await service.backup();
          await checkStored(ctx, c, storage, sample.backupId);
          samples.get(c.id)!.push(sample);
        } catch (error) {
          errors.set(c.id, `run ${r + 1}: ${message(error)}`);
          ctx.log(`rss ${c.id}: FAILED, ${errors.get(c.id)!}`);
        } finally {
          await service?.stop();
          await rm(dir, { recursive: true, force: true });
          if (c.storage === 's3') await ctx.s3?.reset();
        }
      }
    }
    for (const c of cases) {
      const id = `rss-${c.id.replace(/^service-/, '')}-${data.size}`;
      const label = `peak RSS, ${c.label}, ${Math.round(data.plainBytes / 1e6)} MB dump`;
      const extra = { kind: 'rss', serviceCase: c.id, serviceLabel: c.label, encrypted: c.encrypted, size: data.size, plainBytes: data.plainBytes };
      const error = errors.get(c.id);
      if (error !== undefined) {
        results.push(failedCase(id, label, error, extra));
        continue;
      }
      const s = samples.get(c.id)!;
      results.push(caseOf(id, label, 'MB', s.map((x) => x.hwm / 1e6), { ...extra, maxPolledRssMB: s.map((x) => x.maxRss / 1e6), jobSeconds: s.map((x) => x.jobMs / 1000) }));
    }
  }
  return results;
}

async function storageOf(ctx: BackupContext, c: ServiceCase, dir: string): Promise<BenchStorage> {
  if (c.storage === 'local') {
    await mkdir(dir, { recursive: true });
    return { kind: 'local', dir };
  }
  if (!ctx.s3) throw new Error('no S3 emulator in this run');
  return { kind: 's3', s3: ctx.s3, prefix: c.id };
}

/** The case's settings: its own, and the run's recipient for an encrypted case (none: the case fails with why). */
function caseEnv(ctx: BackupContext, c: ServiceCase): Record<string, string> {
  if (!c.encrypted) return c.env;
  if (!ctx.age) throw new Error('no age key pair in this run');
  if ('missing' in ctx.age) throw new Error(ctx.age.missing);
  return { ...c.env, BACKUP_ENCRYPTION_RECIPIENTS: ctx.age.recipient };
}

/**
 * A setting the service ignores must not pass as measured: the id says the format and whether it
 * is encrypted, the sidecar agrees (parseSidecar refuses an id and `encryption` that disagree) and
 * names the run's recipient, and an encrypted dump as stored begins with the age header. A build
 * that silently ignores BACKUP_ENCRYPTION_RECIPIENTS and stores plaintext (WAL-G's failure) fails
 * the case. Returns the sidecar (the level comes from it).
 */
async function checkStored(ctx: BackupContext, c: ServiceCase, storage: BenchStorage, id: string): Promise<BackupSidecar> {
  const settings = Object.keys(caseEnv(ctx, c)).join(', ') || 'its defaults';
  const written = compressionOfId(id);
  if (written !== c.format) throw new Error(`the service wrote ${id} (${written}), not ${c.format}: does this build know ${settings}?`);
  if (isEncryptedId(id) !== c.encrypted) {
    throw new Error(`the service wrote ${id}, ${c.encrypted ? 'not encrypted (no .age)' : 'encrypted, though no recipient was set'}: does this build know ${settings}?`);
  }
  const parsed = parseSidecar((await readStored(ctx, storage, sidecarName(id), null)).toString('utf8'), id);
  if (!parsed.ok) throw new Error(`the sidecar of ${id} is refused: ${parsed.problem}`);
  if (parsed.sidecar.compression.format !== c.format) throw new Error(`the sidecar of ${id} records ${parsed.sidecar.compression.format}, not ${c.format}`);
  const { encryption } = parsed.sidecar;
  if (c.encrypted) {
    const recipient = ctx.age && 'recipient' in ctx.age ? ctx.age.recipient : '';
    if (encryption?.format !== 'age' || !encryption.recipients.includes(recipient)) {
      throw new Error(`the sidecar of ${id} records encryption ${JSON.stringify(encryption)}, not age to the run's recipient`);
    }
    const head = await readStored(ctx, storage, id, AGE_INTRO.length);
    if (!isAgeEncrypted(head)) throw new Error(`${id} as stored does not begin with the age header (${JSON.stringify(AGE_INTRO.trim())}): plaintext stored`);
  }
  return parsed.sidecar;
}

/** An object as stored, whole or its first `bytes` bytes: from the directory, or straight from the emulator. */
async function readStored(ctx: BackupContext, storage: BenchStorage, name: string, bytes: number | null): Promise<Buffer> {
  if (storage.kind === 'local') {
    const path = join(storage.dir, name);
    if (bytes === null) return readFile(path);
    const file = await open(path, 'r');
    try {
      const head = Buffer.alloc(bytes);
      const { bytesRead } = await file.read(head, 0, bytes, 0);
      return head.subarray(0, bytesRead);
    } finally {
      await file.close();
    }
  }
  const s3 = ctx.s3!;
  const client = new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    forcePathStyle: true,
  });
  try {
    const key = `${storage.prefix}/${name}`;
    const { Body } = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key, ...(bytes === null ? {} : { Range: `bytes=0-${bytes - 1}` }) }));
    if (!Body) throw new Error(`GetObject of ${key} answered without a body`);
    return Buffer.from(await Body.transformToByteArray());
  } finally {
    client.destroy();
  }
}

/** Deletes a backup behind the service's back (sidecar first, as the service does). */
async function removeLocalBackup(dir: string, id: string): Promise<void> {
  await rm(join(dir, sidecarName(id)), { force: true });
  await rm(join(dir, id), { force: true });
  await rm(join(dir, contentsName(id)), { force: true });
  for (const name of await readdir(dir)) if (name.startsWith('.tmp-')) await rm(join(dir, name), { force: true });
}
