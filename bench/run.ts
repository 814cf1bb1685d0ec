// `npm run bench [-- --quick | --size <MB>] [--runs N] [--only a,b]`: the service against the tools
// people would otherwise script, on one throwaway cluster, every case several times in one run.
// Prints one table and writes bench/results/latest.{json,md}. See bench/README.md.
import { spawn } from 'node:child_process';
import { cpus } from 'node:os';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { contentsName, sidecarName } from '@db-backup-service/contract';
import { DumpContentsCounter } from '@db-backup-service/restore';
import { startPostgres, type PostgresCluster } from '../test/harness/index.js';
import { runApiLoad, type ApiLoadResult } from './api-load.js';
import { peakRss, ROOT, serviceEnv, startBenchService, type BackupSample, type BenchService, type BenchStorage } from './bench-service.js';
import { extendByCopies, generateDatabase } from './dataset.js';
import { runDownloads } from './download.js';
import { loadAverage, MB, median, timeShell, toolVersion } from './measure.js';
import { startS3Process, type S3EmulatorProcess } from './s3-emulator.js';
import { renderMarkdown, renderTable, type BenchResults, type CaseResult } from './report.js';

const WORK = join(ROOT, 'bench', 'work');
const RESULTS = join(ROOT, 'bench', 'results');
const PG_DUMP_ARGS = '--no-owner --no-privileges --format=plain --no-password';
const SECTIONS = ['baselines', 'service', 'rss', 'download', 'restore', 'api'] as const;
type Section = (typeof SECTIONS)[number];

interface Options {
  readonly quick: boolean;
  readonly sizeMB: number;
  readonly runs: number;
  readonly only: ReadonlySet<Section>;
  readonly rssSizesMB: readonly [number, number];
  readonly apiSeconds: number;
}

function parseOptions(argv: readonly string[]): Options {
  let quick = false;
  let size: number | undefined = process.env.BENCH_SIZE_MB ? Number(process.env.BENCH_SIZE_MB) : undefined;
  let runs = 3;
  let only: Section[] = [...SECTIONS];
  let rssSizes: number[] | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`bench: ${arg} needs a value`);
      return v;
    };
    if (arg === '--quick') quick = true;
    else if (arg === '--size') size = Number(value());
    else if (arg === '--runs') runs = Number(value());
    else if (arg === '--only') only = value().split(',') as Section[];
    else if (arg === '--rss-sizes') rssSizes = value().split(',').map(Number);
    else throw new Error(`bench: unknown argument ${arg} (use --quick, --size <MB>, --runs <n>, --rss-sizes <MB>,<MB>, --only ${SECTIONS.join(',')})`);
  }
  for (const s of only) if (!SECTIONS.includes(s)) throw new Error(`bench: unknown section ${s}`);
  const sizeMB = size ?? (quick ? 50 : 500);
  if (!Number.isFinite(sizeMB) || sizeMB < 1) throw new Error('bench: --size / BENCH_SIZE_MB must be a number of MB >= 1');
  if (!Number.isInteger(runs) || runs < 1) throw new Error('bench: --runs must be a positive integer');
  return {
    quick,
    sizeMB,
    runs,
    only: new Set(only),
    rssSizesMB: rssSizes?.length === 2 && rssSizes.every((n) => n > 0) ? [rssSizes[0]!, rssSizes[1]!] : quick ? [10, 100] : [100, 1000],
    apiSeconds: quick ? 3 : 10,
  };
}

const log = (message: string): void => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}`);

interface Dataset {
  readonly db: string;
  readonly plainBytes: number;
  readonly generateSeconds: number;
}

async function dumpSize(pg: PostgresCluster, db: string): Promise<number> {
  const { stdout } = await timeShell(`pg_dump ${PG_DUMP_ARGS} | wc -c`, { env: pg.pgEnv(db) });
  return Number(stdout.trim());
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const threads = cpus().length;
  for (const path of ['server/dist/bin.js', 'cli/dist/bin.js']) {
    if (!existsSync(join(ROOT, path))) throw new Error(`bench: ${path} is missing: run \`npm run build\` (npm run bench does)`);
  }
  const versions = {
    node: process.version,
    pgDump: await toolVersion('pg_dump --version'),
    psql: await toolVersion('psql --version'),
    gzip: await toolVersion('gzip --version'),
    pigz: await toolVersion('pigz --version'),
    curl: await toolVersion('curl --version'),
    postgresServer: '',
  };
  if (versions.pigz === null) {
    console.log('bench: pigz is not installed, so the `pg_dump | pigz` baseline is skipped.');
    console.log('       Install it with `sudo apt-get install pigz` (Debian/Ubuntu) and run again to compare against it.');
  }
  if (versions.curl === null) throw new Error('bench: curl is needed for the download case (apt-get install curl)');

  await rm(WORK, { recursive: true, force: true });
  await mkdir(WORK, { recursive: true });
  const loadBefore = await loadAverage();
  log(`load average ${loadBefore.join(' ')} on ${threads} CPUs; plain dump target ${opts.sizeMB} MB, ${opts.runs} runs per case`);

  const pg = await startPostgres();
  let s3: S3EmulatorProcess | undefined;
  const services: BenchService[] = [];
  const cases: CaseResult[] = [];
  const loadBySection: Record<string, [number, number, number]> = {};
  try {
    versions.postgresServer = pg.version;
    // 1. Data. Calibrate bytes per unit on a small sample, then generate to size.
    await generateDatabase(pg, 'bench_calibrate', 200);
    const perUnit = (await dumpSize(pg, 'bench_calibrate')) / 200;
    await pg.dropDatabase('bench_calibrate');
    const makeDataset = async (db: string, targetMB: number, from?: Dataset): Promise<Dataset> => {
      const t0 = performance.now();
      if (from && targetMB >= 1.5 * (from.plainBytes / MB)) {
        // Twice the main data set: copying it (CREATE DATABASE ... TEMPLATE, then archive tables)
        // is several times faster than generating it again, and dumps just the same.
        await extendByCopies(pg, from.db, db, Math.round((targetMB * MB) / from.plainBytes) - 1);
      } else {
        const units = Math.max(1, Math.round((targetMB * MB) / perUnit));
        await generateDatabase(pg, db, units, (done, total) => {
          if (total >= 20_000 && done % 10_000 === 0) log(`  ${db}: ${Math.round((100 * done) / total)}%`);
        });
      }
      const plainBytes = await dumpSize(pg, db);
      const generateSeconds = (performance.now() - t0) / 1000;
      log(`data set ${db}: plain dump ${(plainBytes / MB).toFixed(0)} MB, made in ${generateSeconds.toFixed(0)} s`);
      return { db, plainBytes, generateSeconds };
    };
    log(`generating the data (${(perUnit / 1000).toFixed(1)} kB of dump per unit)...`);
    const main = await makeDataset('bench_main', opts.sizeMB);
    const rssSmall = opts.only.has('rss') ? await makeDataset('bench_rss_small', opts.rssSizesMB[0]) : undefined;
    const rssLarge = opts.only.has('rss') ? await makeDataset('bench_rss_large', opts.rssSizesMB[1], main) : undefined;

    const runs = Array.from({ length: opts.runs }, (_, i) => i);
    const pgEnv = pg.pgEnv(main.db);
    const out = join(WORK, 'pipeline.sql.gz');
    const sizeOf = async (path: string) => (await stat(path)).size;

    // 2. Baselines and the service's backups, interleaved run by run so that a burst of load from
    //    elsewhere on the machine hits every case alike rather than one case's three runs.
    const baseline = {
      limit: [] as number[],
      limitCpu: [] as number[],
      gzip: [] as number[],
      gzipCpu: [] as number[],
      gzipBytes: 0,
      pigz: [] as number[],
      pigzCpu: [] as number[],
      pigzBytes: 0,
    };
    const serviceConfigs: { id: string; label: string; storage: 'local' | 's3'; level: 6 | 1; entry?: string }[] = [
      { id: 'service-local-l6', label: 'service backup → local, default (level 6)', storage: 'local', level: 6 },
      { id: 'service-local-l1', label: 'service backup → local, level 1', storage: 'local', level: 1 },
      { id: 'service-s3-l6', label: 'service backup → S3 emulator, default (level 6)', storage: 's3', level: 6 },
      { id: 'service-s3-l1', label: 'service backup → S3 emulator, level 1', storage: 's3', level: 1 },
    ];
    // BENCH_COMPARE_ENTRY: the default local case once more with another build (before/after).
    if (process.env.BENCH_COMPARE_ENTRY) {
      serviceConfigs.push({ id: 'compare-local-l6', label: 'OTHER BUILD: service backup → local, default', storage: 'local', level: 6, entry: process.env.BENCH_COMPARE_ENTRY });
    }
    const serviceSamples = new Map<string, BackupSample[]>(serviceConfigs.map((c) => [c.id, []]));
    const serviceHwm = new Map<string, number>();
    const instances = new Map<string, { service: BenchService; storage: BenchStorage }>();
    let keptBackup: { dir: string; id: string; service: BenchService } | undefined;

    if (opts.only.has('baselines') || opts.only.has('service') || opts.only.has('download') || opts.only.has('restore')) {
      loadBySection.backups = await loadAverage();
      // BENCH_SERVICE_CASES: a comma-separated subset of the ids above (experiments).
      const picked = process.env.BENCH_SERVICE_CASES?.split(',');
      const withService = (opts.only.has('service') ? serviceConfigs : serviceConfigs.filter((c) => c.id === 'service-local-l6')).filter(
        (c) => picked === undefined || picked.includes(c.id) || c.id === 'service-local-l6',
      );
      if (withService.some((c) => c.storage === 's3')) s3 = await startS3Process({ bucket: 'bench' });
      for (const c of withService) {
        const storage: BenchStorage = c.storage === 'local' ? { kind: 'local', dir: join(WORK, c.id) } : { kind: 's3', s3: s3!, prefix: c.id };
        if (storage.kind === 'local') await mkdir(storage.dir, { recursive: true });
        const env = serviceEnv(pg, main.db, storage, c.level === 6 ? {} : { BACKUP_COMPRESSION_LEVEL: String(c.level) });
        const service = await startBenchService(env, c.entry ? { entry: c.entry } : {});
        services.push(service);
        instances.set(c.id, { service, storage });
      }
      const doBaselines = opts.only.has('baselines');
      const doService = opts.only.has('service');
      for (const r of runs) {
        log(`backups: run ${r + 1} of ${opts.runs}`);
        if (doBaselines) {
          const limit = await timeShell(`pg_dump ${PG_DUMP_ARGS} > /dev/null`, { env: pgEnv });
          baseline.limit.push(limit.ms);
          baseline.limitCpu.push(limit.cpuSeconds);
          const gzip = await timeShell(`pg_dump ${PG_DUMP_ARGS} | gzip -6 > "$1"`, { env: pgEnv, args: [out] });
          baseline.gzip.push(gzip.ms);
          baseline.gzipCpu.push(gzip.cpuSeconds);
          baseline.gzipBytes = await sizeOf(out);
          if (versions.pigz !== null) {
            const pigz = await timeShell(`pg_dump ${PG_DUMP_ARGS} | pigz -6 -p ${threads} > "$1"`, { env: pgEnv, args: [out] });
            baseline.pigz.push(pigz.ms);
            baseline.pigzCpu.push(pigz.cpuSeconds);
            baseline.pigzBytes = await sizeOf(out);
          }
          await rm(out, { force: true });
        }
        for (const c of serviceConfigs) {
          const instance = instances.get(c.id);
          if (!instance || (!doService && r > 0)) continue;
          const sample = await instance.service.backup();
          serviceSamples.get(c.id)!.push(sample);
          const last = r === opts.runs - 1 || !doService;
          if (instance.storage.kind === 'local') {
            if (c.id === 'service-local-l6' && last) keptBackup = { dir: instance.storage.dir, id: sample.backupId, service: instance.service };
            else await removeLocalBackup(instance.storage.dir, sample.backupId);
          } else {
            await s3!.reset();
          }
        }
      }
      for (const [id, { service }] of instances) serviceHwm.set(id, await peakRss(service.process.pid));

      if (doBaselines) {
        cases.push(caseOf('limit', 'pg_dump > /dev/null (limit)', 's', baseline.limit.map((ms) => ms / 1000), { plainBytes: main.plainBytes, cpuSeconds: baseline.limitCpu }));
        cases.push(caseOf('gzip6', 'pg_dump | gzip -6 > file (reference)', 's', baseline.gzip.map((ms) => ms / 1000), { sizeBytes: baseline.gzipBytes, cpuSeconds: baseline.gzipCpu }));
        if (baseline.pigz.length > 0) {
          cases.push(
            caseOf('pigz6', `pg_dump | pigz -6 -p ${threads} > file`, 's', baseline.pigz.map((ms) => ms / 1000), { sizeBytes: baseline.pigzBytes, cpuSeconds: baseline.pigzCpu }),
          );
        }
      }
      if (doService) {
        for (const c of serviceConfigs) {
          const samples = serviceSamples.get(c.id)!;
          if (samples.length === 0) continue;
          cases.push(
            caseOf(c.id.startsWith('compare-') ? `service-${c.id}` : c.id, `${c.label}: job`, 's', samples.map((s) => s.jobMs / 1000), {
              wallSeconds: samples.map((s) => s.wallMs / 1000),
              pipelineSeconds: samples.map((s) => (s.pipelineMs ?? Number.NaN) / 1000),
              verifySeconds: samples.map((s) => (s.verifyMs ?? Number.NaN) / 1000),
              sizeBytes: median(samples.map((s) => s.sizeBytes)),
              cpuSeconds: samples.map((s) => s.cpuSeconds),
              peakRssBytes: serviceHwm.get(c.id) ?? null,
              threads,
              level: c.level,
            }),
          );
        }
        // The contents manifest's share of a backup: the counter the backup runs, over the same
        // dump, only its push() calls timed; the report sets it against the default backup's job.
        const counted: number[] = [];
        for (const r of runs) {
          log(`contents manifest: run ${r + 1} of ${opts.runs}`);
          counted.push(await timeContentsCounter(pgEnv));
        }
        cases.push(caseOf('manifest-counter', 'contents manifest: DumpContentsCounter over the same dump (push only)', 's', counted, { plainBytes: main.plainBytes }));
      }
    }

    // 3. Peak memory at two dump sizes: a fresh service per run, so VmHWM is that backup's peak.
    if (opts.only.has('rss') && rssSmall && rssLarge) {
      loadBySection.rss = await loadAverage();
      for (const data of [rssSmall, rssLarge]) {
        const samples: BackupSample[] = [];
        for (const r of runs) {
          log(`peak RSS: ${data.db}, run ${r + 1} of ${opts.runs}`);
          const dir = join(WORK, `rss-${data.db}`);
          await mkdir(dir, { recursive: true });
          const service = await startBenchService(serviceEnv(pg, data.db, { kind: 'local', dir }));
          try {
            samples.push(await service.backup());
          } finally {
            await service.stop();
            await rm(dir, { recursive: true, force: true });
          }
        }
        const mb = Math.round(data.plainBytes / MB);
        cases.push(
          caseOf(`rss-${data === rssSmall ? 'small' : 'large'}`, `service peak RSS, ${mb} MB dump (local, default)`, 'MB', samples.map((s) => s.hwm / MB), {
            plainBytes: data.plainBytes,
            maxPolledRssMB: samples.map((s) => s.maxRss / MB),
            jobSeconds: samples.map((s) => s.jobMs / 1000),
          }),
        );
      }
    }

    // 4. Downloads of the kept backup (bench/download.ts).
    if (opts.only.has('download') && keptBackup) {
      loadBySection.download = await loadAverage();
      const downloads = await runDownloads({ pg, db: main.db, service: keptBackup.service, dir: keptBackup.dir, backupId: keptBackup.id, runs: opts.runs, log });
      cases.push(...downloads.map((d) => caseOf(d.id, d.label, d.unit, d.samples, d.extra)));
    }

    // 5. Restores of the same backup: db-restore against the stock pipeline.
    if (opts.only.has('restore') && keptBackup) {
      loadBySection.restore = await loadAverage();
      const file = join(keptBackup.dir, keptBackup.id);
      const cli: number[] = [];
      const stock: number[] = [];
      const drill: number[] = [];
      // DB_NAME as the service has it (db-restore picks only that database's backups); --database says where to restore.
      const cliEnv: Record<string, string> = {
        DB_HOST: pg.host,
        DB_PORT: String(pg.port),
        DB_USER: pg.user,
        DB_PASSWORD: pg.password,
        DB_NAME: main.db,
        STORAGE_BACKEND: 'local',
        BACKUP_LOCAL_DIR: keptBackup.dir,
      };
      const cliArgs = [process.execPath, join(ROOT, 'cli/dist/bin.js'), keptBackup.id];
      for (const r of runs) {
        log(`restores: run ${r + 1} of ${opts.runs}`);
        const cliDb = `bench_restore_cli_${r}`;
        const t = await timeShell(`"$1" "$2" --force --database ${cliDb} "$3"`, { env: cliEnv, args: cliArgs });
        cli.push(t.ms / 1000);
        await pg.dropDatabase(cliDb);
        // The drill: the same restore into a scratch database, then the counts, then the drop.
        const d = await timeShell('"$1" "$2" --drill "$3" > /dev/null', { env: cliEnv, args: cliArgs });
        drill.push(d.ms / 1000);
        const stockDb = `bench_restore_stock_${r}`;
        await pg.createDatabase(stockDb);
        const s = await timeShell('gunzip -c "$1" | psql --single-transaction -v ON_ERROR_STOP=1 -X -q -o /dev/null', {
          env: pg.pgEnv(stockDb),
          args: [file],
        });
        stock.push(s.ms / 1000);
        await pg.dropDatabase(stockDb);
      }
      cases.push(caseOf('restore-stock', 'gunzip -c | psql --single-transaction', 's', stock, {}));
      cases.push(caseOf('restore-cli', 'db-restore --force (local backend; streamed, verified on the way, swapped)', 's', cli, {}));
      cases.push(caseOf('restore-drill', 'db-restore --drill (restore into a scratch database, count, drop)', 's', drill, {}));
    }

    for (const service of services.splice(0)) await service.stop();

    // 6. The API under load, 1,000 backups indexed.
    let api: ApiLoadResult | undefined;
    if (opts.only.has('api')) {
      loadBySection.api = await loadAverage();
      log('API under load...');
      api = await runApiLoad({ pg, db: main.db, workDir: join(WORK, 'api'), runs: opts.runs, seconds: opts.apiSeconds, connections: 200, log });
      cases.push(...api.cases);
    }

    const loadAfter = await loadAverage();
    const results: BenchResults = {
      date: new Date().toISOString(),
      options: { quick: opts.quick, sizeMB: opts.sizeMB, runs: opts.runs, sections: [...opts.only] },
      machine: { cpus: threads, cpuModel: cpus()[0]?.model ?? 'unknown', loadBefore, loadAfter, loadBySection },
      versions,
      dataset: {
        main: { plainBytes: main.plainBytes, gzip6Bytes: baseline.gzipBytes || null, generateSeconds: main.generateSeconds },
        rssSmall: rssSmall ? { plainBytes: rssSmall.plainBytes } : null,
        rssLarge: rssLarge ? { plainBytes: rssLarge.plainBytes } : null,
      },
      cases,
    };
    await mkdir(RESULTS, { recursive: true });
    const name = opts.quick || opts.only.size < SECTIONS.length ? 'quick' : 'latest';
    await writeFile(join(RESULTS, `${name}.json`), `${JSON.stringify(results, null, 2)}\n`);
    await writeFile(join(RESULTS, `${name}.md`), renderMarkdown(results));
    console.log(`\n${renderTable(results)}\n`);
    log(`wrote bench/results/${name}.json and ${name}.md`);
  } finally {
    for (const service of services) await service.stop().catch(() => undefined);
    await s3?.stop();
    await pg.destroy();
    await rm(WORK, { recursive: true, force: true });
  }
}

function caseOf(id: string, label: string, unit: CaseResult['unit'], samples: number[], extra: Record<string, unknown>): CaseResult {
  return { id, label, unit, samples, median: median(samples), min: Math.min(...samples), max: Math.max(...samples), extra };
}

/** Seconds spent in DumpContentsCounter.push() while pg_dump's plain output streams through it. */
async function timeContentsCounter(env: Record<string, string>): Promise<number> {
  const child = spawn('pg_dump', PG_DUMP_ARGS.split(' '), { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  const counter = new DumpContentsCounter();
  let ms = 0;
  for await (const chunk of child.stdout) {
    const started = performance.now();
    counter.push(chunk as Buffer);
    ms += performance.now() - started;
  }
  const code = await exited;
  if (code !== 0) throw new Error(`bench: pg_dump for the contents manifest exited ${code}`);
  if (counter.manifest().tables.length === 0) throw new Error('bench: the contents manifest counted no table');
  return ms / 1000;
}

/** Deletes a backup behind the service's back (sidecar first, as the service does). */
async function removeLocalBackup(dir: string, id: string): Promise<void> {
  await rm(join(dir, sidecarName(id)), { force: true });
  await rm(join(dir, id), { force: true });
  await rm(join(dir, contentsName(id)), { force: true });
  for (const name of await readdir(dir)) if (name.startsWith('.tmp-')) await rm(join(dir, name), { force: true });
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
});
