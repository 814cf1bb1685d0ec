// `npm run bench [-- --quick | --size <MB>] [--runs N] [--only a,b]`: the service against the tools
// people would otherwise script, on one throwaway cluster, every case several times in one run.
// Prints one table and writes bench/results/latest.{json,md}. See bench/README.md.
import { spawn } from 'node:child_process';
import { cpus } from 'node:os';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DumpContentsCounter } from '@db-backup-service/restore';
import { startPostgres, type PostgresCluster } from '../test/harness/index.js';
import { runApiLoad, type ApiLoadResult } from './api-load.js';
import { makeAgeKeys, PG_DUMP_ARGS, runBackups, runRss, serviceCases } from './backups.js';
import { ROOT, type BenchService } from './bench-service.js';
import { extendByCopies, generateDatabase } from './dataset.js';
import { runDownloads } from './download.js';
import { loadAverage, MB, timeShell, toolVersion } from './measure.js';
import { startS3Process, type S3EmulatorProcess } from './s3-emulator.js';
import { caseOf, failedCase, renderMarkdown, renderTable, type BenchResults, type CaseResult } from './report.js';

const WORK = join(ROOT, 'bench', 'work');
const RESULTS = join(ROOT, 'bench', 'results');
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
  // Before anything starts: an unknown BENCH_SERVICE_CASES id is refused at once.
  const serviceConfigs = serviceCases();
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
    zstd: await toolVersion('zstd --version'),
    aws: await toolVersion('aws --version'),
    curl: await toolVersion('curl --version'),
    age: await toolVersion('age --version'),
    postgresServer: '',
  };
  // A missing tool fails its own case (reported, with the install command), not the run.
  for (const [tool, install] of [['pigz', 'apt-get install pigz'], ['zstd', 'apt-get install zstd'], ['aws', 'pip install awscli']] as const) {
    if (versions[tool] === null) console.log(`bench: ${tool} is not installed, so its baseline is reported as failed (install: ${install}).`);
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

    // 2. Baselines and the service's backups, interleaved run by run so that a burst of load from
    //    elsewhere on the machine hits every case alike rather than one case's three runs.
    const doBackups = opts.only.has('baselines') || opts.only.has('service') || opts.only.has('download') || opts.only.has('restore');
    const wantsS3 =
      ((opts.only.has('service') || opts.only.has('rss')) && serviceConfigs.some((c) => c.storage === 's3')) || (opts.only.has('baselines') && versions.aws !== null);
    // In its own process: the emulator's work is not the benchmark's event loop's, and its CPU is read apart.
    if (wantsS3) s3 = await startS3Process({ bucket: 'bench' });
    // One key pair for the whole run; the encrypted cases get its recipient, the identity stays in WORK.
    const age = serviceConfigs.some((c) => c.encrypted) ? await makeAgeKeys(WORK) : undefined;
    if (age && 'missing' in age) log(`the age cases will fail: ${age.missing}`);
    const context = {
      pg,
      db: main.db,
      plainBytes: main.plainBytes,
      runs: opts.runs,
      threads,
      work: WORK,
      cases: serviceConfigs,
      s3,
      age,
      tools: { pigz: versions.pigz !== null, zstd: versions.zstd !== null, aws: versions.aws !== null },
      services,
      log,
    };
    let gzip6Bytes: number | null = null;
    let keptBackup: { dir: string; id: string; service: BenchService } | undefined;
    let keptZstd: { dir: string; id: string } | undefined;
    if (doBackups) {
      loadBySection.backups = await loadAverage();
      const backups = await runBackups({ ...context, baselines: opts.only.has('baselines'), service: opts.only.has('service') });
      cases.push(...backups.cases);
      gzip6Bytes = backups.gzip6Bytes;
      keptBackup = backups.kept;
      keptZstd = backups.keptZstd;
      if (opts.only.has('service')) {
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

    // 3. Peak memory of every service case at two dump sizes: a fresh service per backup, so
    //    VmHWM is that backup's peak.
    if (opts.only.has('rss') && rssSmall && rssLarge) {
      loadBySection.rss = await loadAverage();
      cases.push(
        ...(await runRss({ ...context, baselines: false, service: true }, [
          { ...rssSmall, size: 'small' },
          { ...rssLarge, size: 'large' },
        ])),
      );
    }

    // 4. Downloads of the kept backup (bench/download.ts).
    if (opts.only.has('download') && keptBackup) {
      loadBySection.download = await loadAverage();
      const downloads = await runDownloads({ pg, db: main.db, service: keptBackup.service, dir: keptBackup.dir, backupId: keptBackup.id, runs: opts.runs, log });
      cases.push(...downloads.map((d) => caseOf(d.id, d.label, d.unit, d.samples, d.extra)));
    }

    // 5. Restores of the same backups: db-restore against the stock pipeline, for the default gzip
    //    backup and, when the service section ran, the zstd one. A failing restore fails its case.
    if (opts.only.has('restore') && keptBackup) {
      loadBySection.restore = await loadAverage();
      const restored = [{ suffix: '', decompress: 'gunzip -c', dir: keptBackup.dir, id: keptBackup.id }];
      if (keptZstd) restored.push({ suffix: '-zstd', decompress: 'zstd -dc', ...keptZstd });
      for (const backup of restored) {
        const what = backup.suffix === '' ? '' : ` (${backup.suffix.slice(1)} backup)`;
        const labels = {
          stock: `${backup.decompress} | psql --single-transaction`,
          cli: `db-restore --force${what} (local backend; streamed, verified on the way, swapped)`,
          drill: `db-restore --drill${what} (restore into a scratch database, count, drop)`,
        };
        const samples = { stock: [] as number[], cli: [] as number[], drill: [] as number[] };
        const errors: Partial<Record<keyof typeof samples, string>> = {};
        // DB_NAME as the service has it (db-restore picks only that database's backups); --database says where to restore.
        const cliEnv: Record<string, string> = {
          DB_HOST: pg.host,
          DB_PORT: String(pg.port),
          DB_USER: pg.user,
          DB_PASSWORD: pg.password,
          DB_NAME: main.db,
          STORAGE_BACKEND: 'local',
          BACKUP_LOCAL_DIR: backup.dir,
        };
        const cliArgs = [process.execPath, join(ROOT, 'cli/dist/bin.js'), backup.id];
        const measure = async (kind: keyof typeof samples, run: () => Promise<number>): Promise<void> => {
          if (errors[kind] !== undefined) return;
          try {
            samples[kind].push(await run());
          } catch (error) {
            // The command's first line and the tool's last: where db-restore says what went wrong.
            const lines = (error instanceof Error ? error.message : String(error)).split('\n').filter((l) => l.trim() !== '');
            errors[kind] = lines.length > 1 ? `${lines[0]!} … ${lines.at(-1)!.trim()}` : (lines[0] ?? 'failed');
            log(`restore${backup.suffix} ${kind}: FAILED, ${errors[kind]}`);
          }
        };
        for (const r of runs) {
          log(`restores${what}: run ${r + 1} of ${opts.runs}`);
          const cliDb = `bench_restore_cli_${r}`;
          await measure('cli', async () => (await timeShell(`"$1" "$2" --force --database ${cliDb} "$3"`, { env: cliEnv, args: cliArgs })).ms / 1000);
          await pg.dropDatabase(cliDb);
          // The drill: the same restore into a scratch database, then the counts, then the drop.
          await measure('drill', async () => (await timeShell('"$1" "$2" --drill "$3" > /dev/null', { env: cliEnv, args: cliArgs })).ms / 1000);
          const stockDb = `bench_restore_stock_${r}`;
          await pg.createDatabase(stockDb);
          await measure('stock', async () => {
            const s = await timeShell(`${backup.decompress} "$1" | psql --single-transaction -v ON_ERROR_STOP=1 -X -q -o /dev/null`, {
              env: pg.pgEnv(stockDb),
              args: [join(backup.dir, backup.id)],
            });
            return s.ms / 1000;
          });
          await pg.dropDatabase(stockDb);
        }
        for (const kind of ['stock', 'cli', 'drill'] as const) {
          const id = `restore-${kind}${backup.suffix}`;
          const error = errors[kind];
          cases.push(error === undefined ? caseOf(id, labels[kind], 's', samples[kind], {}) : failedCase(id, labels[kind], error));
        }
      }
    }

    for (const service of services.splice(0)) await service.stop();

    // 6. The API under load, 1,000 backups indexed.
    let api: ApiLoadResult | undefined;
    if (opts.only.has('api')) {
      loadBySection.api = await loadAverage();
      log('API under load...');
      try {
        api = await runApiLoad({ pg, db: main.db, workDir: join(WORK, 'api'), runs: opts.runs, seconds: opts.apiSeconds, connections: 200, log });
        cases.push(...api.cases);
      } catch (error) {
        // The last section: its failure must not throw away the rest of the run's figures.
        cases.push(failedCase('api', 'API under load', error instanceof Error ? error.message : String(error)));
      }
    }

    const loadAfter = await loadAverage();
    const results: BenchResults = {
      date: new Date().toISOString(),
      options: { quick: opts.quick, sizeMB: opts.sizeMB, runs: opts.runs, sections: [...opts.only] },
      machine: { cpus: threads, cpuModel: cpus()[0]?.model ?? 'unknown', loadBefore, loadAfter, loadBySection },
      versions,
      dataset: {
        main: { plainBytes: main.plainBytes, gzip6Bytes, generateSeconds: main.generateSeconds },
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

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
});
